"""Custom SearchParameter resources: stored like any resource, and learned by the search registry.

R4 lets a server accept SearchParameter resources (searchparameter.html, search.html#custom): a
`code`, a `type`, the `base` resource types and a FHIRPath `expression`. Socle stores them as
ordinary resources and keeps `socle.fhir.search_params.registry()` equal to "the core parameters
plus every stored, usable SearchParameter" (a custom one with the code of a core one replaces it for
its bases). New writes are indexed by a custom parameter as soon as the registry knows it; existing
resources need `$reindex` / `socle reindex`.

Staying current across processes (several uvicorn workers, the CLI): an API request starts by
reading a generation of the stored SearchParameters, `(count, sum of versions, latest updated_at)`
over their rows (tombstones included), and reloads them all when it differs from the one loaded.
Every create, update or delete bumps a version, so the sum changes even when a slow transaction
commits an older timestamp; the timestamp tells apart two databases that happen to share the sums.
It is one aggregate over the few SearchParameter rows, through the (resource_type, updated_at)
index. Requests that write always check (they index with the registry, so it must be current);
reads check at most once per `READ_STALENESS` seconds per database (`max_staleness`), since the
query was a measurable share of a cached read. The staleness bound: a SearchParameter created,
changed or deleted through ANOTHER process takes effect for searches in this one at most
`READ_STALENESS` seconds after its commit (at once for this process's own writes, and for any
write request). `loaded()` names what was loaded, for the CapabilityStatement.

A request that writes calls `refresh(conn, strict=True)` again before it commits, still inside its
transaction: a SearchParameter whose expression cannot be compiled for its bases is then refused
(422, the transaction rolls back) instead of being stored and silently ignored; stored ones that are
unusable (loaded by other means) are logged and skipped, never fatal.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy import Connection, false, func, select

from socle.fhir.errors import Invalid, Issue, Unprocessable
from socle.fhir.fhirpath import compile_expression
from socle.fhir.resource_types import resource_types
from socle.fhir.search_params import SearchParamRegistry, registry
from socle.store.access import SYSTEM
from socle.store.schema import resource

__all__ = ["READ_STALENESS", "SearchParameterSync", "check_search_parameter", "loaded", "refresh"]

log = logging.getLogger("socle.search_parameters")

_TYPE = "SearchParameter"
_ANY_TYPE = ("Resource", "DomainResource")
Generation = tuple[int, int, int]
READ_STALENESS = 1.0  # seconds: how old a read request's view of other processes' changes may be


def check_search_parameter(body: Mapping[str, Any]) -> str | None:
    """Why this SearchParameter cannot be used for search, or None if it can."""
    try:
        SearchParamRegistry([body])  # code, type and base present and well-formed
    except Invalid as error:
        return error.diagnostics
    if body.get("status") == "retired":
        return "it is retired"
    expression = body.get("expression")
    for base in body.get("base", ()):
        if base not in _ANY_TYPE and base not in resource_types():
            return f"base {base!r} is not a resource type"
        if not isinstance(expression, str) or body.get("type") in ("composite", "special"):
            continue
        try:
            compile_expression(expression, None if base in _ANY_TYPE else base)
        except (ValueError, ImportError) as error:  # FhirPathSyntaxError, FhirPathUnsupported
            return f"its expression cannot be compiled for {base}: {error}"
    return None


class SearchParameterSync:
    """Loads stored SearchParameters into a registry whenever their generation changes."""

    def __init__(self, params: SearchParamRegistry | None = None) -> None:
        self._params = params
        self._generation: Generation | None = None
        self._versions: dict[str, int] = {}  # id → version of every stored one at the last load
        self._usable: frozenset[tuple[str, int]] = frozenset()  # (id, version) of those in use
        self._checked: tuple[str, float] | None = None  # (database, monotonic time) of the last check
        self._lock = threading.Lock()

    @property
    def params(self) -> SearchParamRegistry:
        return self._params or registry()

    @property
    def loaded(self) -> frozenset[tuple[str, int]]:
        """(id, version) of the stored SearchParameters in use since the last load."""
        return self._usable

    def refresh(self, conn: Connection, *, strict: bool = False, max_staleness: float = 0.0) -> bool:
        """Reload if the stored SearchParameters changed; True if it did.

        `strict`: raise `Invalid` if a SearchParameter created or changed since the last load (that
        is, by the current transaction) is unusable. `max_staleness`: skip the check when the same
        database was checked less than that many seconds ago (a read may be that stale).
        """
        database = conn.engine.url.render_as_string(hide_password=True)
        now = time.monotonic()
        checked = self._checked
        if max_staleness > 0 and checked is not None and checked[0] == database:
            if now - checked[1] < max_staleness:
                return False
        generation = _generation(conn)
        self._checked = (database, now)
        if generation == self._generation:
            return False
        with self._lock:
            if generation == self._generation:
                return False
            usable: list[Mapping[str, Any]] = []
            in_use: set[tuple[str, int]] = set()
            versions: dict[str, int] = {}
            problems: list[tuple[str, str]] = []
            for id, version, body in _stored(conn):
                versions[id] = version
                problem = check_search_parameter(body)
                if problem is None:
                    usable.append(body)
                    in_use.add((id, version))
                    continue
                if strict and self._versions.get(id) != version:
                    problems.append((id, problem))
                else:
                    log.warning("SearchParameter/%s is not used for search: %s", id, problem)
            if problems:
                raise Unprocessable(
                    "; ".join(f"SearchParameter/{id} cannot be used: {why}" for id, why in problems),
                    issues=[Issue("invalid", f"SearchParameter/{id}: {why}") for id, why in problems],
                )
            self.params.replace_custom(usable)
            self._versions = versions
            self._usable = frozenset(in_use)
            self._generation = generation
        return True


# Built once: per request only its execution is paid (measured: building and compiling the statement
# each time cost more than running it).
_GENERATION = select(
    func.count(), func.coalesce(func.sum(resource.c.version), 0), func.max(resource.c.updated_at)
).where(resource.c.resource_type == _TYPE, SYSTEM.condition(resource))


def _generation(conn: Connection) -> Generation:
    row: Any = conn.execute(_GENERATION).one()
    return int(row[0]), int(row[1]), int(row[2] or 0)


def _stored(conn: Connection) -> list[tuple[str, int, Mapping[str, Any]]]:
    rows: list[Any] = conn.execute(
        select(resource.c.id, resource.c.version, resource.c.content)
        .where(resource.c.resource_type == _TYPE, resource.c.deleted == false(), SYSTEM.condition(resource))
        .order_by(resource.c.resource_key)
    ).all()  # type: ignore[assignment]
    out = []
    for id, version, content in rows:
        body = content if isinstance(content, dict) else orjson.loads(content)
        out.append((str(id), int(version), body))
    return out


_SYNC = SearchParameterSync()


def refresh(conn: Connection, *, strict: bool = False, max_staleness: float = 0.0) -> bool:
    """Bring the process-wide registry (`registry()`) up to date with the database behind `conn`.

    `max_staleness` (seconds): a read request passes `READ_STALENESS`, see the module docstring."""
    return _SYNC.refresh(conn, strict=strict, max_staleness=max_staleness)


def loaded() -> frozenset[tuple[str, int]]:
    """(id, version) of the stored SearchParameters the process-wide registry uses now."""
    return _SYNC.loaded
