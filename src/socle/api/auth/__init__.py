"""The authorization server's HTTP endpoints (OpenID Connect, OAuth 2.0, SMART on FHIR)."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from socle.api.auth.bearer import protect
from socle.api.auth.discovery import DiscoveryEndpoints
from socle.api.auth.oauth import OAuthEndpoints
from socle.config import Settings
from socle.store.repository import Store

__all__ = ["auth_routes", "protect", "smart_route"]


def auth_routes(store: Store, settings: Settings) -> list[BaseRoute]:
    """`/.well-known/openid-configuration` and `/auth/...` (URLs fixed by ARCHITECTURE.md)."""
    discovery = DiscoveryEndpoints(store, settings)
    oauth = OAuthEndpoints(store, settings)
    return [
        Route("/.well-known/openid-configuration", discovery.openid_configuration, methods=["GET"]),
        Route("/auth/jwks", discovery.jwks, methods=["GET"]),
        Route("/auth/userinfo", discovery.userinfo, methods=["GET", "POST"]),
        Route("/auth/token", oauth.token, methods=["POST"]),
        Route("/auth/revoke", oauth.revoke, methods=["POST"]),
        Route("/auth/introspect", oauth.introspect, methods=["POST"]),
    ]


def smart_route(store: Store, settings: Settings) -> Route:
    """`/fhir/.well-known/smart-configuration`: must precede the FHIR catch-all route."""
    discovery = DiscoveryEndpoints(store, settings)
    return Route("/fhir/.well-known/smart-configuration", discovery.smart_configuration, methods=["GET"])
