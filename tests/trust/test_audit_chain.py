"""The audit chain in the database: hashing, checkpoints, and tamper detection (both backends).

Each tamper test edits the tables directly, as someone with database access would, and checks that
`verify` fails at the right place (kind, seq, id) — and that the untouched chain verifies.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, delete, func, insert, select, update

from socle.config import Settings
from socle.store.audit_tables import audit_checkpoint, audit_event, audit_key
from socle.store.repository import Store
from socle.trust.audit import chain
from socle.trust.audit.canonical import GENESIS, canonical_json, link_hash
from socle.trust.audit.events import Access, Touched, build_events, columns
from socle.trust.audit.verify import Report, verify
from socle.trust.principal import SYSTEM_PRINCIPAL, Practice, Principal
from tests.server import MASTER_KEY

SETTINGS = Settings(auth_master_key=MASTER_KEY, audit_checkpoint_every=4)
DOCTOR = Principal(
    kind="professional",
    subject="acc-1",
    fhir_user="Practitioner/p1",
    client_id="app-1",
    practice=Practice("810000000001", profession="10", specialty="SM54"),
)


def _events(n: int, patient: str = "pat-1") -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        access = Access("read", "R", [Touched(f"Observation/o{i}", patient, "R", 1)])
        out.extend(build_events(access, DOCTOR, site="http://test/fhir", now=1_700_000_000_000_000 + i))
    return out


def _fill(engine: Engine, n: int = 10) -> list[str]:
    """n events appended one transaction each; returns their ids in seq order."""
    ids = []
    for event in _events(n):
        with engine.begin() as conn:
            chain.append(conn, SETTINGS, [event])
        ids.append(event["id"])
    return ids


def _verify(engine: Engine) -> Report:
    with engine.connect() as conn:
        return verify(conn, SETTINGS)


def _first(report: Report) -> tuple[str, int | None]:
    assert not report.ok
    return report.findings[0].kind, report.findings[0].seq


def test_canonical_json_is_sorted_compact_utf8() -> None:
    value = {"b": "é\n\x01/", "a": [True, {"z": "1", "y": "2"}]}
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert canonical_json(value) == expected
    assert link_hash(GENESIS, b"{}") == hashlib.sha256(GENESIS.encode() + b"{}").hexdigest()


def test_an_untouched_chain_verifies_and_links_by_the_documented_hash(engine: Engine) -> None:
    ids = _fill(engine, 10)
    with engine.connect() as conn:
        rows = conn.execute(select(audit_event).order_by(audit_event.c.seq)).all()
        checkpoints: list[int] = list(conn.execute(select(audit_checkpoint.c.seq)).scalars())
    assert [r.id for r in rows] == ids and [r.seq for r in rows] == list(range(1, 11))
    prev = GENESIS
    for row in rows:  # recomputed here from the documented formula, not with Socle's function
        assert row.prev_hash == prev
        assert row.hash == hashlib.sha256(prev.encode() + bytes(row.content)).hexdigest()
        assert orjson.loads(row.content)["resourceType"] == "AuditEvent"
        prev = row.hash
    assert sorted(checkpoints) == [4, 8]  # every 4 events (the setting)
    report = _verify(engine)
    assert report.ok, report.findings
    assert (report.events, report.checkpoints_valid, report.last_checkpoint) == (10, 2, 8)
    assert report.keys_authenticated


def test_an_edited_event_is_found(engine: Engine) -> None:
    ids = _fill(engine)
    with engine.begin() as conn:
        row = conn.execute(select(audit_event.c.content).where(audit_event.c.seq == 6)).one()
        event = orjson.loads(row.content)
        event["agent"][0]["who"]["reference"] = "Practitioner/someone-else"
        conn.execute(update(audit_event).where(audit_event.c.seq == 6).values(content=canonical_json(event)))
    report = _verify(engine)
    assert _first(report) == ("modified", 6)
    assert report.findings[0].id == ids[5]
    assert "seq 6" in str(report.findings[0]) and ids[5] in str(report.findings[0])


def test_an_edited_column_is_found(engine: Engine) -> None:
    """Hiding an event from `AuditEvent?patient=` by editing its compartment column is caught."""
    _fill(engine)
    with engine.begin() as conn:
        conn.execute(update(audit_event).where(audit_event.c.seq == 3).values(compartment="someone-else"))
    report = _verify(engine)
    assert _first(report) == ("modified", 3)
    assert "compartment" in report.findings[0].detail


def test_a_deleted_event_is_found(engine: Engine) -> None:
    _fill(engine)
    with engine.begin() as conn:
        conn.execute(delete(audit_event).where(audit_event.c.seq == 5))
    report = _verify(engine)
    assert _first(report) == ("deleted", 5)
    assert len(report.findings) == 1, report.findings


def test_a_deleted_event_with_renumbering_is_found(engine: Engine) -> None:
    _fill(engine)
    with engine.begin() as conn:
        conn.execute(delete(audit_event).where(audit_event.c.seq == 2))
        for seq in range(3, 11):
            conn.execute(update(audit_event).where(audit_event.c.seq == seq).values(seq=seq - 1))
    report = _verify(engine)
    assert _first(report) == ("broken", 2)  # seq 2 (formerly 3) was chained to an event that is gone
    assert any(f.kind == "checkpoint" for f in report.findings)  # the signed heads moved too


def test_an_inserted_event_is_found(engine: Engine) -> None:
    """A forged event slipped in after seq 4, correctly linked to it, the rest renumbered."""
    _fill(engine)
    with engine.begin() as conn:
        for seq in range(10, 4, -1):
            conn.execute(update(audit_event).where(audit_event.c.seq == seq).values(seq=seq + 1))
        prev: str = conn.execute(select(audit_event.c.hash).where(audit_event.c.seq == 4)).scalar_one()
        forged = _events(1, patient="pat-1")[0]
        content = canonical_json(forged)
        row = {**columns(forged), "seq": 5, "content": content, "prev_hash": prev}
        conn.execute(insert(audit_event).values(**row, hash=link_hash(prev, content)))
    report = _verify(engine)
    assert _first(report) == ("inserted", 5)


def test_swapped_events_are_found(engine: Engine) -> None:
    ids = _fill(engine)
    with engine.begin() as conn:
        conn.execute(update(audit_event).where(audit_event.c.seq == 6).values(seq=-1))
        conn.execute(update(audit_event).where(audit_event.c.seq == 7).values(seq=6))
        conn.execute(update(audit_event).where(audit_event.c.seq == -1).values(seq=7))
    report = _verify(engine)
    assert _first(report) == ("reordered", 6)
    assert report.findings[0].id == ids[6]


def test_a_rewritten_chain_is_caught_by_the_signed_checkpoint(engine: Engine) -> None:
    """Edit seq 2 and recompute every later hash: the links hold, the checkpoints at 4 and 8 do not."""
    _fill(engine)
    with engine.begin() as conn:
        rows = conn.execute(select(audit_event).order_by(audit_event.c.seq)).all()
        prev = GENESIS
        for row in rows:
            content = bytes(row.content)
            if row.seq == 2:
                event = orjson.loads(content)
                event["outcome"] = "4"
                content = canonical_json(event)
            digest = link_hash(prev, content)
            values = {"content": content, "prev_hash": prev, "hash": digest}
            if row.seq == 2:
                values["outcome"] = "4"
            conn.execute(update(audit_event).where(audit_event.c.seq == row.seq).values(**values))
            prev = digest
    report = _verify(engine)
    assert [(f.kind, f.seq) for f in report.findings] == [("checkpoint", 4), ("checkpoint", 8)]


def test_a_forged_checkpoint_is_found(engine: Engine) -> None:
    _fill(engine)
    with engine.begin() as conn:
        token: str = conn.execute(
            select(audit_checkpoint.c.signature).where(audit_checkpoint.c.seq == 4)
        ).scalar_one()
        head, payload, signature = token.split(".")
        forged = f"{head}.{payload}.{signature[:-4]}AAAA"
        conn.execute(update(audit_checkpoint).where(audit_checkpoint.c.seq == 4).values(signature=forged))
    report = _verify(engine)
    assert _first(report) == ("checkpoint", 4)
    assert "forged" in report.findings[0].detail


def test_a_substituted_audit_key_is_not_trusted(engine: Engine) -> None:
    """Replacing the stored public key (to re-sign a rewritten chain) fails: the master key disagrees."""
    _fill(engine)
    from joserfc.jwk import ECKey

    other = ECKey.generate_key("P-256", private=True)
    with engine.begin() as conn:
        kid: str = conn.execute(select(audit_key.c.kid)).scalar_one()
        public = {**other.as_dict(private=False), "kid": kid, "alg": "ES256", "use": "sig"}
        conn.execute(update(audit_key).values(public_jwk=public))
    report = _verify(engine)
    assert _first(report) == ("checkpoint", 4)
    assert "not Socle's" in report.findings[0].detail


def test_truncating_the_end_is_found_when_a_checkpoint_covered_it(engine: Engine) -> None:
    _fill(engine)
    with engine.begin() as conn:
        conn.execute(delete(audit_event).where(audit_event.c.seq >= 7))
    report = _verify(engine)
    assert [(f.kind, f.seq) for f in report.findings] == [("checkpoint", 8)]


def test_checkpoint_on_demand(engine: Engine) -> None:
    _fill(engine, 5)
    with engine.begin() as conn:
        assert chain.checkpoint(conn, SETTINGS) is not None
        assert chain.checkpoint(conn, SETTINGS) is None  # already signed at this head
    report = _verify(engine)
    assert report.ok and report.last_checkpoint == 5


def test_concurrent_appends_stay_one_chain(engine: Engine) -> None:
    """Writers racing on both backends never share a seq nor fork the chain (advisory lock / SQLite)."""
    errors: list[BaseException] = []

    store = Store(engine)  # write transactions as the API opens them (BEGIN IMMEDIATE on SQLite)

    def worker() -> None:
        try:
            for event in _events(8):
                with store.write() as conn:
                    chain.append(conn, SETTINGS, [event])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(audit_event)).scalar_one() == 32
    report = _verify(engine)
    assert report.ok, report.findings


@pytest.mark.parametrize("n", [1, 3])
def test_one_event_per_patient(n: int) -> None:
    touched = [Touched(f"Observation/o{i}", f"pat-{i}", "R") for i in range(n)]
    touched.append(Touched("Practitioner/p1", None, "R"))
    events = build_events(
        Access("search-type", "E", touched, query="GET Observation"), SYSTEM_PRINCIPAL, site="x", now=1
    )
    assert len(events) == n + 1
    assert sorted(columns(e)["compartment"] or "" for e in events) == sorted(
        ["", *(f"pat-{i}" for i in range(n))]
    )
