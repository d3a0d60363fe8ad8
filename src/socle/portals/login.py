"""The authorization endpoint and the login pages (OpenID Connect Core §3.1, SMART App Launch v2).

Browser flow: `/auth/authorize` checks the request (client, exact redirect URI, PKCE, scopes) and
starts a login flow bound to a cookie; `/auth/login` asks for the identifier and password, then a
second factor (TOTP for professionals, a one-time code sent by the delivery interface for citizens),
then, for a citizen who holds delegations, whom they act for; the code is then sent back to the
client. Errors that happen before the redirect URI is known to belong to the client are shown here,
never redirected (no open redirector, RFC 6749 §4.1.2.1). Every form carries the flow's CSRF token
(synchronizer pattern), and cookies are HttpOnly, SameSite=Lax, and Secure on HTTPS.
"""

from __future__ import annotations

import hmac
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from socle.api.auth._common import issuer_of
from socle.config import Settings
from socle.store.repository import Store
from socle.trust.auth import accounts
from socle.trust.auth.clients import Client, get_client
from socle.trust.auth.errors import InvalidToken
from socle.trust.auth.grants import create_code
from socle.trust.auth.keys import verification_keys
from socle.trust.auth.passwords import token_hash
from socle.trust.auth.scopes import ScopeSet
from socle.trust.auth.tokens import verify_jwt

_HERE = Path(__file__).resolve().parent
_templates = Environment(loader=FileSystemLoader(_HERE / "templates"), autoescape=select_autoescape(["html"]))
FLOW_COOKIE = "socle_flow"
SESSION_COOKIE = "socle_session"
MAX_CODE_FAILURES = 5
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self' *",
    "Referrer-Policy": "no-referrer",
}


def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _templates.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers=_SECURITY_HEADERS)


