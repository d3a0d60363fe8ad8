"""Web pages for people (DSFR): for now the login pages of the authorization server."""

from __future__ import annotations

from starlette.routing import BaseRoute

from socle.config import Settings
from socle.store.repository import Store

__all__ = ["portal_routes"]


def portal_routes(store: Store, settings: Settings) -> list[BaseRoute]:
    from socle.portals.login import login_routes

    return login_routes(store, settings)
