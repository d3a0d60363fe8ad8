"""Token (RFC 6749 §3.2), revocation (RFC 7009) and introspection (RFC 7662) endpoints.

Decisions are made in `socle.trust.auth`; this module reads forms and writes JSON. The transaction
commits even when the answer is an error, because some errors are decisions with effects: a
reused code or refresh token revokes its family.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from socle.api.auth._common import basic_credentials, form_of, issuer_of, json_response, oauth_error
from socle.config import Settings
from socle.store.repository import Store
from socle.trust.auth import grants
from socle.trust.auth.clients import authenticate_client
from socle.trust.auth.errors import InvalidToken, OAuthError
from socle.trust.auth.keys import verification_keys
from socle.trust.auth.tokens import fhir_audience, is_revoked, verify_jwt

_GRANTS = {
    "authorization_code": grants.exchange_code,
    "refresh_token": grants.refresh,
    "client_credentials": grants.client_credentials,
}


# (form, HTTP Basic credentials, issuer) -> response, run in the thread pool.
_ClientWork = Callable[[dict[str, str], tuple[str, str] | None, str], Response]


class OAuthEndpoints:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def _client_call(self, request: Request, work: _ClientWork) -> Response:
        """Read the form and client credentials of a token-endpoint-style call, then work off the loop."""
        try:
            form = await form_of(request)
            basic = basic_credentials(request)
        except OAuthError as error:
            return oauth_error(error)
        return await run_in_threadpool(work, form, basic, issuer_of(request, self.settings))

    async def token(self, request: Request) -> Response:
        return await self._client_call(request, self._token)

    def _token(self, form: dict[str, str], basic: tuple[str, str] | None, issuer: str) -> Response:
        outcome: dict[str, Any] | OAuthError
        with self.store.write() as conn:
            try:
                client = authenticate_client(conn, self.settings, form, basic, f"{issuer}/auth/token")
                grant = _GRANTS.get(form.get("grant_type", ""))
                if grant is None:
                    raise OAuthError("unsupported_grant_type", f"grant_type {form.get('grant_type')!r}")
                outcome = grant(conn, self.settings, issuer, client, form)
            except OAuthError as error:
                outcome = error
        return oauth_error(outcome) if isinstance(outcome, OAuthError) else json_response(outcome)

    async def revoke(self, request: Request) -> Response:
        return await self._client_call(request, self._revoke)

    def _revoke(self, form: dict[str, str], basic: tuple[str, str] | None, issuer: str) -> Response:
        with self.store.write() as conn:
            try:
                client = authenticate_client(conn, self.settings, form, basic, f"{issuer}/auth/token")
            except OAuthError as error:
                return oauth_error(error)
            token = form.get("token", "")
            claims = self._claims(conn, token, issuer)
            grants.revoke_token(conn, self.settings, client, token, claims)
        return json_response({})

    async def introspect(self, request: Request) -> Response:
        return await self._client_call(request, self._introspect)

    def _introspect(self, form: dict[str, str], basic: tuple[str, str] | None, issuer: str) -> Response:
        with self.store.write() as conn:
            try:
                client = authenticate_client(conn, self.settings, form, basic, f"{issuer}/auth/token")
                if client.is_public:  # RFC 7662 §2.1: the caller must be authorized; a public client is not
                    raise OAuthError(
                        "invalid_client", "Introspection needs an authenticated client", status=401
                    )
            except OAuthError as error:
                return oauth_error(error)
            claims = self._claims(conn, form.get("token", ""), issuer)
            if claims is None or is_revoked(conn, claims.get("jti"), claims.get("fam")):
                return json_response({"active": False})
        body = {"active": True, "token_type": "Bearer", **claims}
        return json_response(body)

    def _claims(self, conn: Any, token: str, issuer: str) -> dict[str, Any] | None:
        try:
            return verify_jwt(verification_keys(conn), token, issuer, fhir_audience(issuer))
        except InvalidToken:
            return None