class LoginPages:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def _cookie(self, request: Request, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/auth",
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )

    # -- /auth/authorize ----------------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        params = dict(request.query_params)
        if request.method == "POST":
            params.update({k: v for k, v in (await request.form()).items() if isinstance(v, str)})
        return await run_in_threadpool(self._authorize, request, params)

    def _authorize(self, request: Request, params: dict[str, str]) -> Response:
        with self.store.write() as conn:
            client = get_client(conn, params.get("client_id", ""))
            redirect_uri = params.get("redirect_uri", "")
            if client is None:
                return page("error.html", 400, title="Application inconnue", message="client_id inconnu.")
            if redirect_uri not in client.redirect_uris:  # exact match only (Security BCP §4.1.3)
                message = "L'adresse de retour n'est pas enregistrée pour cette application."
                return page("error.html", 400, title="Adresse de retour refusée", message=message)
            state = params.get("state")

            def fail(error: str, description: str) -> Response:
                query = {
                    "error": error,
                    "error_description": description,
                    "iss": issuer_of(request, self.settings),
                }
                if state:
                    query["state"] = state
                return RedirectResponse(
                    f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{urlencode(query)}", 303
                )

            if params.get("response_type") != "code":
                return fail("unsupported_response_type", "Only the authorization code flow is supported")
            challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
            if challenge and method != "S256":
                return fail("invalid_request", "code_challenge_method must be S256")
            if client.is_public and not challenge:
                return fail("invalid_request", "PKCE (S256) is required for public clients")
            scopes = ScopeSet.parse(params.get("scope", "")).narrow_to(ScopeSet.parse(client.scope))
            if not scopes.raw:
                return fail("invalid_scope", "None of the requested scopes is allowed for this client")
            request_data = {
                "client_id": client.client_id,
                "redirect_uri": redirect_uri,
                "scope": str(scopes),
                "state": state,
                "nonce": params.get("nonce"),
                "code_challenge": challenge,
                "aud": params.get("aud"),
                "launch": params.get("launch"),
            }
            session = self._session(conn, request)
            if session is not None and params.get("prompt") != "login":
                account = accounts.get_account(conn, session.account_id)
                if account is not None and not accounts.delegations_of(conn, account.account_id):
                    return self._finish(
                        conn, request, client, request_data, account, session.acr, session.amr, None
                    )
            flow = accounts.start_flow(conn, request_data)
        response = RedirectResponse("/auth/login", 303)
        self._cookie(request, response, FLOW_COOKIE, flow, accounts.FLOW_TTL)
        return response

    def _session(self, conn: Any, request: Request) -> Any:
        from sqlalchemy import select

        from socle.trust.auth.schema import auth_session

        value = request.cookies.get(SESSION_COOKIE)
        if not value:
            return None
        row = conn.execute(
            select(auth_session).where(auth_session.c.session_hash == token_hash(value))
        ).first()
        return row if row is not None and row.expires_at > time.time() else None

    # -- /auth/login ----------------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        with self.store.read() as conn:
            flow = accounts.get_flow(conn, request.cookies.get(FLOW_COOKIE))
        if flow is None:
            return page(
                "error.html", 400, title="Session expirée", message="Recommencez depuis l'application."
            )
        return page("login.html", title="Connexion", csrf=flow.csrf)

    async def login(self, request: Request) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        address = request.client.host if request.client else "unknown"
        return await run_in_threadpool(self._login, request, form, address)

    def _login(self, request: Request, form: dict[str, str], address: str) -> Response:
        flow_id = request.cookies.get(FLOW_COOKIE, "")
        with self.store.write() as conn:
            flow = accounts.get_flow(conn, flow_id)
            if flow is None or not hmac.compare_digest(form.get("csrf", ""), flow.csrf):
                return page("error.html", 403, title="Requête refusée", message="Jeton anti-CSRF invalide.")
            kind = form.get("kind", "")
            if kind not in ("professional", "citizen"):
                return page("login.html", 400, title="Connexion", csrf=flow.csrf, error="Espace inconnu.")
            try:
                account = accounts.check_password(
                    conn,
                    self.settings,
                    kind,
                    form.get("login", "").strip(),
                    form.get("password", ""),
                    address,
                )
            except accounts.LoginRefused as refused:
                status = 429 if refused.locked_for else 401
                return page("login.html", status, title="Connexion", csrf=flow.csrf, error=str(refused))
            if kind == "professional":
                accounts.update_flow(conn, flow_id, kind=kind, account_id=account.account_id, stage="totp")
                hint = "Saisissez le code affiché par votre application d'authentification (TOTP)."
            else:
                code = f"{secrets.randbelow(10**6):06d}"
                accounts.update_flow(
                    conn,
                    flow_id,
                    kind=kind,
                    account_id=account.account_id,
                    stage="otp",
                    otp_hash=token_hash(code),
                )
                accounts.send_message(
                    conn,
                    self.settings,
                    account.login,
                    "Votre code de connexion",
                    f"Votre code de connexion à usage unique : {code}\nIl expire dans 15 minutes.",
                )
                hint = "Un code à usage unique vient de vous être envoyé par courriel."
        return page("second_factor.html", title="Second facteur", csrf=flow.csrf, hint=hint)

    async def code(self, request: Request) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        return await run_in_threadpool(self._code, request, form)

    def _code(self, request: Request, form: dict[str, str]) -> Response:
        flow_id = request.cookies.get(FLOW_COOKIE, "")
        with self.store.write() as conn:
            flow = accounts.get_flow(conn, flow_id)
            if flow is None or not hmac.compare_digest(form.get("csrf", ""), flow.csrf):
                return page("error.html", 403, title="Requête refusée", message="Jeton anti-CSRF invalide.")
            account = accounts.get_account(conn, flow.account_id or "")
            if account is None or flow.stage not in ("totp", "otp"):
                return page("error.html", 400, title="Connexion", message="Recommencez la connexion.")
            code = form.get("code", "").strip()
            if flow.stage == "totp":
                ok, acr, amr = accounts.verify_totp(account, code), "eidas1", ["pwd", "otp"]
            else:
                ok = hmac.compare_digest(token_hash(code), flow.otp_hash or "")
                acr, amr = "eidas1", ["pwd", "mail"]
            if not ok:
                failures = int(flow.challenge or "0") + 1
                if failures >= MAX_CODE_FAILURES:
                    accounts.end_flow(conn, flow_id)
                    return page("error.html", 429, title="Trop d'essais", message="Recommencez la connexion.")
                accounts.update_flow(conn, flow_id, challenge=str(failures))
                return page(
                    "second_factor.html",
                    401,
                    title="Second facteur",
                    csrf=flow.csrf,
                    hint="Saisissez le code.",
                    error="Code incorrect.",
                )
            delegations = accounts.delegations_of(conn, account.account_id)
            if delegations:
                accounts.update_flow(conn, flow_id, stage="for", challenge=f"{acr} {' '.join(amr)}")
                options = [{"value": "self", "label": "Moi-même"}] + [
                    {"value": d.delegation_id, "label": f"Patient {d.patient} ({_RELATION[d.relationship]})"}
                    for d in delegations
                ]
                return page("choose.html", title="Pour qui ?", csrf=flow.csrf, options=options)
            client = get_client(conn, flow.request["client_id"])
            assert client is not None
            accounts.end_flow(conn, flow_id)
            return self._finish(
                conn, request, client, flow.request, account, acr, amr, None, new_session=True
            )

    async def choose(self, request: Request) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        return await run_in_threadpool(self._choose, request, form)

    def _choose(self, request: Request, form: dict[str, str]) -> Response:
        flow_id = request.cookies.get(FLOW_COOKIE, "")
        with self.store.write() as conn:
            flow = accounts.get_flow(conn, flow_id)
            if (
                flow is None
                or not hmac.compare_digest(form.get("csrf", ""), flow.csrf)
                or flow.stage != "for"
            ):
                return page("error.html", 403, title="Requête refusée", message="Jeton anti-CSRF invalide.")
            account = accounts.get_account(conn, flow.account_id or "")
            assert account is not None
            chosen = form.get("for", "self")
            delegation = next(
                (d for d in accounts.delegations_of(conn, account.account_id) if d.delegation_id == chosen),
                None,
            )
            if chosen != "self" and delegation is None:
                return page("error.html", 403, title="Refusé", message="Délégation inconnue.")
            acr, *amr = (flow.challenge or "eidas1").split()
            client = get_client(conn, flow.request["client_id"])
            assert client is not None
            accounts.end_flow(conn, flow_id)
            return self._finish(
                conn, request, client, flow.request, account, acr, amr, delegation, new_session=True
            )

    # -- issuing the code ------------------------------------------------------------------------

    def _finish(
        self,
        conn: Any,
        request: Request,
        client: Client,
        req: dict[str, Any],
        account: accounts.Account,
        acr: str,
        amr: list[str],
        delegation: accounts.Delegation | None,
        *,
        new_session: bool = False,
    ) -> Response:
        grant = build_grant(client, req, account, acr, amr, delegation)
        code = create_code(conn, client, req["redirect_uri"], grant, req.get("code_challenge"))
        query = {"code": code, "iss": issuer_of(request, self.settings)}
        if req.get("state"):
            query["state"] = req["state"]
        uri = req["redirect_uri"]
        response = RedirectResponse(f"{uri}{'&' if '?' in uri else '?'}{urlencode(query)}", 303)
        if new_session:
            session = accounts.create_session(conn, account.account_id, acr, amr)
            self._cookie(request, response, SESSION_COOKIE, session, accounts.SESSION_TTL)
            response.delete_cookie(FLOW_COOKIE, path="/auth")
        return response

    # -- /auth/logout (RP-initiated logout 1.0) ----------------------------------------------------

    async def logout(self, request: Request) -> Response:
        return await run_in_threadpool(self._logout, request, dict(request.query_params))

    def _logout(self, request: Request, params: dict[str, str]) -> Response:
        target: str | None = None
        with self.store.write() as conn:
            session = request.cookies.get(SESSION_COOKIE)
            if session:
                accounts.end_session(conn, session)
            hint, wanted = params.get("id_token_hint"), params.get("post_logout_redirect_uri")
            if hint and wanted:
                issuer = issuer_of(request, self.settings)
                try:
                    claims = verify_jwt(
                        verification_keys(conn), hint, issuer, params.get("client_id") or _aud(hint)
                    )
                except InvalidToken:
                    claims = None
                client = get_client(conn, str(claims["aud"])) if claims else None
                if client is not None and wanted in client.post_logout_redirect_uris + client.redirect_uris:
                    target = wanted + (
                        f"?{urlencode({'state': params['state']})}" if params.get("state") else ""
                    )
        response: Response = (
            RedirectResponse(target, 303)
            if target
            else page("error.html", title="Déconnexion", message="Vous êtes déconnecté.")
        )
        response.delete_cookie(SESSION_COOKIE, path="/auth")
        return response


