"""The resource store: current resources, their versions, and the search indexes, in one schema.

Every method works on a `Connection` handed in by the caller, so that one FHIR transaction Bundle is
one database transaction (`Store.write()`), and every read method takes an `AccessFilter`: there is
no way to read a row without one. Concurrency is optimistic: an update is an
`UPDATE ... WHERE version = <expected>`, and a mismatch is either a 412 (the client's `If-Match`) or
a retry on the fresh version, so concurrent writers never lose an update on either backend.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
import psycopg
from sqlalchemy import (
    Connection,
    Engine,
    Text,
    and_,
    bindparam,
    cast,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from socle.fhir.compartment import patient_compartment
from socle.fhir.errors import Conflict, Gone, Invalid, NotFound, PreconditionFailed
from socle.fhir.query import parse_query
from socle.store import includes, index_hooks, indexes, results, search
from socle.store.access import AccessFilter
from socle.store.clock import now_us, to_instant
from socle.store.engine import write_gate
from socle.store.matches import MatchSet
from socle.store.schema import resource, resource_history
from socle.store.versioned import StoredVersion, instant

# (resource_key, version, resource_type, id, updated_at, method, compartment, JSON as bytes or text)
_HistoryRow = tuple[int, int, str, str, int, str, str | None, bytes | str]


class _Current(NamedTuple):
    """The row an update replaces: key, version, tombstone flag and JSON (None when deleted)."""

    key: int
    version: int
    deleted: bool
    content: Any


# SQLite statistics are refreshed as the database grows: after 500 resources, then each time the
# number created since start doubles, then every 20,000.
ANALYZE_FIRST, ANALYZE_EVERY = 500, 20_000


@dataclass(frozen=True)
class HistoryPage:
    versions: list[StoredVersion]
    # Keyset cursor of the next (older) page: (updated_at, resource_key, version), None on the last page.
    next_cursor: tuple[int, int, int] | None


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._gate = write_gate(engine)
        self._created = 0  # resources created by this process (approximate across threads)
        self._next_analyze = ANALYZE_FIRST
        # On PostgreSQL read JSONB as text: the bytes go to the client without a parse/serialise cycle.
        self._content = resource.c.content if self._sqlite else cast(resource.c.content, Text)
        self._history_content = (
            resource_history.c.content if self._sqlite else cast(resource_history.c.content, Text)
        )

    # -- connections -------------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One atomic unit of work: everything done on the connection commits or none of it does.
        On SQLite the writers queue at the database's `WriteGate` first, then take SQLite's lock."""
        with self._gate.held() if self._gate else nullcontext(), self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn
        if self._sqlite and self._created >= self._next_analyze:
            self._next_analyze = self._created + min(ANALYZE_EVERY, self._created)
            self.analyze()

    def analyze(self) -> None:
        """Refresh the planner's statistics (automatic on SQLite; after bulk loads on PostgreSQL too).

        Without statistics SQLite may drive a search from the wrong index and scan every row of a
        parameter instead of one patient's (bench/README.md, search). `analysis_limit` bounds the
        cost to a sample of each index, so this takes milliseconds even on large databases.
        """
        with self.engine.connect() as conn:
            if self._sqlite:
                conn.exec_driver_sql("PRAGMA analysis_limit=1000")
            conn.exec_driver_sql("ANALYZE")
            conn.commit()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    # -- reads -------------------------------------------------------------------------------

    def get(self, conn: Connection, resource_type: str, id: str, access: AccessFilter) -> StoredVersion:
        """The current version; `NotFound` if it never existed (or the policy hides it), `Gone` if deleted."""
        row = conn.execute(
            select(
                resource.c.resource_key,
                resource.c.version,
                resource.c.updated_at,
                resource.c.deleted,
                resource.c.compartment,
                self._content,
            ).where(
                resource.c.resource_type == resource_type, resource.c.id == id, access.condition(resource)
            )
        ).first()
        if row is None:
            raise NotFound(f"{resource_type}/{id} is not known", expression=None)
        version = StoredVersion(
            resource_key=row[0],
            resource_type=resource_type,
            id=id,
            version=row[1],
            updated_at=row[2],
            deleted=row[3],
            compartment=row[4],
            raw=_as_bytes(row[5]),
        )
        if version.deleted:
            raise Gone(
                f"{resource_type}/{id} was deleted (version {version.version})",
                headers={"ETag": version.etag, "Last-Modified": to_instant(version.updated_at)},
            )
        return version

    def get_version(
        self, conn: Connection, resource_type: str, id: str, version: int, access: AccessFilter
    ) -> StoredVersion:
        h = resource_history
        row = conn.execute(
            select(
                h.c.resource_key, h.c.updated_at, h.c.method, h.c.compartment, self._history_content
            ).where(
                h.c.resource_type == resource_type, h.c.id == id, h.c.version == version, access.condition(h)
            )
        ).first()
        if row is None:
            raise NotFound(f"{resource_type}/{id} has no version {version}")
        stored = StoredVersion(
            resource_key=row[0],
            resource_type=resource_type,
            id=id,
            version=version,
            updated_at=row[1],
            deleted=row[2] == "DELETE",
            compartment=row[3],
            raw=_as_bytes(row[4]),
            method=row[2],
        )
        if stored.deleted:
            raise Gone(f"version {version} of {resource_type}/{id} is a deletion")
        return stored

    def history(
        self,
        conn: Connection,
        access: AccessFilter,
        *,
        resource_type: str | None = None,
        id: str | None = None,
        since: int | None = None,
        at: tuple[int, int] | None = None,
        count: int = 50,
        cursor: tuple[int, int, int] | None = None,
    ) -> HistoryPage:
        """Versions newest first (R4 §3.1.0.11), paged by keyset so pages stay stable while others write.

        `at` is the [low, high) period of `_at`: versions that were current at some point in it.
        """
        h = resource_history
        conditions: list[ColumnElement[bool]] = [access.condition(h)]
        if resource_type is not None:
            conditions.append(h.c.resource_type == resource_type)
        if id is not None:
            conditions.append(h.c.id == id)
        if since is not None:
            conditions.append(h.c.updated_at >= since)
        if at is not None:
            later = h.alias("later")
            superseded_at = (
                select(func.min(later.c.updated_at))
                .where(later.c.resource_key == h.c.resource_key, later.c.version > h.c.version)
                .scalar_subquery()
            )
            conditions.append(h.c.updated_at < at[1])
            conditions.append(or_(superseded_at.is_(None), superseded_at > at[0]))
        if cursor is not None:
            t, key, ver = cursor
            conditions.append(
                or_(
                    h.c.updated_at < t,
                    and_(h.c.updated_at == t, h.c.resource_key < key),
                    and_(h.c.updated_at == t, h.c.resource_key == key, h.c.version < ver),
                )
            )
        rows = conn.execute(
            select(
                h.c.resource_key,
                h.c.resource_type,
                h.c.id,
                h.c.version,
                h.c.updated_at,
                h.c.method,
                h.c.compartment,
                self._history_content,
            )
            .where(*conditions)
            .order_by(h.c.updated_at.desc(), h.c.resource_key.desc(), h.c.version.desc())
            .limit(count + 1)
        ).all()
        versions = [
            StoredVersion(
                resource_key=r[0],
                resource_type=r[1],
                id=r[2],
                version=r[3],
                updated_at=r[4],
                deleted=r[5] == "DELETE",
                compartment=r[6],
                raw=_as_bytes(r[7]),
                method=r[5],
            )
            for r in rows[:count]
        ]
        next_cursor = None
        if len(rows) > count and versions:
            last = versions[-1]
            next_cursor = (last.updated_at, last.resource_key, last.version)
        return HistoryPage(versions, next_cursor)

    def find(
        self, conn: Connection, resource_type: str, query_string: str, access: AccessFilter, *, limit: int = 2
    ) -> list[str]:
        """Ids of current resources matching a search query (the criteria of conditional interactions)."""
        return [id for _key, id in search.find_keys(conn, resource_type, query_string, access, limit)]

    def search_page(
        self,
        conn: Connection,
        resource_type: str,
        criteria: Sequence[tuple[str, str]],
        access: AccessFilter,
        *,
        count: int,
        after: int | None,
        strict: bool,
    ) -> tuple[list[StoredVersion], int | None, list[str]]:
        """One page of a type search, by keyset on the resource key (stable while others write).

        Returns (page, cursor of the next page or None, parameters ignored as unknown).
        """
        query = parse_query(resource_type, criteria, strict=strict)
        statement = search.compile_search(query, access)
        if after is not None:
            statement = statement.where(resource.c.resource_key > after)
        keys = [row[0] for row in conn.execute(statement.limit(count + 1))]
        page = self.get_many(conn, keys[:count], access)
        next_cursor = keys[count - 1] if len(keys) > count and count > 0 else None
        return page, next_cursor, list(query.unknown)

    def search_results(
        self,
        conn: Connection,
        matches: MatchSet,
        access: AccessFilter,
        *,
        sort: Sequence[results.SortKey] = (),
        count: int,
        cursor: results.Cursor | None = None,
    ) -> results.ResultPage:
        """One page of a search in `sort` order with its JSON, in one statement, keyset-paged so that
        pages stay stable while others write (`socle.store.results`)."""
        return results.fetch_page(conn, matches, access, self._content, sort, count, cursor)

    def search_total(
        self,
        conn: Connection,
        matches: MatchSet,
        access: AccessFilter,
        *,
        high: int | None = None,
        estimate: bool = False,
        up_to: int | None = None,
    ) -> int:
        """`Bundle.total`: the number of matches (with keys up to `high`), or the planner's estimate;
        counted up to `up_to + 1` at most when `up_to` is given."""
        return results.count_matches(conn, matches, access, high=high, estimate=estimate, up_to=up_to)

    def search_included(
        self,
        conn: Connection,
        matches: MatchSet,
        access: AccessFilter,
        sources: Sequence[StoredVersion],
        specs: Sequence[includes.IncludeSpec],
    ) -> includes.Included:
        """`_include`/`_revinclude` of a page, one statement per level (`socle.store.includes`)."""
        return includes.fetch_included(
            conn, access, self._content, sources, specs, scope=matches.include_filter()
        )

    def existing_ids(
        self, conn: Connection, resource_type: str, ids: Sequence[str], access: AccessFilter
    ) -> set[str]:
        """Which of these ids are live resources of the type (referential integrity checks)."""
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            found.update(
                conn.scalars(
                    select(resource.c.id).where(
                        resource.c.resource_type == resource_type,
                        resource.c.id.in_(ids[start : start + 500]),
                        resource.c.deleted.is_(False),
                        access.condition(resource),
                    )
                )
            )
        return found

    def get_many(self, conn: Connection, keys: Sequence[int], access: AccessFilter) -> list[StoredVersion]:
        """Current versions by resource key, in the order of `keys` (the page of a search)."""
        by_key = {v.resource_key: v for v in self._current(conn, resource.c.resource_key.in_(keys), access)}
        return [by_key[k] for k in keys if k in by_key]

    def get_by_ids(
        self, conn: Connection, resource_type: str, ids: Sequence[str], access: AccessFilter
    ) -> list[StoredVersion]:
        """Current versions of the type with these ids, in no particular order: through the unique
        (type, id) index with no ORDER BY. An `_id` search orders by key, and SQLite without
        statistics, or with statistics taken before the type was filled, served that order by
        walking every resource of the type (100k directory lines, no statistics: `$near` 19 → 472 ms)."""
        of_type = and_(resource.c.resource_type == resource_type, resource.c.id.in_(ids))
        return self._current(conn, of_type, access)

    def _current(
        self, conn: Connection, where: ColumnElement[bool], access: AccessFilter
    ) -> list[StoredVersion]:
        rows = conn.execute(
            select(
                resource.c.resource_key,
                resource.c.resource_type,
                resource.c.id,
                resource.c.version,
                resource.c.updated_at,
                resource.c.compartment,
                self._content,
            ).where(where, resource.c.deleted.is_(False), access.condition(resource))
        ).all()
        return [StoredVersion(r[0], r[1], r[2], r[3], r[4], False, r[5], _as_bytes(r[6])) for r in rows]

    # -- writes ------------------------------------------------------------------------------

    def create_many(self, conn: Connection, resources: Sequence[dict[str, Any]]) -> list[StoredVersion]:
        """Insert new resources with server-assigned ids (or the ids already set by the caller).

        One multi-row INSERT per table, whatever the number of resources: this is the ingest path.
        """
        if not resources:
            return []
        self._created += len(resources)
        now = now_us()
        prepared = []
        for body in resources:
            if not body.get("id"):
                body["id"] = str(uuid.uuid4())
            prepared.append(_stamp(body, 1, now))
        rows = [
            (
                body["resourceType"],
                body["id"],
                compartment,
                _security(body),
                raw,
            )
            for body, raw, compartment in prepared
        ]
        keys = self._insert_resources(conn, rows, now)
        items = [
            (key, body["resourceType"], compartment, body)
            for key, (body, _, compartment) in zip(keys, prepared, strict=True)
        ]
        indexes.write_indexes(conn, items)
        index_hooks.write(conn, items)
        return [
            StoredVersion(
                key, body["resourceType"], body["id"], 1, now, False, compartment, raw, "POST", body
            )
            for key, (body, raw, compartment) in zip(keys, prepared, strict=True)
        ]

    def create(self, conn: Connection, body: dict[str, Any]) -> StoredVersion:
        return self.create_many(conn, [body])[0]

    def update(
        self,
        conn: Connection,
        body: dict[str, Any],
        *,
        if_match: int | None = None,
        method: str = "PUT",
    ) -> tuple[StoredVersion, bool]:
        """Write a new version of `body` (whose id is set). Returns (version, created).

        `if_match` is the version the client expects to replace: a mismatch is a 412. Without it
        the update applies to whatever version is current, retrying if a concurrent writer wins the
        race, so no update is lost.
        """
        resource_type, id = body["resourceType"], body["id"]
        while True:
            current = conn.execute(
                select(resource.c.resource_key, resource.c.version, resource.c.deleted, self._content).where(
                    resource.c.resource_type == resource_type, resource.c.id == id
                )
            ).first()
            if current is None:
                if if_match is not None:
                    raise PreconditionFailed(f"{resource_type}/{id} does not exist (If-Match: {if_match})")
                try:
                    with conn.begin_nested():
                        return self.create(conn, body), True
                except Conflict:
                    continue  # created concurrently: update that one instead
            key, version, deleted = int(current[0]), int(current[1]), bool(current[2])
            if if_match is not None and if_match != version:
                raise PreconditionFailed(
                    f"{resource_type}/{id} is at version {version}, not {if_match} (If-Match)",
                    headers={"ETag": f'W/"{version}"'},
                )
            written = self._write_version(conn, key, version, body, method, _parsed(current[3]))
            if written is not None:
                return written, bool(deleted)
            if if_match is not None:
                raise PreconditionFailed(
                    f"{resource_type}/{id} was changed concurrently (If-Match: {if_match})"
                )

    def update_many(
        self, conn: Connection, resources: Sequence[dict[str, Any]], *, method: str = "PUT"
    ) -> list[tuple[StoredVersion, bool]]:
        """Write a new version of each resource (id set, each at most once), as `update` without
        If-Match would one by one: (version, created) in the order given.

        The bulk path of re-imports. The current versions are read in one statement per type and
        locked (`FOR UPDATE` on PostgreSQL; SQLite's write transaction already excludes other
        writers), so no concurrent writer can slip a version in between; absent resources go through
        `create_many`, the others get one statement per table and their index rows rewritten in one batch.
        """
        refs = [(body["resourceType"], body["id"]) for body in resources]
        if len(set(refs)) != len(refs):
            raise Invalid("update_many was given the same resource twice")
        current = self._lock_current(conn, refs)
        absent = [body for body, ref in zip(resources, refs, strict=True) if ref not in current]
        created: dict[tuple[str, str], StoredVersion] = {}
        if absent:
            try:
                with conn.begin_nested():
                    versions = self.create_many(conn, absent)
            except Conflict:  # one was created concurrently: update-or-create each
                versions = [self.update(conn, body, method=method)[0] for body in absent]
            created = {(v.resource_type, v.id): v for v in versions}
        present = [body for body, ref in zip(resources, refs, strict=True) if ref in current]
        updated = {(v.resource_type, v.id): v for v in self._write_versions(conn, present, current, method)}
        return [
            (created[ref], True) if ref in created else (updated[ref], current[ref].deleted) for ref in refs
        ]

    def _lock_current(
        self, conn: Connection, refs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], _Current]:
        """(type, id) → the current row of those that exist, locked until commit."""
        ids_by_type: dict[str, list[str]] = {}
        for resource_type, id in refs:
            ids_by_type.setdefault(resource_type, []).append(id)
        found: dict[tuple[str, str], _Current] = {}
        for resource_type, ids in ids_by_type.items():
            for start in range(0, len(ids), 500):
                rows = conn.execute(
                    select(
                        resource.c.id,
                        resource.c.resource_key,
                        resource.c.version,
                        resource.c.deleted,
                        self._content,
                    )
                    .where(
                        resource.c.resource_type == resource_type, resource.c.id.in_(ids[start : start + 500])
                    )
                    .with_for_update()
                )
                for row in rows:
                    found[(resource_type, str(row[0]))] = _Current(
                        int(row[1]), int(row[2]), bool(row[3]), row[4]
                    )
        return found

    def _write_versions(
        self,
        conn: Connection,
        bodies: Sequence[dict[str, Any]],
        current: dict[tuple[str, str], _Current],
        method: str,
    ) -> list[StoredVersion]:
        """New versions of locked, existing resources: one executemany per table, indexes rewritten."""
        if not bodies:
            return []
        now = now_us()
        versions: list[StoredVersion] = []
        for body in bodies:
            key, version = current[(body["resourceType"], body["id"])][:2]
            body, raw, compartment = _stamp(body, version + 1, now)
            versions.append(
                StoredVersion(
                    key,
                    body["resourceType"],
                    body["id"],
                    version + 1,
                    now,
                    False,
                    compartment,
                    raw,
                    method,
                    body,
                )
            )
        conn.execute(
            _UPDATE_VERSION,
            [
                {
                    "b_key": v.resource_key,
                    "b_version": v.version - 1,
                    "b_new": v.version,
                    "b_updated": now,
                    "b_compartment": v.compartment,
                    "b_security": _security(v.resource),
                    "b_content": self._content_param(v.resource, v.raw or b""),
                }
                for v in versions
            ],
        )
        self._insert_history(
            conn,
            [
                (
                    v.resource_key,
                    v.version,
                    v.resource_type,
                    v.id,
                    now,
                    method,
                    v.compartment,
                    self._text(v.raw),
                )
                for v in versions
            ],
        )
        items = [(v.resource_key, v.resource_type, v.compartment, v.resource) for v in versions]
        previous = [_parsed(current[(v.resource_type, v.id)].content) for v in versions]
        indexes.rewrite_indexes(conn, items, previous)
        for resource_type in {v.resource_type for v in versions}:
            index_hooks.delete(
                conn, resource_type, [v.resource_key for v in versions if v.resource_type == resource_type]
            )
        index_hooks.write(conn, items)
        return versions

    def _text(self, raw: bytes | None) -> bytes | str:
        """The JSON as `_insert_history` takes it: bytes on SQLite, text for PostgreSQL's COPY."""
        assert raw is not None
        return raw if self._sqlite else raw.decode()

    def delete(
        self, conn: Connection, resource_type: str, id: str, *, if_match: int | None = None
    ) -> StoredVersion | None:
        """Delete as a tombstone version. Deleting what is absent or already deleted is a no-op (None)."""
        while True:
            current = conn.execute(
                select(
                    resource.c.resource_key, resource.c.version, resource.c.deleted, resource.c.compartment
                ).where(resource.c.resource_type == resource_type, resource.c.id == id)
            ).first()
            if current is None or current[2]:
                if if_match is not None:
                    raise PreconditionFailed(f"{resource_type}/{id} does not exist (If-Match: {if_match})")
                return None
            key, version, compartment = int(current[0]), int(current[1]), current[3]
            if if_match is not None and if_match != version:
                raise PreconditionFailed(
                    f"{resource_type}/{id} is at version {version}, not {if_match} (If-Match)"
                )
            now = now_us()
            changed = conn.execute(
                update(resource)
                .where(resource.c.resource_key == key, resource.c.version == version)
                .values(version=version + 1, updated_at=now, deleted=True, content=None, security=None)
            ).rowcount
            if changed != 1:
                continue
            conn.execute(
                insert(resource_history).values(
                    resource_key=key,
                    version=version + 1,
                    resource_type=resource_type,
                    id=id,
                    updated_at=now,
                    method="DELETE",
                    compartment=compartment,
                    content=None,
                )
            )
            indexes.delete_indexes(conn, [key])
            index_hooks.delete(conn, resource_type, [key])
            return StoredVersion(key, resource_type, id, version + 1, now, True, compartment, None, "DELETE")

    def _write_version(
        self,
        conn: Connection,
        key: int,
        version: int,
        body: dict[str, Any],
        method: str,
        previous: dict[str, Any] | None,
    ) -> StoredVersion | None:
        now = now_us()
        body, raw, compartment = _stamp(body, version + 1, now)
        content = self._content_param(body, raw)
        changed = conn.execute(
            update(resource)
            .where(resource.c.resource_key == key, resource.c.version == version)
            .values(
                version=version + 1,
                updated_at=now,
                deleted=False,
                compartment=compartment,
                security=_security(body),
                content=content,
            )
        ).rowcount
        if changed != 1:
            return None
        conn.execute(
            insert(resource_history).values(
                resource_key=key,
                version=version + 1,
                resource_type=body["resourceType"],
                id=body["id"],
                updated_at=now,
                method=method,
                compartment=compartment,
                content=content,
            )
        )
        item = (key, body["resourceType"], compartment, body)
        indexes.rewrite_indexes(conn, [item], [previous])
        index_hooks.delete(conn, body["resourceType"], [key])
        index_hooks.write(conn, [item])
        return StoredVersion(
            key, body["resourceType"], body["id"], version + 1, now, False, compartment, raw, method, body
        )

    def _insert_resources(
        self, conn: Connection, rows: list[tuple[str, str, str | None, list[str] | None, bytes]], now: int
    ) -> list[int]:
        """Insert version 1 of (type, id, compartment, security, JSON) rows in `resource` and
        `resource_history`; their keys, in order.

        The ingest path, so no per-row work in SQLAlchemy: the keys are taken first (the next rowids
        under SQLite's write lock; a block of the sequence on PostgreSQL), then both tables get one
        `executemany` (SQLite) or one COPY (PostgreSQL, the JSON sent once as text: the orjson bytes
        serialised by `_stamp`, not re-encoded from the dict). A duplicate (type, id) is a 409.
        """
        if self._sqlite:
            # Store.write() begins IMMEDIATE: no other writer can take these rowids meanwhile. Keys
            # are what SQLite itself would assign (max + 1: the table is not AUTOINCREMENT).
            first = int(
                conn.exec_driver_sql("SELECT coalesce(max(resource_key), 0) + 1 FROM resource").scalar_one()
            )
            keys = list(range(first, first + len(rows)))
            labels = [None if r[3] is None else orjson.dumps(r[3]).decode() for r in rows]
            try:
                conn.exec_driver_sql(
                    "INSERT INTO resource (resource_key, resource_type, id, version, updated_at, deleted,"
                    " compartment, security, content) VALUES (?, ?, ?, 1, ?, 0, ?, ?, ?)",
                    [
                        (key, t, id, now, comp, sec, raw)
                        for key, (t, id, comp, _, raw), sec in zip(keys, rows, labels, strict=True)
                    ],
                )
            except IntegrityError as exc:
                raise Conflict("a resource with this id already exists") from exc
            self._insert_history(
                conn,
                [
                    (key, 1, t, id, now, "POST", comp, raw)
                    for key, (t, id, comp, _, raw) in zip(keys, rows, strict=True)
                ],
            )
            return keys
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence('resource', 'resource_key'))"
                " FROM generate_series(1, %s)",
                (len(rows),),
            )
            keys = sorted(int(r[0]) for r in cursor.fetchall())
            texts = [raw.decode() for *_, raw in rows]
            try:
                with cursor.copy(
                    "COPY resource (resource_key, resource_type, id, version, updated_at, deleted,"
                    " compartment, security, content) FROM STDIN"
                ) as copy:
                    for key, (t, id, comp, sec, _), text in zip(keys, rows, texts, strict=True):
                        security = None if sec is None else orjson.dumps(sec).decode()
                        copy.write_row((key, t, id, 1, now, False, comp, security, text))
            except psycopg.errors.UniqueViolation as exc:
                raise Conflict("a resource with this id already exists") from exc
        finally:
            cursor.close()
        self._insert_history(
            conn,
            [
                (key, 1, t, id, now, "POST", comp, text)
                for key, (t, id, comp, _, _), text in zip(keys, rows, texts, strict=True)
            ],
        )
        return keys

    def _insert_history(self, conn: Connection, rows: list[_HistoryRow]) -> None:
        """Insert (key, version, type, id, updated_at, method, compartment, JSON) rows in
        `resource_history`: one `executemany` (SQLite) or one COPY (PostgreSQL, JSON as text)."""
        if self._sqlite:
            conn.exec_driver_sql(
                "INSERT INTO resource_history (resource_key, version, resource_type, id, updated_at, method,"
                " compartment, content) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            return
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(
                "COPY resource_history (resource_key, version, resource_type, id, updated_at, method,"
                " compartment, content) FROM STDIN"
            ) as copy:
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()

    def _content_param(self, body: dict[str, Any], raw: bytes) -> Any:
        # SQLite keeps the exact bytes; PostgreSQL's JSONB type takes the dict (serialised by orjson).
        return raw if self._sqlite else body


# One new version of an existing row (`_write_versions`, executemany): the row was locked first.
_UPDATE_VERSION = (
    update(resource)
    .where(resource.c.resource_key == bindparam("b_key"), resource.c.version == bindparam("b_version"))
    .values(
        version=bindparam("b_new"),
        updated_at=bindparam("b_updated"),
        deleted=False,
        compartment=bindparam("b_compartment"),
        security=bindparam("b_security", type_=resource.c.security.type),
        content=bindparam("b_content", type_=resource.c.content.type),
    )
)


def _stamp(body: dict[str, Any], version: int, now: int) -> tuple[dict[str, Any], bytes, str | None]:
    """Set the server-owned `meta` fields (R4 §2.28 Resource.meta) and serialise once."""
    meta = dict(body.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = instant(now)
    body["meta"] = meta
    return body, orjson.dumps(body), patient_compartment(body)


def _security(body: dict[str, Any]) -> list[str] | None:
    labels = (body.get("meta") or {}).get("security")
    if not labels:
        return None
    return [f"{c.get('system', '')}|{c.get('code', '')}" for c in labels if isinstance(c, dict)]


def _parsed(content: Any) -> dict[str, Any] | None:
    """A stored JSON column as a dict (None for a deletion's)."""
    if content is None:
        return None
    parsed: dict[str, Any] = orjson.loads(content)
    return parsed


def _as_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode()
    return bytes(value)
