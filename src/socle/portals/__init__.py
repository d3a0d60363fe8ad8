"""Web pages for people (DSFR): the login and account pages of the authorization server."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from socle.config import Settings
from socle.store.repository import Store

__all__ = ["portal_routes"]


def portal_routes(store: Store, settings: Settings) -> list[BaseRoute]:
    from socle.portals.activation import activation_routes
    from socle.portals.federation_pages import federation_routes
    from socle.portals.language import with_language
    from socle.portals.launch_api import launch_routes
    from socle.portals.login import LoginPages, login_routes
    from socle.portals.passkey_pages import passkey_routes

    login = LoginPages(store, settings)
    routes = [
        *login_routes(store, settings),
        *passkey_routes(store, settings, login),
        *launch_routes(store, settings),
        *activation_routes(store, settings),
        *federation_routes(store, settings, login),
    ]
    for route in routes:  # every page follows the language choice (?lang=, cookie, Accept-Language)
        if isinstance(route, Route):
            route.app = with_language(route.app)
    return routes
