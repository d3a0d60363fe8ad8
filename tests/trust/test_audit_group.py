"""Group commit of reads' AuditEvents (`trust.audit.group`), on both backends: reads waiting during a
flush share the next transaction, a failed flush fails every read it held, and under concurrent reads
from several threads of two app instances on one database no access is lost, each is committed
before its response, and the chain verifies."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, select, text
from starlette.testclient import TestClient

from socle.app import create_app
from socle.config import Settings
from socle.store.audit_tables import audit_event
from socle.store.engine import make_engine
from socle.store.repository import Store
from socle.trust.audit import chain
from socle.trust.audit.events import Access, Touched, build_events
from socle.trust.audit.group import AppendFailed, GroupAppender
from socle.trust.audit.verify import verify
from socle.trust.principal import SYSTEM_PRINCIPAL
from tests.conftest import pg_engine
from tests.server import MASTER_KEY

SETTINGS = Settings(auth_master_key=MASTER_KEY, audit_checkpoint_every=5)
WAIT = 30  # seconds: only a broken implementation waits that long


def _event(i: int) -> dict[str, Any]:
    access = Access("read", "R", [Touched(f"Observation/o{i}", f"pat-{i}", "R", 1)])
    [event] = build_events(access, SYSTEM_PRINCIPAL, site="http://test/fhir", now=1_700_000_000_000_000 + i)
    return event


class _HeldStore(Store):
    """A store whose first write transaction waits for `release` once it has begun: the reads that
    arrive meanwhile queue behind that flush, as they do behind a commit under load."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.writes = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        self.writes += 1
        with super().write() as conn:
            if self.writes == 1:
                self.entered.set()
                assert self.release.wait(WAIT)
            yield conn


def _chained_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [str(r[0]) for r in conn.execute(select(audit_event.c.id).order_by(audit_event.c.seq))]


def _hold_first_flush(store: _HeldStore, appender: GroupAppender, events: list[dict[str, Any]]) -> list[Any]:
    """Start one read (of `events[0]`) that flushes and holds its transaction open, then the others
    queued behind it; returns each read's outcome (None or its exception), in the order of `events`."""
    queued = len(events) - 1
    outcomes: list[Any] = [None] * len(events)

    def read(n: int) -> None:
        try:
            appender.append([events[n]])
        except AppendFailed as error:
            outcomes[n] = error

    first = threading.Thread(target=read, args=(0,))
    first.start()
    assert store.entered.wait(WAIT)
    others = [threading.Thread(target=read, args=(n,)) for n in range(1, queued + 1)]
    for thread in others:
        thread.start()
    for _ in range(WAIT * 100):  # until every other read is queued behind the held flush
        if len(appender._queued) == queued:
            break
        threading.Event().wait(0.01)
    assert len(appender._queued) == queued
    store.release.set()
    for thread in [first, *others]:
        thread.join(WAIT)
    return outcomes


def test_reads_waiting_during_a_flush_share_one_transaction(engine: Engine) -> None:
    store = _HeldStore(engine)
    appender = GroupAppender(store, SETTINGS)
    events = [_event(n) for n in range(7)]
    outcomes = _hold_first_flush(store, appender, events)
    assert outcomes == [None] * 7
    assert store.writes == 2  # the held flush, then one for the six reads queued behind it (not six)
    ids = _chained_ids(engine)
    assert ids[0] == events[0]["id"] and sorted(ids) == sorted(e["id"] for e in events)
    with engine.connect() as conn:
        assert verify(conn, SETTINGS).ok


def test_a_failed_flush_fails_every_read_it_held_and_records_none(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _HeldStore(engine)
    appender = GroupAppender(store, SETTINGS)
    real = chain.append
    calls = []

    def second_fails(conn: Connection, settings: Settings, events: Any) -> list[int]:
        calls.append(len(events))
        if len(calls) == 2:
            raise RuntimeError("audit storage unavailable")
        return real(conn, settings, events)

    monkeypatch.setattr(chain, "append", second_fails)
    outcomes = _hold_first_flush(store, appender, [_event(n) for n in range(4)])
    assert outcomes[0] is None
    assert all(isinstance(o, AppendFailed) for o in outcomes[1:])
    assert calls == [1, 3]
    assert len(_chained_ids(engine)) == 1  # only the first read's event: the failed batch rolled back
    appender.append([_event(9)])  # the next read flushes on its own, normally
    assert len(_chained_ids(engine)) == 2


def _second_engine(engine: Engine, backend: str) -> Engine:
    """Another engine on the same database, as a second server process would have."""
    if backend == "sqlite":
        return make_engine(str(engine.url))
    with engine.connect() as conn:
        schema = str(conn.execute(text("SELECT current_schema()")).scalar_one())
    return pg_engine(schema)


def _audited(engine: Engine, patient: str) -> int:
    with engine.connect() as conn:
        where = audit_event.c.compartment == patient
        return int(conn.execute(select(func.count()).select_from(audit_event).where(where)).scalar_one())


def test_concurrent_reads_of_two_app_instances_are_all_recorded_before_they_answer(
    engine: Engine, backend: str
) -> None:
    """Eight threads, four per app instance (two stores, two appenders, one database), each reading
    its own patient: every read's event is committed before the read answers, none is lost, and the
    chain they share verifies."""
    settings = Settings(
        database_url="sqlite://", auth_required=False, auth_master_key=MASTER_KEY, audit_checkpoint_every=7
    )
    other = _second_engine(engine, backend)
    apps = [create_app(settings, store=Store(engine)), create_app(settings, store=Store(other))]
    reads, errors = 12, []
    with TestClient(apps[0]) as first, TestClient(apps[1]) as second:
        clients = [first, second]
        patients = []
        for n in range(8):
            created = first.post(
                "/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": f"F{n}"}]}
            )
            patients.append(created.json()["id"])
        written = sum(_audited(engine, p) for p in patients)  # the creates' own events

        def reader(n: int) -> None:
            client, patient = clients[n % 2], patients[n]
            try:
                for i in range(reads):
                    response = client.get(
                        f"/fhir/Patient/{patient}" if i % 2 else f"/fhir/Patient?_id={patient}"
                    )
                    assert response.status_code == 200, response.text
                    assert _audited(engine, patient) >= i + 2  # its create, and each read answered so far
            except BaseException as error:  # noqa: BLE001 (reported below, from the main thread)
                errors.append(error)

        threads = [threading.Thread(target=reader, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT * 4)
    other.dispose()
    assert errors == []
    assert sum(_audited(engine, p) for p in patients) == written + 8 * reads
    with engine.connect() as conn:
        report = verify(conn, settings)
    assert report.ok, report.findings
    assert report.checkpoints_valid >= (written + 8 * reads) // 7
