"""Bearer-token protection of the FHIR API (RFC 6750), switched on by `Settings.auth_required`.

Every `/fhir` route except `metadata` and the SMART configuration needs a valid access token: 401
with `WWW-Authenticate: Bearer …` when it is missing or invalid, 403 OperationOutcome when its scopes
do not cover the interaction. The validated principal is put on `request.state.principal` for the
access policy. Verification reads no database row in the steady state (keys and revocations are
cached by `TokenVerifier`), so it costs one signature check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from socle.api.auth._common import issuer_of
from socle.api.auth.discovery import oidc_configuration
from socle.config import Settings
from socle.fhir.errors import Forbidden
from socle.store.repository import Store
from socle.trust.auth.access import PUBLIC_PATHS, scopes_permit
from socle.trust.auth.errors import InvalidToken, Unauthenticated
from socle.trust.auth.tokens import TokenVerifier, fhir_audience, principal_from_claims
from socle.trust.principal import SYSTEM_PRINCIPAL

Handler = Callable[[Request], Awaitable[Response]]


def protect(handler: Handler, store: Store, settings: Settings) -> Handler:
    verifier = TokenVerifier()

    async def protected(request: Request) -> Response:
        path = request.path_params.get("path", "").strip("/")
        if not settings.auth_required:
            request.state.principal = SYSTEM_PRINCIPAL
            return await handler(request)
        if path == "metadata":
            return advertise_security(await handler(request), issuer_of(request, settings))
        if path in PUBLIC_PATHS:
            return await handler(request)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(
                "This FHIR endpoint needs an access token (Authorization: Bearer …)",
                headers={"WWW-Authenticate": 'Bearer realm="socle"'},
            )
        issuer = issuer_of(request, settings)
        try:
            claims = verifier.verify(store.read, token.strip(), issuer, fhir_audience(issuer))
        except InvalidToken as exc:
            reason = _quote(str(exc))
            challenge = f'Bearer realm="socle", error="invalid_token", error_description="{reason}"'
            raise Unauthenticated(
                f"The access token is not valid: {exc}", headers={"WWW-Authenticate": challenge}
            ) from exc
        principal = principal_from_claims(claims)
        segments = [s for s in path.split("/") if s]
        if not scopes_permit(principal, request.method, segments):
            raise Forbidden(
                f"The token's scopes ({principal.scopes}) do not allow {request.method} /{path}",
                headers={"WWW-Authenticate": 'Bearer realm="socle", error="insufficient_scope"'},
            )
        request.state.principal = principal
        return await handler(request)

    return protected


# SMART App Launch §"Conformance": the OAuth endpoints in the CapabilityStatement, for clients (like
# the Python `fhirclient`) that read them there rather than in `.well-known/smart-configuration`.
_OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
_SMART_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"


def advertise_security(response: Response, issuer: str) -> Response:
    """Add `rest.security` (SMART-on-FHIR, OAuth URIs) to a CapabilityStatement answered with a body."""
    if response.status_code != 200 or not response.body:
        return response
    try:
        statement = orjson.loads(response.body)
    except orjson.JSONDecodeError:
        return response
    if not isinstance(statement, dict) or statement.get("resourceType") != "CapabilityStatement":
        return response
    endpoints = oidc_configuration(issuer)
    uris = {
        "authorize": endpoints["authorization_endpoint"],
        "token": endpoints["token_endpoint"],
        "revoke": endpoints["revocation_endpoint"],
        "introspect": endpoints["introspection_endpoint"],
    }
    security = {
        "cors": False,
        "service": [
            {
                "coding": [{"system": _SMART_SERVICE, "code": "SMART-on-FHIR"}],
                "text": "OAuth 2.0 bearer tokens (SMART App Launch v2, SMART Backend Services)",
            }
        ],
        "extension": [
            {
                "url": _OAUTH_URIS,
                "extension": [{"url": name, "valueUri": uri} for name, uri in uris.items()],
            }
        ],
        "description": f"Bearer tokens from {issuer} (see {issuer}/fhir/.well-known/smart-configuration)",
    }
    for rest in statement.get("rest") or []:
        if isinstance(rest, dict):
            rest["security"] = security
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return Response(orjson.dumps(statement), status_code=200, headers=headers)


def _quote(text: str) -> str:
    return text.replace("\\", "").replace('"', "'")[:200]
