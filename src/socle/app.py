"""The one ASGI application: the FHIR API under /fhir (portals and auth will mount beside it)."""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route

from socle.api.audit import audit_denials
from socle.api.auth import auth_routes, protect, smart_route
from socle.api.http import FhirEndpoint, handle_fhir_error, handle_http_error, handle_unexpected
from socle.config import Settings, get_settings
from socle.fhir.errors import FhirError
from socle.fhir.resource_types import resource_types
from socle.fhir.search_params import registry
from socle.fhir.structure import compiled_schema
from socle.portals import portal_routes
from socle.store.engine import make_engine
from socle.store.repository import Store

_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


@functools.cache
def warm_up() -> None:
    """Compile the FHIR definitions now, then move them out of the garbage collector's sight.

    The compiled StructureDefinitions, search parameters and FHIRPath extractors are ~300,000
    long-lived objects; a full collection walking them took ~0.7 s in the middle of requests
    (bench/README.md, ingest profile). `gc.freeze()` puts them in the permanent generation.
    """
    compiled_schema()
    registry()
    resource_types()
    gc.collect()
    gc.freeze()


def create_app(settings: Settings | None = None, store: Store | None = None) -> Starlette:
    warm_up()
    settings = settings or get_settings()
    owns_store = store is None
    store = store or Store(make_engine(settings.database_url))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if owns_store:  # close the pooled connections this app opened (a caller's store is theirs)
            store.engine.dispose()

    endpoint = FhirEndpoint(store, settings)
    fhir = protect(endpoint.handle, store, settings)  # bearer tokens, when settings.auth_required
    fhir = audit_denials(fhir, store, settings)  # every 401/403 becomes an AuditEvent (api/audit.py)
    app = Starlette(
        routes=[
            *auth_routes(store, settings),
            *portal_routes(store, settings),
            smart_route(store, settings),
            Route("/fhir", fhir, methods=_METHODS),
            Route("/fhir/{path:path}", fhir, methods=_METHODS),
        ],
        lifespan=lifespan,
        exception_handlers={
            FhirError: handle_fhir_error,
            HTTPException: handle_http_error,
            Exception: handle_unexpected,
        },
    )
    app.state.store = store
    return app
