"""Passkeys (WebAuthn) for professionals: the "Mes clés d'accès" page and the passkey login step.

- `GET /auth/passkeys`: the account's passkeys; needs a session opened by a full login (password +
  TOTP or passkey); without one, the browser is sent to `/auth/login?next=/auth/passkeys`.
- `POST /auth/passkeys/options` → creation options (JSON); `POST /auth/passkeys` with the credential
  (JSON, as `static/passkeys.js` or any WebAuthn client serialises it) registers it;
  `POST /auth/passkeys/remove` removes one. Forms carry a CSRF token derived from the session.
- `POST /auth/login/passkey/options` and `POST /auth/login/passkey`: the second factor of a login in
  progress (after the password), instead of TOTP; success gives `assurance.PASSKEY` (acr `eidas2`).
"""

from __future__ import annotations

import hmac
import json
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from socle.api.auth._common import issuer_of, json_response
from socle.config import Settings
from socle.portals._web import (
    FLOW_COOKIE,
    csrf_ok,
    current_session,
    form_of,
    page,
    session_csrf,
)
from socle.portals.login import MAX_CODE_FAILURES, LoginPages
from socle.store.repository import Store
from socle.trust.auth import accounts, assurance, passkeys

TITLE = "Mes clés d'accès"


class PasskeyPages:
    def __init__(self, store: Store, settings: Settings, login: LoginPages) -> None:
        self.store = store
        self.settings = settings
        self.login = login

    def _account(self, conn: Any, request: Request) -> accounts.Account | None:
        session = current_session(conn, request)
        # Only a session opened with the password and a second factor of Socle's own (TOTP or a
        # passkey) may manage passkeys: not a federated or e-mail-code login.
        amr = set(session.amr or []) if session is not None else set()
        if session is None or "fed" in amr or not {"otp", "hwk"} & amr:
            return None
        account = accounts.get_account(conn, session.account_id)
        return account if account is not None and account.active else None

    def _list(
        self, conn: Any, request: Request, account: accounts.Account, status: int = 200, **extra: Any
    ) -> Response:
        if account.kind != "professional":
            message = "Les clés d'accès sont réservées aux professionnels de santé."
            return page("error.html", 403, title=TITLE, message=message)
        keys = [
            {
                "credential_id": p.credential_id,
                "created": time.strftime("%d/%m/%Y %H:%M", time.gmtime(p.created_at)),
            }
            for p in passkeys.passkeys_of(conn, account.account_id)
        ]
        return page("passkeys.html", status, title=TITLE, csrf=session_csrf(request), passkeys=keys, **extra)

    async def show(self, request: Request) -> Response:
        with self.store.read() as conn:
            account = self._account(conn, request)
            if account is None:
                return RedirectResponse("/auth/login?next=/auth/passkeys", 303)
            return self._list(conn, request, account)

    async def options(self, request: Request) -> Response:
        form = await form_of(request)
        return await run_in_threadpool(self._options, request, form)

    def _options(self, request: Request, form: dict[str, str]) -> Response:
        with self.store.write() as conn:
            account = self._account(conn, request)
            if account is None or account.kind != "professional":
                return json_response({"error": "login_required"}, 401)
            if not csrf_ok(session_csrf(request), form.get("csrf")):
                return json_response({"error": "csrf"}, 403)
            options = passkeys.registration_options(conn, account, issuer_of(request, self.settings))
        return json_response(json.loads(options))

    async def register(self, request: Request) -> Response:
        form = await form_of(request)
        return await run_in_threadpool(self._register, request, form)

    def _register(self, request: Request, form: dict[str, str]) -> Response:
        with self.store.write() as conn:
            account = self._account(conn, request)
            if account is None:
                return RedirectResponse("/auth/login?next=/auth/passkeys", 303)
            if not csrf_ok(session_csrf(request), form.get("csrf")):
                return page("error.html", 403, title="Requête refusée", message="Jeton anti-CSRF invalide.")
            try:
                credential = json.loads(form.get("credential", ""))
                if not isinstance(credential, dict):
                    raise ValueError
                passkeys.register(conn, account, issuer_of(request, self.settings), credential)
            except ValueError:
                return self._list(
                    conn, request, account, 400, error="Réponse de l'authentificateur illisible."
                )
            except passkeys.PasskeyRefused as refused:
                return self._list(conn, request, account, 400, error=str(refused))
            return self._list(conn, request, account, notice="Clé d'accès enregistrée.")

    async def remove(self, request: Request) -> Response:
        form = await form_of(request)
        return await run_in_threadpool(self._remove, request, form)

    def _remove(self, request: Request, form: dict[str, str]) -> Response:
        with self.store.write() as conn:
            account = self._account(conn, request)
            if account is None:
                return RedirectResponse("/auth/login?next=/auth/passkeys", 303)
            if not csrf_ok(session_csrf(request), form.get("csrf")):
                return page("error.html", 403, title="Requête refusée", message="Jeton anti-CSRF invalide.")
            if not passkeys.remove_passkey(conn, account.account_id, form.get("credential_id", "")):
                return self._list(conn, request, account, 404, error="Clé d'accès inconnue.")
            return self._list(conn, request, account, notice="Clé d'accès supprimée.")

    # -- the passkey as the second factor of a login ----------------------------------------------

    def _flow(
        self, conn: Any, request: Request, form: dict[str, str]
    ) -> tuple[str, Any, accounts.Account | None]:
        flow_id = request.cookies.get(FLOW_COOKIE, "")
        flow = accounts.get_flow(conn, flow_id)
        if flow is None or not hmac.compare_digest(form.get("csrf", ""), flow.csrf):
            return flow_id, None, None
        account = accounts.get_account(conn, flow.account_id or "")
        if account is None or account.kind != "professional" or flow.stage not in ("totp", "otp"):
            return flow_id, flow, None
        return flow_id, flow, account

    async def login_options(self, request: Request) -> Response:
        form = await form_of(request)
        return await run_in_threadpool(self._login_options, request, form)

    def _login_options(self, request: Request, form: dict[str, str]) -> Response:
        with self.store.write() as conn:
            _flow_id, flow, account = self._flow(conn, request, form)
            if account is None:
                return json_response({"error": "invalid_flow"}, 403 if flow is None else 400)
            try:
                options = passkeys.authentication_options(conn, account, issuer_of(request, self.settings))
            except passkeys.PasskeyRefused as refused:
                return json_response({"error": str(refused)}, 400)
        return json_response(json.loads(options))

    async def login_with_passkey(self, request: Request) -> Response:
        form = await form_of(request)
        return await run_in_threadpool(self._login_with_passkey, request, form)

    def _login_with_passkey(self, request: Request, form: dict[str, str]) -> Response:
        with self.store.write() as conn:
            flow_id, flow, account = self._flow(conn, request, form)
            if flow is None:
                return page("error.html", 403, title="Requête refusée", message="Jeton anti-CSRF invalide.")
            if account is None:
                return page("error.html", 400, title="Connexion", message="Recommencez la connexion.")
            try:
                credential = json.loads(form.get("credential", ""))
                if not isinstance(credential, dict):
                    raise passkeys.PasskeyRefused("Réponse de l'authentificateur illisible.")
                passkeys.authenticate(conn, account, issuer_of(request, self.settings), credential)
            except (ValueError, passkeys.PasskeyRefused) as refused:
                failures = int(flow.challenge or "0") + 1
                if failures >= MAX_CODE_FAILURES:
                    accounts.end_flow(conn, flow_id)
                    return page("error.html", 429, title="Trop d'essais", message="Recommencez la connexion.")
                accounts.update_flow(conn, flow_id, challenge=str(failures))
                message = (
                    str(refused) if isinstance(refused, passkeys.PasskeyRefused) else "Réponse illisible."
                )
                return page(
                    "second_factor.html",
                    401,
                    title="Second facteur",
                    csrf=flow.csrf,
                    hint="Saisissez le code ou réessayez avec votre clé d'accès.",
                    error=message,
                    passkeys=True,
                )
            acr, amr = assurance.PASSKEY
            return self.login.authenticated(conn, request, flow_id, flow, account, acr, list(amr))


def passkey_routes(store: Store, settings: Settings, login: LoginPages) -> list[BaseRoute]:
    pages = PasskeyPages(store, settings, login)
    return [
        Route("/auth/passkeys", pages.show, methods=["GET"]),
        Route("/auth/passkeys", pages.register, methods=["POST"]),
        Route("/auth/passkeys/options", pages.options, methods=["POST"]),
        Route("/auth/passkeys/remove", pages.remove, methods=["POST"]),
        Route("/auth/login/passkey/options", pages.login_options, methods=["POST"]),
        Route("/auth/login/passkey", pages.login_with_passkey, methods=["POST"]),
    ]
