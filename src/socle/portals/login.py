"""The authorization endpoint and the login pages (OpenID Connect Core §3.1, SMART App Launch v2).

Browser flow: `/auth/authorize` checks the request (client, exact redirect URI, PKCE, scopes, EHR
launch context) and starts a login flow bound to a cookie; `/auth/login` asks for the identifier and
password, then a second factor (TOTP or a passkey for professionals, TOTP or a one-time code sent by
the delivery interface for citizens), then, for a citizen who holds delegations, whom they act for,
and, for a professional's standalone `launch/patient`, which patient; the code is then sent back to
the client. `/auth/login?next=/auth/passkeys` is the same login without an application: it opens a
session for Socle's own account pages. Errors that happen before the redirect URI is known to belong
to the client are shown here, never redirected (no open redirector, RFC 6749 §4.1.2.1). Every form
carries the flow's CSRF token (synchronizer pattern), and cookies are HttpOnly, SameSite=Lax, and
Secure on HTTPS. `acr`/`amr` values follow `socle.trust.auth.assurance`.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from socle.api.auth._common import issuer_of
from socle.config import Settings
from socle.portals._web import (
    FLOW_COOKIE,
    HERE,
    SESSION_COOKIE,
    current_session,
    form_of,
    page,
    set_cookie,
)
from socle.portals.language import tr
from socle.store.access import SYSTEM
from socle.store.repository import Store
from socle.trust.auth import accounts, assurance
from socle.trust.auth.clients import Client, get_client
from socle.trust.auth.errors import InvalidToken
from socle.trust.auth.grants import create_code
from socle.trust.auth.keys import verification_keys
from socle.trust.auth.launch import LaunchContext, consume_launch, peek_launch
from socle.trust.auth.passkeys import passkeys_of
from socle.trust.auth.passwords import token_hash
from socle.trust.auth.scopes import ScopeSet
from socle.trust.auth.tokens import verify_jwt

MAX_CODE_FAILURES = 5
# Socle's own pages a login without an application may lead to.
PORTAL_PAGES = frozenset({"/auth/passkeys", "/auth/account"})
_RELATION = {"guardian": "représentant légal", "helper": "aidant"}


class LoginPages:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    # -- /auth/authorize ----------------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        params = dict(request.query_params)
        if request.method == "POST":
            params.update(await form_of(request))
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
            launch = params.get("launch")
            if launch:  # EHR launch: the context must exist, be unused, unexpired, and this client's
                if not scopes.has("launch"):
                    return fail("invalid_scope", "The launch parameter needs the launch scope")
                if peek_launch(conn, launch, client.client_id) is None:
                    return fail("invalid_request", "Unknown, expired or already used launch context")
            elif scopes.has("launch"):  # no EHR context to bind: the scope grants nothing
                scopes = ScopeSet.parse(" ".join(s for s in scopes.raw if s != "launch"))
            if not scopes.raw:
                return fail("invalid_scope", "None of the requested scopes is allowed for this client")
            acr_values = params.get("acr_values", "").split()
            request_data = {
                "client_id": client.client_id,
                "redirect_uri": redirect_uri,
                "scope": str(scopes),
                "state": state,
                "nonce": params.get("nonce"),
                "code_challenge": challenge,
                "aud": params.get("aud"),
                "launch": launch,
                "acr": max(
                    (a for a in acr_values if a in assurance.LEVELS),
                    key=assurance.LEVELS.index,
                    default=None,
                ),
            }
            session = current_session(conn, request)
            if (
                session is not None
                and params.get("prompt") != "login"
                and assurance.meets(session.acr, request_data["acr"])
            ):
                account = accounts.get_account(conn, session.account_id)
                if account is not None and self._next_stage(conn, account, request_data) is None:
                    return self._finish(
                        conn, request, client, request_data, account, session.acr, session.amr, {}
                    )
                if account is not None:  # signed in, but a choice is still needed (for whom, patient)
                    flow_id = accounts.start_flow(conn, request_data)
                    flow_row = accounts.get_flow(conn, flow_id)
                    response = self.authenticated(
                        conn, request, flow_id, flow_row, account, session.acr, list(session.amr)
                    )
                    set_cookie(request, response, FLOW_COOKIE, flow_id, accounts.FLOW_TTL)
                    return response
            flow = accounts.start_flow(conn, request_data)
        response = RedirectResponse("/auth/login", 303)
        set_cookie(request, response, FLOW_COOKIE, flow, accounts.FLOW_TTL)
        return response

    # -- /auth/login ----------------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        wanted = request.query_params.get("next")
        if wanted is not None:  # a login for Socle's own pages, without an application
            if wanted not in PORTAL_PAGES:
                return page("error.html", 400, title="Page inconnue", message="Adresse de retour refusée.")
            with self.store.write() as conn:
                flow_id = accounts.start_flow(conn, {"next": wanted})
                flow = accounts.get_flow(conn, flow_id)
            response = page("login.html", title="Connexion", csrf=flow.csrf, **self._login_context())
            set_cookie(request, response, FLOW_COOKIE, flow_id, accounts.FLOW_TTL)
            return response
        with self.store.read() as conn:
            flow = accounts.get_flow(conn, request.cookies.get(FLOW_COOKIE))
        if flow is None:
            return page(
                "error.html", 400, title="Session expirée", message="Recommencez depuis l'application."
            )
        return page("login.html", title="Connexion", csrf=flow.csrf, **self._login_context())

    async def step(self, request: Request) -> Response:
        return await run_in_threadpool(self._step, request)

    def _step(self, request: Request) -> Response:
        """The current step of the login in progress, shown again (e.g. in another language);
        without one, the login page."""
        with self.store.read() as conn:
            flow = accounts.get_flow(conn, request.cookies.get(FLOW_COOKIE))
            account = accounts.get_account(conn, flow.account_id or "") if flow is not None else None
            if flow is None or account is None:
                return RedirectResponse("/auth/login", 303)
            if flow.stage in ("totp", "otp"):
                hint = (
                    "Saisissez le code affiché par votre application d'authentification (TOTP)."
                    if flow.stage == "totp"
                    else "Un code à usage unique vient de vous être envoyé par courriel."
                )
                passkeys = account.kind == "professional" and bool(passkeys_of(conn, account.account_id))
                return page(
                    "second_factor.html", title="Second facteur", csrf=flow.csrf, hint=hint, passkeys=passkeys
                )
            if flow.stage == "for":
                return page(
                    "choose.html", title="Pour qui ?", csrf=flow.csrf, options=self._options(conn, account)
                )
            if flow.stage == "patient":
                return page("patient.html", title="Choix du patient", csrf=flow.csrf)
        return RedirectResponse("/auth/login", 303)

    def _options(self, conn: Any, account: accounts.Account) -> list[dict[str, str]]:
        """Whom a citizen may act for: themself, or a patient of one of their delegations."""
        return [{"value": "self", "label": tr("Moi-même")}] + [
            {
                "value": d.delegation_id,
                "label": tr(
                    "Patient {patient} ({relation})",
                    patient=d.patient,
                    relation=tr(_RELATION[d.relationship]),
                ),
            }
            for d in accounts.delegations_of(conn, account.account_id)
        ]

    def _login_context(self) -> dict[str, Any]:
        if not self.settings.federation_issuer:
            return {}
        return {"federation_name": self.settings.federation_name or self.settings.federation_issuer}

    async def login(self, request: Request) -> Response:
        form = await form_of(request)
        address = request.client.host if request.client else "unknown"
        return await run_in_threadpool(self._login, request, form, address)

    def _login(self, request: Request, form: dict[str, str], address: str) -> Response:
        flow_id = request.cookies.get(FLOW_COOKIE, "")
        with self.store.write() as conn:
            flow = accounts.get_flow(conn, flow_id)
            if flow is None or not hmac.compare_digest(form.get("csrf", ""), flow.csrf):
                return page("error.html", 403, title="Requête refusée", message="Jeton anti-CSRF invalide.")
            kind = form.get("kind", "")
            context = self._login_context()
            if kind not in ("professional", "citizen"):
                return page(
                    "login.html", 400, title="Connexion", csrf=flow.csrf, error="Espace inconnu.", **context
                )
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
                return page(
                    "login.html", status, title="Connexion", csrf=flow.csrf, error=str(refused), **context
                )
            passkeys = bool(passkeys_of(conn, account.account_id)) if kind == "professional" else False
            if account.totp_secret:
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
                    str(account.claims.get("email") or account.login),
                    tr("Votre code de connexion"),
                    tr(
                        "Votre code de connexion à usage unique : {code}\nIl expire dans 15 minutes.",
                        code=code,
                    ),
                )
                hint = "Un code à usage unique vient de vous être envoyé par courriel."
        return page(
            "second_factor.html", title="Second facteur", csrf=flow.csrf, hint=hint, passkeys=passkeys
        )

    async def code(self, request: Request) -> Response:
        form = await form_of(request)
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
                ok = accounts.use_totp(conn, account, code)  # single use: a replay is refused
                acr, amr = assurance.TOTP
            else:
                ok = hmac.compare_digest(token_hash(code), flow.otp_hash or "")
                acr, amr = assurance.MAIL_CODE
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
                    passkeys=account.kind == "professional" and bool(passkeys_of(conn, account.account_id)),
                )
            return self.authenticated(conn, request, flow_id, flow, account, acr, list(amr))

    def authenticated(
        self,
        conn: Any,
        request: Request,
        flow_id: str,
        flow: Any,
        account: accounts.Account,
        acr: str,
        amr: list[str],
    ) -> Response:
        """The person is authenticated (both factors, or a federated login): ask what is still
        needed (for whom, which patient) or finish."""
        if not assurance.meets(acr, flow.request.get("acr")):
            accounts.end_flow(conn, flow_id)
            message = "Cette application exige une connexion plus forte (clé d'accès)."
            return page("error.html", 403, title="Niveau de connexion insuffisant", message=message)
        carried = f"{acr} {' '.join(amr)}"
        stage = self._next_stage(conn, account, flow.request)
        who = {"account_id": account.account_id, "kind": account.kind}
        if stage == "for":
            accounts.update_flow(conn, flow_id, stage="for", challenge=carried, **who)
            options = self._options(conn, account)
            return page("choose.html", title="Pour qui ?", csrf=flow.csrf, options=options)
        if stage == "patient":
            accounts.update_flow(conn, flow_id, stage="patient", challenge=carried, **who)
            return page("patient.html", title="Choix du patient", csrf=flow.csrf)
        return self._complete(conn, request, flow_id, flow, account, acr, amr, {})

    def _next_stage(self, conn: Any, account: accounts.Account, req: dict[str, Any]) -> str | None:
        if "client_id" not in req:
            return None
        if account.kind == "citizen" and accounts.delegations_of(conn, account.account_id):
            return "for"
        scopes = ScopeSet.parse(req.get("scope", ""))
        if account.kind == "professional" and scopes.has("launch/patient") and not req.get("launch"):
            return "patient"
        return None

    def _complete(
        self,
        conn: Any,
        request: Request,
        flow_id: str,
        flow: Any,
        account: accounts.Account,
        acr: str,
        amr: list[str],
        extra: dict[str, Any],
    ) -> Response:
        accounts.end_flow(conn, flow_id)
        if "client_id" not in flow.request:  # Socle's own pages
            response: Response = RedirectResponse(flow.request.get("next", "/auth/passkeys"), 303)
            session = accounts.create_session(conn, account.account_id, acr, amr)
            set_cookie(request, response, SESSION_COOKIE, session, accounts.SESSION_TTL)
            response.delete_cookie(FLOW_COOKIE, path="/auth")
            return response
        client = get_client(conn, flow.request["client_id"])
        if client is None:
            return page("error.html", 400, title="Application inconnue", message="client_id inconnu.")
        return self._finish(conn, request, client, flow.request, account, acr, amr, extra, new_session=True)

    async def choose(self, request: Request) -> Response:
        form = await form_of(request)
        return await run_in_threadpool(self._choose, request, form)

    def _choose(self, request: Request, form: dict[str, str]) -> Response:
        flow_id = request.cookies.get(FLOW_COOKIE, "")
        with self.store.write() as conn:
            flow = _flow_at(conn, flow_id, form, "for")
            if flow is None:
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
            extra = {"delegation": delegation} if delegation else {}
            return self._complete(conn, request, flow_id, flow, account, acr, amr, extra)

    async def choose_patient(self, request: Request) -> Response:
        form = await form_of(request)
        return await run_in_threadpool(self._choose_patient, request, form)

    def _choose_patient(self, request: Request, form: dict[str, str]) -> Response:
        """Standalone `launch/patient` for a professional: the patient picker (by resource id or INS)."""
        flow_id = request.cookies.get(FLOW_COOKIE, "")
        with self.store.write() as conn:
            flow = _flow_at(conn, flow_id, form, "patient")
            if flow is None:
                return page("error.html", 403, title="Requête refusée", message="Jeton anti-CSRF invalide.")
            account = accounts.get_account(conn, flow.account_id or "")
            assert account is not None
            wanted = form.get("patient", "").strip()
            patient = self._find_patient(conn, wanted)
            if patient is None:
                return page(
                    "patient.html",
                    404,
                    title="Choix du patient",
                    csrf=flow.csrf,
                    value=wanted,
                    error="Aucun patient ne correspond à cet identifiant.",
                )
            acr, *amr = (flow.challenge or "eidas1").split()
            return self._complete(conn, request, flow_id, flow, account, acr, amr, {"patient": patient})

    def _find_patient(self, conn: Any, wanted: str) -> str | None:
        if not wanted or len(wanted) > 64 or not all(c.isalnum() or c in "-." for c in wanted):
            return None
        for query in (f"_id={wanted}", f"identifier={wanted}"):
            ids = self.store.find(conn, "Patient", query, SYSTEM, limit=2)
            if len(ids) == 1:
                return ids[0]
        return None

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
        extra: dict[str, Any],
        *,
        new_session: bool = False,
    ) -> Response:
        launch: LaunchContext | None = None
        if req.get("launch"):
            launch = consume_launch(conn, req["launch"], client.client_id)
            if launch is None:
                message = "Le contexte de lancement a expiré ou a déjà servi. Relancez l'application."
                return page("error.html", 400, title="Lancement refusé", message=message)
        grant = build_grant(
            client,
            req,
            account,
            acr,
            amr,
            extra.get("delegation"),
            launch=launch,
            patient=extra.get("patient"),
        )
        code = create_code(conn, client, req["redirect_uri"], grant, req.get("code_challenge"))
        query = {"code": code, "iss": issuer_of(request, self.settings)}
        if req.get("state"):
            query["state"] = req["state"]
        uri = req["redirect_uri"]
        response = RedirectResponse(f"{uri}{'&' if '?' in uri else '?'}{urlencode(query)}", 303)
        if new_session:
            session = accounts.create_session(conn, account.account_id, acr, amr)
            set_cookie(request, response, SESSION_COOKIE, session, accounts.SESSION_TTL)
            response.delete_cookie(FLOW_COOKIE, path="/auth")
        return response

    # -- /auth/logout (RP-initiated logout 1.0) ----------------------------------------------------

    async def logout(self, request: Request) -> Response:
        params = dict(request.query_params)
        if request.method == "POST":
            params.update(await form_of(request))
        return await run_in_threadpool(self._logout, request, params)

    def _logout(self, request: Request, params: dict[str, str]) -> Response:
        """Ends the browser's session; redirects to `post_logout_redirect_uri` only when it is
        registered for the client the `id_token_hint` was issued to (OIDC RP-Initiated Logout §2–3)."""
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
                if client is not None and wanted in client.post_logout_redirect_uris:  # exact match
                    target = wanted + (
                        f"{'&' if '?' in wanted else '?'}{urlencode({'state': params['state']})}"
                        if params.get("state")
                        else ""
                    )
        response: Response = (
            RedirectResponse(target, 303)
            if target
            else page("error.html", title="Déconnexion", message="Vous êtes déconnecté.")
        )
        response.delete_cookie(SESSION_COOKIE, path="/auth")
        return response


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
    *,
    launch: LaunchContext | None = None,
    patient: str | None = None,
) -> dict[str, Any]:
    """What the tokens of this login will say: who, which scopes, patient (and encounter) in
    context, who acts for whom."""
    import time

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
        if launch is not None:  # EHR launch: the context the professional's side created
            grant["patient"] = launch.patient
            if launch.encounter:
                grant["encounter"] = launch.encounter
        elif patient and scopes.has("launch/patient"):  # standalone: the patient picked
            grant["patient"] = patient
    if account.kind == "citizen":
        own = str(claims.get("patient", ""))
        chosen = own
        if delegation is not None:
            # The delegate acts for the patient, within the delegation's scopes (a helper's are few).
            chosen = delegation.patient
            scopes = scopes.narrow_to(ScopeSet.parse(delegation.scope))
            grant["act"] = {"sub": account.account_id, "fhirUser": claims.get("fhirUser")}
            grant["relationship"] = delegation.relationship
        if scopes.has("launch/patient") or scopes.has("launch") or delegation is not None:
            grant["patient"] = chosen
    grant["scope"] = str(scopes)
    return grant


def login_routes(store: Store, settings: Settings) -> list[BaseRoute]:
    pages = LoginPages(store, settings)
    return [
        Route("/auth/authorize", pages.authorize, methods=["GET", "POST"]),
        Route("/auth/login", pages.login_form, methods=["GET"]),
        Route("/auth/login", pages.login, methods=["POST"]),
        Route("/auth/login/code", pages.code, methods=["POST"]),
        Route("/auth/login/step", pages.step, methods=["GET"]),
        Route("/auth/login/for", pages.choose, methods=["POST"]),
        Route("/auth/login/patient", pages.choose_patient, methods=["POST"]),
        Route("/auth/logout", pages.logout, methods=["GET", "POST"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static", check_dir=False), name="static"),
    ]


def _flow_at(conn: Connection, flow_id: str, form: dict[str, str], stage: str) -> Any:
    """The login flow of this browser if the form carries its CSRF token and it is at `stage`."""
    flow = accounts.get_flow(conn, flow_id)
    if flow is None or flow.stage != stage or not hmac.compare_digest(form.get("csrf", ""), flow.csrf):
        return None
    return flow
