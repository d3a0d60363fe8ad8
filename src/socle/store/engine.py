"""Database engines for the two supported backends, tuned for Socle's access pattern.

SQLite: WAL (readers never block the writer), `synchronous=NORMAL` (a process crash loses nothing
committed; only power loss may drop the last commits), and write transactions opened with
`BEGIN IMMEDIATE` so that two writers queue on the lock instead of deadlocking when a read
transaction upgrades; `WriteGate` makes that queue one that hands the lock over at release
instead of one whose waiters poll. PostgreSQL: psycopg 3 with a connection pool; JSONB encoded with orjson.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def normalize_url(url: str) -> URL:
    """Accept `postgresql://` and `postgres://` URLs as given by operators; use psycopg 3 for them."""
    parsed = make_url(
        url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url
    )
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


# Compiled statements are cached per shape and, under the access policy, per decision (the
# policy's condition is compiled once per decision: socle.trust.policy.filters): room for many
# professionals at once, not SQLAlchemy's default 500.
QUERY_CACHE_SIZE = 5000


def make_engine(url: str, *, pool_size: int = 20) -> Engine:
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    if parsed.get_backend_name() == "postgresql":
        engine = create_engine(
            parsed,
            # As many pooled connections as the ASGI thread pool runs requests at once (40), so
            # connections are reused rather than opened and closed under load; no pre-ping
            # round trip per request: connections are recycled hourly instead.
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_recycle=3600,
            query_cache_size=QUERY_CACHE_SIZE,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
        )
        event.listen(engine, "connect", _postgresql_session)
        return engine
    raise ValueError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite:// or postgresql://")


def _postgresql_session(dbapi_connection: Any, _record: Any) -> None:
    # JIT compilation pays off for long analytic queries, not for pages of 50: it added 7-12 ms
    # to cohort searches whose cost estimate crossed `jit_above_cost` (bench/README.md). A SET,
    # not the URL's `options`, which may already carry a search_path.
    # Custom plans only: psycopg prepares a statement run 5 times, and PostgreSQL then may switch
    # to a generic plan, blind to the values. A search's values (codes, names) are skewed, so the
    # generic plan of `PractitionerRole?role=10&specialty=SM54` took 2.7 s where the custom plan
    # takes 12 ms (1M directory lines); planning costs under a millisecond.
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET jit = off")
        cursor.execute("SET plan_cache_mode = force_custom_plan")
    dbapi_connection.commit()


def _sqlite_engine(url: URL) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        query_cache_size=QUERY_CACHE_SIZE,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        connect_args={"check_same_thread": False, "timeout": 60},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so that BEGIN is ours (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


class WriteGate:
    """The queue of the writers of one SQLite database file, in front of SQLite's own write lock.

    SQLite's lock does not queue: a writer that finds it taken sleeps in SQLite's busy handler (1, 2,
    5, 10, 15, 20, 25… ms) and tries again, so under concurrent writes a short transaction can wait
    many times as long as those ahead of it took, and be overtaken by writers that came later. Writers
    that pass through the gate (`Store.write`) block instead on locks the operating system hands over
    as soon as they are released: a thread lock among this process' threads, then an exclusive
    `flock` on a file beside the database among processes. SQLite's lock still guards the data,
    against writers that do not pass here (other tools, `engine.begin()`), as before.

    The thread lock is re-entrant so that a nested write in the same thread fails as it did without
    the gate (SQLite's busy timeout) instead of waiting for itself forever; only the outermost holder
    takes and releases the file lock.
    """

    def __init__(self, database: str) -> None:
        self.path = f"{database}-writers"
        self._threads = threading.RLock()
        self._depth = 0  # nesting of the holding thread; changed only under `_threads`

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._threads:
            # Opened for each outermost hold: closing it releases the lock, and no descriptor is
            # kept per store (tests make thousands) or shared with a forked child.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600) if self._depth == 0 else -1
            self._depth += 1
            try:
                if fd >= 0:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                self._depth -= 1
                if fd >= 0:
                    os.close(fd)


def write_gate(engine: Engine) -> WriteGate | None:
    """The gate of a file-backed SQLite database; None for PostgreSQL (its writers queue on row and
    advisory locks, woken at release) and for in-memory SQLite (one connection, nobody to queue)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return WriteGate(database)
