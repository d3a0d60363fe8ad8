"""The one ASGI application: the FHIR API under /fhir (portals and auth will mount beside it)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route

from socle.api.auth import auth_routes, protect, smart_route
from socle.api.http import FhirEndpoint, handle_fhir_error, handle_http_error, handle_unexpected
from socle.config import Settings, get_settings
from socle.fhir.errors import FhirError
from socle.portals import portal_routes
from socle.store.engine import make_engine
from socle.store.repository import Store

_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


def create_app(settings: Settings | None = None, store: Store | None = None) -> Starlette:
    settings = settings or get_settings()
    store = store or Store(make_engine(settings.database_url))
    endpoint = FhirEndpoint(store, settings)
    fhir = protect(endpoint.handle, store, settings)  # bearer tokens, when settings.auth_required
    app = Starlette(
        routes=[
            *auth_routes(store, settings),
            *portal_routes(store, settings),
            smart_route(store, settings),
            Route("/fhir", fhir, methods=_METHODS),
            Route("/fhir/{path:path}", fhir, methods=_METHODS),
        ],
        exception_handlers={
            FhirError: handle_fhir_error,
            HTTPException: handle_http_error,
            Exception: handle_unexpected,
        },
    )
    app.state.store = store
    return app
