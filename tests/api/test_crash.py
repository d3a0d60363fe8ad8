"""A transaction Bundle is all-or-nothing even when the server process dies in the middle of it.

R4 §3.1.0.11.2 (http.html#trules): a transaction "SHALL" succeed or fail as a whole. A server that
commits in chunks, or writes outside the request's database transaction, passes every in-process
test yet leaves half a Bundle behind when it is killed. So: a real server gets a large transaction,
is SIGKILLed while the database transaction is open (proved by looking at the database, not
guessed from a delay), a new server is started on the same database, and the database must hold
all of the Bundle or none of it, and serve reads and writes again.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url

from socle.store.engine import make_engine
from socle.store.schema import resource, resource_history
from tests.conftest import PG_URL
from tests.server import LiveServer, running_server

pytestmark = pytest.mark.slow

SYSTEM = "urn:socle-test:crash"
FHIR = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
PRIMING_SIZE = 20
# Bundle sizes tried in turn: a larger one only if the server answered before the kill could land.
SIZES = (5_000, 10_000, 20_000)
# On SQLite nothing outside the server shows which phase it is in, only that it holds the write
# lock. Inserting the rows takes roughly the middle half of that time (validation and reference
# resolution come before, the response Bundle after), so the kill aims at its middle.
SQLITE_KILL_AT = 0.5


def transaction(run: str, size: int) -> dict[str, Any]:
    """A Patient and `size` Observations pointing at it through its urn:uuid (R4 §3.1.0.11.2)."""
    patient = f"urn:uuid:{uuid.uuid4()}"
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": patient,
            "resource": {
                "resourceType": "Patient",
                "identifier": [{"system": SYSTEM, "value": run}],
                "name": [{"family": "Crash", "given": [run]}],
            },
            "request": {"method": "POST", "url": "Patient"},
        }
    ]
    for i in range(size):
        entries.append(
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": {
                    "resourceType": "Observation",
                    "meta": {"tag": [{"system": SYSTEM, "code": run}]},
                    "identifier": [{"system": SYSTEM, "value": f"{run}-{i}"}],
                    "status": "final",
                    "code": {
                        "coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]
                    },
                    "subject": {"reference": patient},
                    "effectiveDateTime": "2024-01-01T10:00:00Z",
                    "valueQuantity": {
                        "value": 60 + i % 40,
                        "unit": "/min",
                        "system": "http://unitsofmeasure.org",
                        "code": "/min",
                    },
                },
                "request": {"method": "POST", "url": "Observation"},
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


@dataclass(frozen=True)
class Counts:
    resources: dict[str, int]
    versions: int

    def __sub__(self, other: Counts) -> dict[str, int]:
        delta = {k: v - other.resources.get(k, 0) for k, v in self.resources.items()}
        delta["versions"] = self.versions - other.versions
        return {k: v for k, v in delta.items() if v}


def count_rows(engine: Engine) -> Counts:
    with engine.connect() as conn:
        by_type = conn.execute(
            select(resource.c.resource_type, func.count().label("n")).group_by(resource.c.resource_type)
        ).all()
        versions = conn.scalar(select(func.count()).select_from(resource_history))
    return Counts({row.resource_type: row.n for row in by_type}, int(versions or 0))


def full_transaction(size: int) -> dict[str, int]:
    """What a committed transaction of `size` Observations adds, as `Counts` differences."""
    return {"Observation": size, "Patient": 1, "versions": size + 1}


@dataclass
class Probe:
    """Tells, from outside the server, whether its write transaction is open right now."""

    is_open: Callable[[], bool]
    # What "open" means on this backend, for failure messages.
    meaning: str


@contextlib.contextmanager
def transaction_probe(database_url: str, application_name: str | None) -> Iterator[Probe]:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        path = url.database
        assert path

        def sqlite_locked() -> bool:
            # Writers take the lock with BEGIN IMMEDIATE when the request starts and keep it to the commit.
            with contextlib.closing(sqlite3.connect(path, timeout=0, isolation_level=None)) as conn:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    if "locked" in str(exc) or "busy" in str(exc):
                        return True
                    raise
                conn.execute("ROLLBACK")
                return False

        yield Probe(sqlite_locked, "the server holds SQLite's write lock")
        return
    monitor = make_engine(PG_URL, pool_size=1)

    def pg_writing() -> bool:
        # backend_xid is assigned at a transaction's first write and cleared at its end.
        with monitor.connect() as conn:
            busy = conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE application_name = :name AND backend_xid IS NOT NULL"
                ),
                {"name": application_name},
            )
        return bool(busy)

    try:
        yield Probe(pg_writing, "a server connection has an open transaction that has written rows")
    finally:
        monitor.dispose()


@dataclass
class Post:
    """A POST running in a thread: either `response` or `error` is set once `done`."""

    thread: threading.Thread
    done: threading.Event
    started: float
    response: httpx.Response | None = None
    error: BaseException | None = None
    finished: float | None = field(default=None)


def post_in_thread(url: str, body: bytes, token: dict[str, str]) -> Post:
    post = Post(threading.Thread(target=lambda: None), threading.Event(), time.monotonic())

    def send() -> None:
        try:
            with httpx.Client(timeout=300.0) as client:
                post.response = client.post(url, content=body, headers={**FHIR, **token})
        except BaseException as exc:  # the kill shows up here as a transport error
            post.error = exc
        finally:
            post.finished = time.monotonic()
            post.done.set()

    post.thread = threading.Thread(target=send, daemon=True)
    post.thread.start()
    return post


def wait_for(condition: Callable[[], bool], until: float, interval: float = 0.005) -> bool:
    while time.monotonic() < until:
        if condition():
            return True
        time.sleep(interval)
    return condition()


@dataclass
class Attempt:
    size: int
    killed_mid_transaction: bool
    note: str


def warm_up(server: LiveServer, probe: Probe, size: int) -> float:
    """Commit a transaction like the one to be killed, and time how long its database transaction stays open.

    A small one goes first: the first request of a process pays for loading the search parameters.
    """
    with httpx.Client(timeout=120.0) as client:
        primed = client.post(
            server.url,
            content=orjson.dumps(transaction("priming", PRIMING_SIZE)),
            headers={**FHIR, **server.headers},
        )
        assert primed.status_code == 200, primed.text
    post = post_in_thread(server.url, orjson.dumps(transaction("warmup", size)), server.headers)
    opened = wait_for(lambda: probe.is_open() or post.done.is_set(), post.started + 120)
    opened_at = time.monotonic()
    if opened and not post.done.is_set():
        wait_for(lambda: not probe.is_open(), opened_at + 120)
    open_for = time.monotonic() - opened_at
    post.thread.join()
    assert post.response is not None and post.response.status_code == 200, _describe(post)
    return max(open_for, 0.01)


def crash_during_transaction(
    server: LiveServer, probe: Probe, engine: Engine, before: Counts, size: int, expected: float
) -> Attempt:
    """POST a transaction of `size` entries and SIGKILL the server while its transaction is open.

    `expected` is how long the same transaction stayed open when it was left to commit.
    """
    run = uuid.uuid4().hex[:8]
    body = orjson.dumps(transaction(run, size))
    post = post_in_thread(server.url, body, server.headers)
    # The body is read and parsed before the transaction starts: wait for the transaction itself.
    opened = wait_for(lambda: probe.is_open() or post.done.is_set(), post.started + 30 + 4 * expected)
    if post.done.is_set() or not opened:
        post.thread.join()
        return Attempt(size, False, f"answered before the transaction was seen open ({_describe(post)})")
    opened_at = time.monotonic()
    if make_url(server.database_url).get_backend_name() == "sqlite":
        # Meanwhile other connections may see none of the Bundle or (once committed) all of it.
        deadline = opened_at + SQLITE_KILL_AT * expected
        while time.monotonic() < deadline and not post.done.is_set():
            added = count_rows(engine) - before
            assert added in ({}, full_transaction(size)), (
                f"another connection saw part of the transaction: {added}"
            )
            if added:
                break  # committed already: the kill will come too late, and a larger Bundle is tried
            time.sleep(0.01)
    still_open = probe.is_open()
    server.kill()
    killed_at = time.monotonic()
    post.thread.join(timeout=30)
    assert post.done.is_set(), "the client thread did not notice the server's death"
    if post.response is not None:
        return Attempt(size, False, f"the response arrived before the kill ({_describe(post)})")
    assert isinstance(post.error, httpx.TransportError), f"unexpected client error: {post.error!r}"
    assert server.process.returncode == -9, server.process.returncode
    return Attempt(
        size,
        still_open,
        f"killed {killed_at - opened_at:.2f} s after the transaction opened "
        f"(expected duration ≈ {expected:.2f} s); transaction open at the kill: {still_open}",
    )


def _describe(post: Post) -> str:
    took = (post.finished or time.monotonic()) - post.started
    if post.response is not None:
        return f"HTTP {post.response.status_code} after {took:.2f} s"
    return f"{post.error!r} after {took:.2f} s"


def test_sigkill_mid_transaction_leaves_all_or_nothing(database_url: str) -> None:
    application_name = None
    if make_url(database_url).get_backend_name() == "postgresql":
        # Tag the server's connections so that pg_stat_activity shows which backends are its own.
        application_name = f"socle-crash-{uuid.uuid4().hex[:8]}"
        database_url = f"{database_url}&application_name={application_name}"

    engine = make_engine(database_url, pool_size=1)
    attempts: list[Attempt] = []
    try:
        with transaction_probe(database_url, application_name) as probe:
            for size in SIZES:
                with running_server(database_url) as server:
                    # A committed warm-up Bundle: measures the pace, and "none" must not mean "empty".
                    expected = warm_up(server, probe, size)
                    before = count_rows(engine)
                    attempt = crash_during_transaction(server, probe, engine, before, size, expected)
                    attempts.append(attempt)
                    stderr = server.stderr_text()

                added = count_rows(engine) - before
                assert added in ({}, full_transaction(size)), (
                    f"the database holds part of a transaction of {size + 1} resources: {added}; "
                    f"{attempt.note}\nserver stderr:\n{stderr}"
                )
                if attempt.killed_mid_transaction:
                    # The kill landed while the transaction was open (not between commit and answer).
                    assert added == {}, (
                        f"a transaction killed before its commit was kept: {added}; {attempt.note}"
                    )
                    break
            else:
                pytest.fail(f"the kill never landed during the transaction: {[a.note for a in attempts]}")

            # A new server on the same database starts cleanly, serves reads and takes writes.
            with (
                running_server(database_url) as server,
                httpx.Client(base_url=server.url, headers={**FHIR, **server.headers}) as client,
            ):
                found = client.get("Patient", params={"identifier": f"{SYSTEM}|warmup"})
                assert found.status_code == 200, found.text
                patients = [
                    e["resource"] for e in found.json().get("entry", []) if e["search"]["mode"] == "match"
                ]
                assert len(patients) == len(attempts), found.text  # one warm-up committed per attempt
                read = client.get(f"Patient/{patients[0]['id']}")
                assert read.status_code == 200, read.text
                observations = client.get("Observation", params={"identifier": f"{SYSTEM}|warmup-0"})
                assert observations.status_code == 200, observations.text
                assert len(observations.json().get("entry", [])) == len(attempts), observations.text
                created = client.post(
                    "Patient", json={"resourceType": "Patient", "name": [{"family": "After"}]}
                )
                assert created.status_code == 201, created.text
                assert client.get(f"Patient/{created.json()['id']}").status_code == 200
    finally:
        engine.dispose()
