"""Walk the audit chain and its checkpoints; say exactly where it was tampered with.

Checks, for every row in `seq` order:
- `seq` has no gap (a gap is a deleted event);
- `content` is canonical JSON and hashes, after `prev_hash`, to the stored `hash` (else modified);
- `prev_hash` is the stored hash of the row before (else the link is broken: the row it was
  chained to is found elsewhere, which means rows were inserted before it or reordered, or is
  found nowhere, which means that row was deleted and the rest renumbered or rewritten);
- the searchable columns (id, recorded, compartment, agent, action, outcome, …) agree with the
  content, so a row cannot be hidden from `AuditEvent?patient=` by editing a column;
and for every checkpoint: the signature verifies with an authenticated audit key (else forged),
the signed (seq, hash) is the payload stored beside it, and the chain still has that hash at that
seq (else the chain was rewritten or truncated after being signed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, func, select

from socle.config import Settings
from socle.store.audit_tables import audit_checkpoint, audit_event
from socle.trust.audit import signing
from socle.trust.audit.canonical import GENESIS, canonical_json, link_hash
from socle.trust.audit.events import columns

BATCH = 2000
_CHECKED = (
    "id",
    "recorded",
    "resource_type",
    "compartment",
    "agent",
    "action",
    "outcome",
    "subtype",
    "entity",
)


@dataclass(frozen=True)
class Finding:
    kind: str  # modified | deleted | inserted | reordered | broken | checkpoint
    seq: int | None
    id: str | None
    detail: str

    def __str__(self) -> str:
        where = f"seq {self.seq}" if self.seq is not None else "chain"
        if self.id:
            where += f" (id {self.id})"
        return f"{self.kind}: {where}: {self.detail}"


@dataclass
class Report:
    events: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    checkpoints: int = 0
    checkpoints_valid: int = 0
    last_checkpoint: int = 0
    keys_authenticated: bool = True
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


@dataclass
class _Broken:
    seq: int
    id: str
    prev_hash: str
    expected: str  # the hash of the row before


def count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(audit_event)).scalar_one())


def _rows(conn: Connection) -> Iterator[Any]:
    after = -1
    e = audit_event
    while True:
        batch = conn.execute(select(e).where(e.c.seq > after).order_by(e.c.seq).limit(BATCH)).all()
        if not batch:
            return
        yield from batch
        after = batch[-1].seq


def verify(
    conn: Connection,
    settings: Settings,
    *,
    pinned: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Report:
    report = Report()
    broken: list[_Broken] = []
    prev_seq, prev_hash = 0, GENESIS
    for row in _rows(conn):
        report.events += 1
        content = bytes(row.content)
        if row.seq != prev_seq + 1:
            missing = (
                f"seq {prev_seq + 1}" if row.seq == prev_seq + 2 else f"seq {prev_seq + 1}–{row.seq - 1}"
            )
            report.findings.append(
                Finding(
                    "deleted",
                    prev_seq + 1,
                    None,
                    f"{missing} missing: deleted between seq {prev_seq} and seq {row.seq} (id {row.id})",
                )
            )
        elif row.prev_hash != prev_hash:
            broken.append(_Broken(row.seq, row.id, row.prev_hash, prev_hash))
        _check_row(row, content, report)
        prev_seq, prev_hash = row.seq, row.hash
        if progress is not None:
            progress(1)
    report.head_seq, report.head_hash = prev_seq, prev_hash
    _classify(conn, broken, report)
    _check_checkpoints(conn, settings, pinned, report)
    report.findings.sort(key=lambda f: f.seq if f.seq is not None else 1 << 62)
    return report


def _check_row(row: Any, content: bytes, report: Report) -> None:
    if link_hash(row.prev_hash, content) != row.hash:
        report.findings.append(
            Finding("modified", row.seq, row.id, "its content no longer hashes to the hash stored with it")
        )
        return
    try:
        event = orjson.loads(content)
        derived = columns(event)
    except (orjson.JSONDecodeError, KeyError, TypeError, IndexError, AttributeError, ValueError):
        report.findings.append(Finding("modified", row.seq, row.id, "its content is not an AuditEvent"))
        return
    if canonical_json(event) != content:
        report.findings.append(Finding("modified", row.seq, row.id, "its content is not canonical JSON"))
    for name in _CHECKED:
        if getattr(row, name) != derived[name]:
            report.findings.append(
                Finding(
                    "modified",
                    row.seq,
                    row.id,
                    f"column {name} = {getattr(row, name)!r} but the hashed event says {derived[name]!r}",
                )
            )


def _classify(conn: Connection, broken: list[_Broken], report: Report) -> None:
    """Where did each broken link point? Look the hashes up once, then name the tampering."""
    wanted = sorted({b.prev_hash for b in broken})
    where: dict[str, tuple[int, str]] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = conn.execute(
            select(audit_event.c.hash, audit_event.c.seq, audit_event.c.id).where(
                audit_event.c.hash.in_(chunk)
            )
        )
        where.update({r.hash: (r.seq, r.id) for r in rows})
    for b in broken:
        found = where.get(b.prev_hash)
        if found is None:
            report.findings.append(
                Finding(
                    "broken",
                    b.seq,
                    b.id,
                    f"it was chained to an event that no longer exists: seq {b.seq - 1} was modified and "
                    "re-hashed, or events before it were deleted and the rest renumbered",
                )
            )
        elif found[0] < b.seq - 1:
            first = found[0] + 1
            span = f"seq {first}" if first == b.seq - 1 else f"seq {first}–{b.seq - 1}"
            report.findings.append(
                Finding(
                    "inserted",
                    first,
                    None,
                    f"{span} inserted: seq {b.seq} (id {b.id}) was chained right after "
                    f"seq {found[0]} (id {found[1]})",
                )
            )
        else:
            report.findings.append(
                Finding(
                    "reordered",
                    b.seq,
                    b.id,
                    f"it was chained right after seq {found[0]} (id {found[1]}), not after seq {b.seq - 1}",
                )
            )


def _check_checkpoints(
    conn: Connection, settings: Settings, pinned: dict[str, Any] | None, report: Report
) -> None:
    keys = signing.trusted_keys(conn, settings, pinned)
    report.keys_authenticated = all(k.authenticated for k in keys.values())
    for cp in conn.execute(select(audit_checkpoint).order_by(audit_checkpoint.c.seq)):
        report.checkpoints += 1
        key = keys.get(cp.kid)
        if key is None:
            report.findings.append(
                Finding("checkpoint", cp.seq, None, f"signed with an unknown key {cp.kid!r}: forged")
            )
            continue
        if key.problem is not None:
            report.findings.append(
                Finding("checkpoint", cp.seq, None, f"key {cp.kid} is not Socle's: {key.problem}")
            )
            continue
        payload = signing.verify_signature(cp.signature, key.key)
        if payload is None:
            report.findings.append(
                Finding("checkpoint", cp.seq, None, "its signature does not verify: forged")
            )
            continue
        try:
            signed = orjson.loads(payload)
            signed_seq, signed_hash = int(signed["seq"]), str(signed["hash"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            report.findings.append(
                Finding("checkpoint", cp.seq, None, "its signed payload is not a checkpoint")
            )
            continue
        if (signed_seq, signed_hash) != (cp.seq, cp.hash):
            report.findings.append(
                Finding(
                    "checkpoint",
                    cp.seq,
                    None,
                    f"the stored seq/hash differ from the signed ones (seq {signed_seq})",
                )
            )
            continue
        row = conn.execute(
            select(audit_event.c.hash, audit_event.c.id).where(audit_event.c.seq == cp.seq)
        ).first()
        if row is None:
            report.findings.append(
                Finding(
                    "checkpoint",
                    cp.seq,
                    None,
                    f"a checkpoint was signed at seq {cp.seq} but the chain ends at seq {report.head_seq}: "
                    "events were deleted from its end",
                )
            )
            continue
        if row.hash != cp.hash:
            report.findings.append(
                Finding(
                    "checkpoint",
                    cp.seq,
                    row.id,
                    "the chain's hash here differs from the signed one: "
                    "the chain up to this seq was rewritten",
                )
            )
            continue
        report.checkpoints_valid += 1
        report.last_checkpoint = cp.seq