_RELATION = {"guardian": "représentant légal", "helper": "aidant"}


def _aud(token: str) -> str:
    import json

    from joserfc import jws

    try:
        aud = json.loads(jws.extract_compact(token.encode()).payload).get("aud", "")
    except ValueError:
        return ""
    return str(aud[0] if isinstance(aud, list) and aud else aud)


def build_grant(
    client: Client,
    req: dict[str, Any],
    account: accounts.Account,
    acr: str,
    amr: list[str],
    delegation: accounts.Delegation | None,
) -> dict[str, Any]:
    """What the tokens of this login will say: who, which scopes, patient in context, who acts for whom."""
    claims = account.claims
    scopes = ScopeSet.parse(req["scope"])
    grant: dict[str, Any] = {
        "sub": account.account_id,
        "client_id": client.client_id,
        "kind": account.kind,
        "acr": acr,
        "amr": amr,
        "auth_time": int(time.time()),
        "nonce": req.get("nonce"),
        "fhirUser": claims.get("fhirUser"),
        "identity": claims.get("identity", {}),
    }
    if account.kind == "professional":
        grant["practice"] = claims.get("practice")
    if account.kind == "citizen":
        own = str(claims.get("patient", ""))
        patient = own
        if delegation is not None:
            # The delegate acts for the patient, within the delegation's scopes (a helper's are few).
            patient = delegation.patient
            scopes = scopes.narrow_to(ScopeSet.parse(delegation.scope))
            grant["act"] = {"sub": account.account_id, "fhirUser": claims.get("fhirUser")}
            grant["relationship"] = delegation.relationship
        if scopes.has("launch/patient") or delegation is not None:
            grant["patient"] = patient
    grant["scope"] = str(scopes)
    return grant


def login_routes(store: Store, settings: Settings) -> list[BaseRoute]:
    pages = LoginPages(store, settings)
    return [
        Route("/auth/authorize", pages.authorize, methods=["GET", "POST"]),
        Route("/auth/login", pages.login_form, methods=["GET"]),
        Route("/auth/login", pages.login, methods=["POST"]),
        Route("/auth/login/code", pages.code, methods=["POST"]),
        Route("/auth/login/for", pages.choose, methods=["POST"]),
        Route("/auth/logout", pages.logout, methods=["GET", "POST"]),
        Mount("/static", app=StaticFiles(directory=_HERE / "static", check_dir=False), name="static"),
    ]
