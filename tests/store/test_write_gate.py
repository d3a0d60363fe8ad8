"""The SQLite write gate (`store.engine.WriteGate`): writers of one database file queue on a lock
handed over at release (a thread lock, then `flock` on a file beside the database) before they take
SQLite's own lock, whose busy handler polls. PostgreSQL has none: its writers already queue on locks
that wake them."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

from sqlalchemy import Engine

from socle.store.engine import WriteGate, make_engine, write_gate
from socle.store.migrate import upgrade
from socle.store.repository import Store

WAIT = 30  # seconds: only a broken gate waits that long


def test_only_file_backed_sqlite_databases_have_a_gate(engine: Engine, backend: str) -> None:
    gate = write_gate(engine)
    assert (gate is not None) == (backend == "sqlite")
    if gate is not None:
        assert gate.path == f"{engine.url.database}-writers"


def test_a_write_waits_at_the_gate_while_another_process_holds_it(tmp_path: Path) -> None:
    """Another process is another open file: its `flock` keeps this store's writer out of SQLite's
    lock until it lets go, and the writer then enters without polling."""
    engine = make_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    upgrade(engine)
    store = Store(engine)
    other = WriteGate(str(tmp_path / "gate.db"))  # its own descriptor, as in another process
    order: list[str] = []
    started = threading.Event()

    def writer() -> None:
        started.set()
        with store.write():
            order.append("write")

    with other.held():
        thread = threading.Thread(target=writer)
        thread.start()
        assert started.wait(WAIT)
        thread.join(0.2)  # long enough for an ungated write to have committed
        order.append("released")
    thread.join(WAIT)
    engine.dispose()
    assert order == ["released", "write"]


def test_threads_of_one_process_take_turns_and_a_nested_hold_does_not_wait_for_itself(
    tmp_path: Path,
) -> None:
    gate = WriteGate(str(tmp_path / "x.db"))
    inside = 0
    most = 0
    lock = threading.Lock()

    def hold() -> None:
        nonlocal inside, most
        for _ in range(50):
            with gate.held(), gate.held():  # re-entrant in one thread
                with lock:
                    inside += 1
                    most = max(most, inside)
                with lock:
                    inside -= 1

    threads = [threading.Thread(target=hold) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert most == 1
    fd = os.open(gate.path, os.O_RDWR)
    try:  # released when the last hold ended: another process could take it now
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
