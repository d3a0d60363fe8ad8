"""Appending AuditEvents to the hash chain, and signing checkpoints of its head.

An append runs on the caller's connection, inside the caller's transaction: a write's events commit
or roll back with the write. Appends are serialized so that two transactions never take the same
`seq` or link to the same head: SQLite write transactions already are (`BEGIN IMMEDIATE`); on
PostgreSQL the append takes a transaction-scoped advisory lock, released at commit or rollback,
*after* the request's own writes, so the lock is held only for the few statements between the
append and the commit and two writers never wait on each other in a cycle. Under READ COMMITTED
each statement after the lock sees the head the previous holder committed.

Every `Settings.audit_checkpoint_every` events (the append that crosses a multiple) also signs
a checkpoint `{"seq", "hash", "iat"}` with the audit key, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select, text

from socle.config import Settings
from socle.store.audit_tables import audit_checkpoint, audit_event
from socle.store.clock import now_us
from socle.trust.audit import signing
from socle.trust.audit.canonical import GENESIS, canonical_json, link_hash
from socle.trust.audit.events import columns

# pg_advisory_xact_lock key of the chain: the first 8 bytes of SHA-256("socle.audit.chain"), signed.
LOCK_KEY = 0x2A6F1C3D5E7B9012

# Built once: every audit flush runs them, and building the head's SELECT anew cost about half as
# much CPU as running it (one B-tree step), per cProfile of a read.
_HEAD = select(audit_event.c.seq, audit_event.c.hash).order_by(audit_event.c.seq.desc()).limit(1)
_INSERT = insert(audit_event)
_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


def lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK, {"key": LOCK_KEY})


def head(conn: Connection) -> tuple[int, str]:
    """(seq, hash) of the last event, (0, GENESIS) for an empty chain."""
    row = conn.execute(_HEAD).first()
    return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))


def append(conn: Connection, settings: Settings, events: Sequence[dict[str, Any]]) -> list[int]:
    """Chain `events` after the current head; returns their seqs."""
    if not events:
        return []
    lock(conn)
    seq, prev = head(conn)
    first = seq + 1
    rows = []
    for event in events:
        seq += 1
        content = canonical_json(event)
        digest = link_hash(prev, content)
        rows.append({**columns(event), "seq": seq, "content": content, "prev_hash": prev, "hash": digest})
        prev = digest
    conn.execute(_INSERT, rows)
    every = settings.audit_checkpoint_every
    if every > 0 and seq // every > (first - 1) // every:
        checkpoint(conn, settings, (seq, prev))
    return list(range(first, seq + 1))


def checkpoint(
    conn: Connection, settings: Settings, at: tuple[int, str] | None = None
) -> tuple[int, str] | None:
    """Sign the chain head (or `at`) into `audit_checkpoint`; None on an empty chain or if already signed."""
    if at is None:
        lock(conn)
        at = head(conn)
    seq, digest = at
    if seq == 0:
        return None
    if conn.execute(select(audit_checkpoint.c.seq).where(audit_checkpoint.c.seq == seq)).first():
        return None
    now = now_us()
    payload = orjson.dumps({"seq": seq, "hash": digest, "iat": now // 1_000_000})
    kid, token = signing.sign(conn, settings, payload)
    conn.execute(
        insert(audit_checkpoint).values(seq=seq, hash=digest, created_at=now, kid=kid, signature=token)
    )
    return seq, digest
