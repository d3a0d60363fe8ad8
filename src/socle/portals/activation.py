"""`/activation`: a citizen activates the account an operator created for a qualified identity.

Step 1 (`GET`/`POST /activation`): e-mail address, the one-time activation code received through the
delivery interface, and a new password (twice, at least 12 characters). Step 2 (`POST
/activation/totp`): enrolment of a TOTP second factor (secret shown as text and `otpauth://` URI,
confirmed by a first code); skipping it leaves the one-time code by e-mail as the second factor.
Forms carry a CSRF token that is also in a cookie limited to `/activation` (double submit), and the
pending TOTP secret lives server-side in a flow record, never in the browser.
"""

from __future__ import annotations

import hmac
from typing import Any

import pyotp
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from socle.config import Settings
from socle.portals._web import csrf_ok, form_of, fresh_token, page, set_cookie
from socle.portals.language import tr
from socle.store.repository import Store
from socle.trust.auth import accounts

CSRF_COOKIE = "socle_activation"
FLOW_COOKIE = "socle_activation_flow"
PATH = "/activation"
TITLE = "Activer mon compte"


class ActivationPages:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def _form(self, request: Request, status: int = 200, **context: Any) -> Response:
        csrf = request.cookies.get(CSRF_COOKIE) or fresh_token()
        response = page("activation.html", status, title=TITLE, csrf=csrf, **context)
        set_cookie(request, response, CSRF_COOKIE, csrf, 3600, path=PATH)
        return response

    async def show(self, request: Request) -> Response:
        return self._form(request)

    async def activate(self, request: Request) -> Response:
        form = await form_of(request)
        address = request.client.host if request.client else "unknown"
        return await run_in_threadpool(self._activate, request, form, address)

    def _activate(self, request: Request, form: dict[str, str], address: str) -> Response:
        if not csrf_ok(request.cookies.get(CSRF_COOKIE, ""), form.get("csrf")):
            return page("error.html", 403, title="Requête refusée", message="Jeton anti-CSRF invalide.")
        email, code = form.get("email", "").strip(), form.get("code", "")
        password, confirm = form.get("password", ""), form.get("confirm", "")
        errors: list[dict[str, str]] = []
        if not email:
            errors.append({"field": "email", "message": "Indiquez votre adresse électronique."})
        if not code.strip():
            errors.append({"field": "code", "message": "Indiquez le code d'activation reçu."})
        if len(password) < accounts.MIN_PASSWORD:
            errors.append(
                {
                    "field": "password",
                    "message": tr(
                        "Le mot de passe doit compter au moins {n} caractères.", n=accounts.MIN_PASSWORD
                    ),
                }
            )
        elif password != confirm:
            errors.append({"field": "confirm", "message": "Les deux mots de passe diffèrent."})
        if errors:
            return self._form(request, 400, errors=errors, email=email)
        with self.store.write() as conn:
            try:
                account = accounts.activate(conn, self.settings, email, code, password, address)
            except accounts.LoginRefused as refused:
                status = 429 if refused.locked_for else 400
                return self._form(
                    request, status, errors=[{"field": "code", "message": str(refused)}], email=email
                )
            secret = pyotp.random_base32()
            flow_id = accounts.start_flow(conn, {"activation": account.account_id})
            accounts.update_flow(
                conn, flow_id, account_id=account.account_id, stage="enrol", challenge=secret
            )
            flow = accounts.get_flow(conn, flow_id)
        response = self._totp_page(flow.csrf, account, secret)
        set_cookie(request, response, FLOW_COOKIE, flow_id, accounts.FLOW_TTL, path=PATH)
        return response

    def _totp_page(
        self, csrf: str, account: accounts.Account, secret: str, status: int = 200, **extra: Any
    ) -> Response:
        uri = pyotp.TOTP(secret).provisioning_uri(name=account.login, issuer_name="Socle")
        return page(
            "activation_totp.html", status, title="Second facteur", csrf=csrf, secret=secret, uri=uri, **extra
        )

    async def show_totp(self, request: Request) -> Response:
        return await run_in_threadpool(self._show_totp, request)

    def _show_totp(self, request: Request) -> Response:
        """The TOTP enrolment step shown again (e.g. in another language); else the first step."""
        with self.store.read() as conn:
            flow = accounts.get_flow(conn, request.cookies.get(FLOW_COOKIE, ""))
            account = accounts.get_account(conn, flow.account_id or "") if flow is not None else None
        if flow is None or account is None or flow.stage != "enrol":
            return RedirectResponse(PATH, 303)
        return self._totp_page(flow.csrf, account, flow.challenge or "")

    async def enrol(self, request: Request) -> Response:
        form = await form_of(request)
        return await run_in_threadpool(self._enrol, request, form)

    def _enrol(self, request: Request, form: dict[str, str]) -> Response:
        flow_id = request.cookies.get(FLOW_COOKIE, "")
        with self.store.write() as conn:
            flow = accounts.get_flow(conn, flow_id)
            if (
                flow is None
                or flow.stage != "enrol"
                or not hmac.compare_digest(form.get("csrf", ""), flow.csrf)
            ):
                return page("error.html", 403, title="Requête refusée", message="Jeton anti-CSRF invalide.")
            account = accounts.get_account(conn, flow.account_id or "")
            assert account is not None
            if form.get("skip"):
                accounts.end_flow(conn, flow_id)
                message = (
                    "Compte activé. À chaque connexion, un code à usage unique vous sera envoyé par courriel."
                )
                return page("error.html", title="Compte activé", message=message)
            secret = flow.challenge or ""
            if not pyotp.TOTP(secret).verify(form.get("code", "").strip(), valid_window=1):
                return self._totp_page(
                    flow.csrf, account, secret, 400, errors=[{"field": "totp", "message": "Code incorrect."}]
                )
            accounts.set_totp(conn, account.account_id, secret)
            accounts.end_flow(conn, flow_id)
        response = page(
            "error.html",
            title="Compte activé",
            message="Compte activé. Votre application d'authentification est votre second facteur.",
        )
        response.delete_cookie(FLOW_COOKIE, path=PATH)
        return response


def activation_routes(store: Store, settings: Settings) -> list[BaseRoute]:
    pages = ActivationPages(store, settings)
    return [
        Route(PATH, pages.show, methods=["GET"]),
        Route(PATH, pages.activate, methods=["POST"]),
        Route(f"{PATH}/totp", pages.show_totp, methods=["GET"]),
        Route(f"{PATH}/totp", pages.enrol, methods=["POST"]),
    ]
