"""Metadata documents: OpenID Connect discovery, the JWKS, SMART configuration, and userinfo.

- Discovery: OpenID Connect Discovery 1.0 §3 (with RFC 8414 fields).
- SMART: App Launch v2 §"Conformance" (`/.well-known/smart-configuration`, relative to the FHIR base).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from socle.api.auth._common import issuer_of, json_response
from socle.config import Settings
from socle.store.repository import Store
from socle.trust.auth.errors import InvalidToken
from socle.trust.auth.keys import ensure_keys, public_jwks
from socle.trust.auth.schema import auth_account
from socle.trust.auth.tokens import TokenVerifier, fhir_audience

SCOPES = [
    "openid",
    "fhirUser",
    "profile",
    "offline_access",
    "online_access",
    "launch",
    "launch/patient",
    "launch/encounter",
    "patient/*.cruds",
    "user/*.cruds",
    "system/*.cruds",
    "patient/*.rs",
    "user/*.rs",
    "system/*.rs",
    "patient/*.read",
    "user/*.read",
    "patient/*.*",
    "user/*.*",
    "system/*.*",
    "scope_all",
]


_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"]


def oidc_configuration(issuer: str) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/auth/authorize",
        "token_endpoint": f"{issuer}/auth/token",
        "userinfo_endpoint": f"{issuer}/auth/userinfo",
        "jwks_uri": f"{issuer}/auth/jwks",
        "revocation_endpoint": f"{issuer}/auth/revoke",
        "introspection_endpoint": f"{issuer}/auth/introspect",
        "end_session_endpoint": f"{issuer}/auth/logout",
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": _AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384", "RS256", "ES256"],
        "revocation_endpoint_auth_methods_supported": _AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": _AUTH_METHODS[1:],
        "code_challenge_methods_supported": ["S256"],
        "acr_values_supported": ["eidas1", "eidas2"],
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "acr",
            "amr",
            "fhirUser",
            "given_name",
            "family_name",
            "preferred_username",
            "SubjectNameID",
            "SubjectRole",
            "SubjectOrganization",
            "SubjectOrganizationID",
            "SubjectRefPro",
            "email",
        ],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
    }


def smart_configuration(issuer: str) -> dict[str, Any]:
    oidc = oidc_configuration(issuer)
    return {
        "issuer": issuer,
        "jwks_uri": oidc["jwks_uri"],
        "authorization_endpoint": oidc["authorization_endpoint"],
        "token_endpoint": oidc["token_endpoint"],
        "grant_types_supported": oidc["grant_types_supported"],
        "token_endpoint_auth_methods_supported": oidc["token_endpoint_auth_methods_supported"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "revocation_endpoint": oidc["revocation_endpoint"],
        "introspection_endpoint": oidc["introspection_endpoint"],
        "userinfo_endpoint": oidc["userinfo_endpoint"],
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": [
            "launch-ehr",
            "launch-standalone",
            "client-public",
            "client-confidential-symmetric",
            "client-confidential-asymmetric",
            "context-ehr-patient",
            "context-ehr-encounter",
            "context-standalone-patient",
            "sso-openid-connect",
            "permission-offline",
            "permission-online",
            "permission-patient",
            "permission-user",
            "permission-v1",
            "permission-v2",
            "authorize-post",
        ],
    }


class DiscoveryEndpoints:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.verifier = TokenVerifier()

    async def openid_configuration(self, request: Request) -> Response:
        return json_response(
            oidc_configuration(issuer_of(request, self.settings)), headers={"Cache-Control": "max-age=300"}
        )

    async def smart_configuration(self, request: Request) -> Response:
        return json_response(
            smart_configuration(issuer_of(request, self.settings)), headers={"Cache-Control": "max-age=300"}
        )

    async def jwks(self, request: Request) -> Response:
        return json_response(await run_in_threadpool(self._jwks), headers={"Cache-Control": "max-age=300"})

    def _jwks(self) -> dict[str, Any]:
        with self.store.write() as conn:
            ensure_keys(conn, self.settings)
            return public_jwks(conn)

    async def userinfo(self, request: Request) -> Response:
        """OIDC Core §5.3: the claims of the account the access token was issued for."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        issuer = issuer_of(request, self.settings)
        error = {"WWW-Authenticate": 'Bearer realm="socle", error="invalid_token"'}
        if scheme.lower() != "bearer":
            return json_response(
                {"error": "invalid_token"}, 401, {"WWW-Authenticate": 'Bearer realm="socle"'}
            )
        try:
            claims = self.verifier.verify(self.store.read, token.strip(), issuer, fhir_audience(issuer))
        except InvalidToken:
            return json_response({"error": "invalid_token"}, 401, error)
        if "openid" not in str(claims.get("scope", "")).split():
            return json_response(
                {"error": "insufficient_scope"},
                403,
                {"WWW-Authenticate": 'Bearer error="insufficient_scope"'},
            )
        return json_response(await run_in_threadpool(self._userinfo, claims))

    def _userinfo(self, claims: dict[str, Any]) -> dict[str, Any]:
        with self.store.read() as conn:
            row = conn.execute(
                select(auth_account.c.claims).where(auth_account.c.account_id == claims["sub"])
            ).first()
        info: dict[str, Any] = {"sub": claims["sub"]}
        if row is not None:
            info.update(row.claims.get("identity", {}))
            if row.claims.get("fhirUser"):
                info["fhirUser"] = row.claims["fhirUser"]
        return info
