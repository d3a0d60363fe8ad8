"""Group commit of the AuditEvents of reads: one write transaction for every read waiting at once.

A read's events must be committed before its response is sent (an access is never left unrecorded),
but one write transaction per read serializes every read on the chain: on SQLite a `BEGIN
IMMEDIATE` each, queued on the write lock; on PostgreSQL a durable commit (WAL flush) each, under
the chain's advisory lock. So the reads of one process combine their appends:

- each read queues its events, then takes the flush lock;
- whoever holds the flush lock appends everything queued (in arrival order, one `chain.append`) in
  one transaction, commits, and marks each queued read done (or failed, with the error);
- a read that gets the flush lock and finds its events already committed by another returns at once.

While one flush commits, the reads arriving queue up and the next holder commits them all: under
load a read waits for at most the flush in progress and its own, and the chain takes one
transaction per flush instead of one per read. A read that is alone flushes only its own events.
Durability is unchanged: `append` returns only once the transaction holding the events committed.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from socle.config import Settings
from socle.store.repository import Store
from socle.trust.audit import chain


class AppendFailed(RuntimeError):
    """The flush holding a read's events failed: nothing of it was committed."""


@dataclass(eq=False)
class _Queued:
    events: Sequence[dict[str, Any]]
    done: bool = False
    error: BaseException | None = None


class GroupAppender:
    """Appends the events of concurrent reads of this process, several reads per transaction."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self._queued: list[_Queued] = []
        self._queue_lock = threading.Lock()  # held only to add to or take the queue
        self._flush_lock = threading.Lock()  # one flush at a time in this process

    def append(self, events: Sequence[dict[str, Any]]) -> None:
        """Return once `events` are committed in the chain; raise `AppendFailed` if they were not."""
        if not events:
            return
        mine = _Queued(events)
        with self._queue_lock:
            self._queued.append(mine)
        with self._flush_lock:
            if not mine.done:  # no flush took it while this read waited for the lock
                self._flush()
        if mine.error is not None:
            raise AppendFailed("the AuditEvents of this read could not be committed") from mine.error

    def _flush(self) -> None:
        with self._queue_lock:
            batch, self._queued = self._queued, []
        try:
            with self._store.write() as conn:
                chain.append(conn, self._settings, [event for queued in batch for event in queued.events])
        except BaseException as error:  # the transaction rolled back: no read of the batch is recorded
            for queued in batch:
                queued.error = error
        for queued in batch:  # taken off the queue either way: each read now knows its fate
            queued.done = True
