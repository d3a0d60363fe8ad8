"""`/auth/federation/start` and `/auth/federation/callback`: the "Se connecter avec …" button.

The login in progress (its flow cookie) keeps the provider request's state, nonce and PKCE verifier
server-side; the callback checks the state, has `trust.auth.federation` redeem the code and verify
the ID token, maps the identity to a local account and continues the login as after a second factor
(`LoginPages.authenticated`: delegations, patient choice, code to the application).
"""

from __future__ import annotations

import hmac

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from socle.api.auth._common import issuer_of
from socle.config import Settings
from socle.portals._web import FLOW_COOKIE, page
from socle.portals.login import LoginPages
from socle.store.repository import Store
from socle.trust.auth import accounts, assurance, federation

CALLBACK = "/auth/federation/callback"


class FederationPages:
    def __init__(self, store: Store, settings: Settings, login: LoginPages) -> None:
        self.store = store
        self.settings = settings
        self.login = login
        self.upstream = federation.Upstream.from_settings(settings)

    def _redirect_uri(self, request: Request) -> str:
        return issuer_of(request, self.settings) + CALLBACK

    async def start(self, request: Request) -> Response:
        return await run_in_threadpool(self._start, request)

    def _start(self, request: Request) -> Response:
        if self.upstream is None:
            return page(
                "error.html", 404, title="Indisponible", message="Aucun fournisseur d'identité configuré."
            )
        flow_id = request.cookies.get(FLOW_COOKIE, "")
        with self.store.write() as conn:
            flow = accounts.get_flow(conn, flow_id)
            if flow is None:
                return page(
                    "error.html", 400, title="Session expirée", message="Recommencez depuis l'application."
                )
            try:
                url, pending = federation.authorization_request(self.upstream, self._redirect_uri(request))
            except federation.FederationError:
                message = "Le fournisseur d'identité ne répond pas. Réessayez plus tard."
                return page("error.html", 502, title="Fournisseur indisponible", message=message)
            accounts.update_flow(
                conn, flow_id, request={**flow.request, "federation": pending}, stage="federation"
            )
        return RedirectResponse(url, 303)

    async def callback(self, request: Request) -> Response:
        return await run_in_threadpool(self._callback, request)

    def _callback(self, request: Request) -> Response:
        if self.upstream is None:
            return page(
                "error.html", 404, title="Indisponible", message="Aucun fournisseur d'identité configuré."
            )
        flow_id = request.cookies.get(FLOW_COOKIE, "")
        with self.store.read() as conn:
            flow = accounts.get_flow(conn, flow_id)
        pending = (flow.request.get("federation") or {}) if flow is not None else {}
        state = request.query_params.get("state", "")
        if (
            flow is None
            or flow.stage != "federation"
            or not hmac.compare_digest(state, pending.get("state", ""))
        ):
            return page(
                "error.html", 403, title="Requête refusée", message="Réponse du fournisseur inattendue."
            )
        if request.query_params.get("error"):
            return page(
                "error.html", 401, title="Connexion refusée", message="Le fournisseur a refusé la connexion."
            )
        try:
            claims = federation.complete(
                self.upstream, self._redirect_uri(request), str(request.url), pending
            )
        except federation.FederationError:
            return page(
                "error.html",
                401,
                title="Connexion refusée",
                message="La réponse du fournisseur est invalide.",
            )
        with self.store.write() as conn:
            flow = accounts.get_flow(conn, flow_id)
            if flow is None or flow.stage != "federation":
                return page("error.html", 400, title="Connexion", message="Recommencez la connexion.")
            account = federation.local_account(conn, self.upstream, claims)
            if account is None:
                accounts.end_flow(conn, flow_id)
                message = (
                    "Aucun compte Socle ne correspond à cette identité. Demandez l'ouverture d'un compte."
                )
                return page("error.html", 403, title="Compte inconnu", message=message)
            request_data = {k: v for k, v in flow.request.items() if k != "federation"}
            accounts.update_flow(
                conn, flow_id, request=request_data, account_id=account.account_id, kind=account.kind
            )
            flow = accounts.get_flow(conn, flow_id)
            acr, amr = assurance.federated(claims)
            return self.login.authenticated(conn, request, flow_id, flow, account, acr, amr)


def federation_routes(store: Store, settings: Settings, login: LoginPages) -> list[BaseRoute]:
    pages = FederationPages(store, settings, login)
    return [
        Route("/auth/federation/start", pages.start, methods=["GET"]),
        Route(CALLBACK, pages.callback, methods=["GET"]),
    ]
