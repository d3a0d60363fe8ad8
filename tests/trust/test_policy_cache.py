"""The per-process cache of a professional's relationships (both backends): served while the
database's policy stamp is unchanged, dropped by any process's write of what it reads, by a Consent
period starting or ending, never filled from a transaction's uncommitted writes; and reads done
under a break-glass grant are audited as such."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from socle.api.http import FhirEndpoint
from socle.store import policy_stamp
from socle.store.repository import Store
from socle.trust.policy import relations
from tests.trust.policy_world import (
    SYSTEM,
    actor,
    call,
    citizen,
    consent,
    emergency,
    endpoint,
    ids,
    load,
    professional,
    second_engine,
    world,
)


@pytest.fixture
def two(engine: Engine) -> Iterator[tuple[FhirEndpoint, FhirEndpoint]]:
    """Two app instances with their own engines (as two `socle serve` workers) on one database."""
    other = second_engine(engine)
    first = endpoint(engine)
    load(first, world())
    yield first, endpoint(other)
    other.dispose()


def docs(ep: FhirEndpoint, who: Any, patient: str) -> set[str]:
    status, bundle = call(ep, who, "GET", f"DocumentReference?subject=Patient/{patient}&_count=100")
    assert status == 200, bundle
    return ids(bundle)


def test_choices_written_by_another_instance_apply_on_the_next_request(
    two: tuple[FhirEndpoint, FhirEndpoint],
) -> None:
    writer, reader = two
    gp, stranger = professional("gp"), professional("stranger")
    assert docs(reader, gp, "alice")  # cached in the reader now
    assert docs(reader, stranger, "carol") == set()
    block = consent("block-gp", "alice", {"type": "deny", "actor": actor("gp")})
    assert call(writer, citizen("alice"), "PUT", "Consent/block-gp", block)[0] == 201
    assert docs(reader, gp, "alice") == set()
    block["status"] = "inactive"
    assert call(writer, citizen("alice"), "PUT", "Consent/block-gp", block)[0] == 200
    assert docs(reader, gp, "alice")
    grant = consent("carol-grants", "carol", {"type": "permit", "actor": actor("stranger")})
    assert call(writer, citizen("carol"), "PUT", "Consent/carol-grants", grant)[0] == 201
    assert docs(reader, stranger, "carol") == {"DocumentReference/c-consult"}
    assert call(writer, SYSTEM, "DELETE", "Consent/carol-grants")[0] in (200, 204)
    assert docs(reader, stranger, "carol") == set()


def test_care_team_and_gp_changes_apply_on_the_next_request(two: tuple[FhirEndpoint, FhirEndpoint]) -> None:
    writer, reader = two
    nurse, gp = professional("nurse", "60"), professional("gp")
    assert call(reader, nurse, "GET", "Observation/c-weight")[0] == 404
    team = {
        "resourceType": "CareTeam",
        "id": "team-carol",
        "status": "active",
        "subject": {"reference": "Patient/carol"},
        "participant": [{"member": {"reference": "Practitioner/nurse"}}],
    }
    assert call(writer, SYSTEM, "PUT", "CareTeam/team-carol", team)[0] == 201
    assert call(reader, nurse, "GET", "Observation/c-weight")[0] == 200
    # alice's GP link goes through a PractitionerRole: re-pointing the role removes it
    assert docs(reader, gp, "alice")
    role = {
        "resourceType": "PractitionerRole",
        "id": "gp-role",
        "practitioner": {"reference": "Practitioner/er"},
    }
    assert call(writer, SYSTEM, "PUT", "PractitionerRole/gp-role", role)[0] == 200
    assert docs(reader, gp, "alice") == set()


def test_the_cache_is_used_until_a_relevant_write(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    ep = endpoint(engine)
    load(ep, world())
    lookups: list[str] = []
    real = relations.relations_of

    def counted(conn: Any, practitioner: str, now: datetime) -> relations.Relations:
        lookups.append(practitioner)
        return real(conn, practitioner, now)

    monkeypatch.setattr(relations, "relations_of", counted)
    gp = professional("gp")
    first = docs(ep, gp, "alice")
    assert docs(ep, gp, "alice") == first and lookups == ["Practitioner/gp"]
    # a write the relationships do not read keeps the entry
    assert (
        call(ep, SYSTEM, "PUT", "Medication/med-2", {"resourceType": "Medication", "id": "med-2"})[0] == 201
    )
    assert docs(ep, gp, "alice") == first and len(lookups) == 1
    # a Patient write bumps the stamp: looked up again
    status, bob = call(ep, SYSTEM, "GET", "Patient/bob")
    assert call(ep, SYSTEM, "PUT", "Patient/bob", bob)[0] == 200
    assert docs(ep, gp, "alice") == first and len(lookups) == 2


def test_a_grant_period_ending_expires_the_entry(engine: Engine) -> None:
    ep = endpoint(engine)
    load(ep, world())
    now = datetime.now(UTC)
    end = (now + timedelta(hours=1)).isoformat(timespec="seconds")
    provision = {
        "type": "permit",
        "actor": actor("er"),
        "purpose": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "BTG", "display": "coma"}
        ],
        "period": {"start": now.isoformat(timespec="seconds"), "end": end},
    }
    assert call(ep, SYSTEM, "PUT", "Consent/btg", consent("btg", "carol", provision))[0] == 201
    store = Store(engine)
    with store.read() as conn:
        assert relations.cached_relations(conn, "Practitioner/er", now).emergency == {"carol": "coma"}
        later = now + timedelta(hours=2)
        assert relations.cached_relations(conn, "Practitioner/er", later).emergency == {}


def test_uncommitted_writes_are_not_cached(engine: Engine) -> None:
    ep = endpoint(engine)
    load(ep, world())
    store = Store(engine)
    now = datetime.now(UTC)
    grant = consent("carol-grants", "carol", {"type": "permit", "actor": actor("dentist")})
    with store.read() as conn:
        before = policy_stamp.generation(conn)
    with pytest.raises(RuntimeError), store.write() as conn:
        store.create(conn, grant)
        assert policy_stamp.bumped_here(conn)
        assert relations.cached_relations(conn, "Practitioner/dentist", now).granted == {"carol"}
        raise RuntimeError("roll back")
    with store.read() as conn:
        assert policy_stamp.generation(conn) == before  # bumped at commit only
        assert relations.cached_relations(conn, "Practitioner/dentist", now).granted == set()
    with store.write() as conn:
        store.create(conn, grant)
    with store.read() as conn:
        assert policy_stamp.generation(conn) == (before or 0) + 1
        assert relations.cached_relations(conn, "Practitioner/dentist", now).granted == {"carol"}


def test_reads_under_break_glass_are_audited_with_the_reason(engine: Engine) -> None:
    ep = endpoint(engine)
    load(ep, world())
    er = emergency("er")
    reason = {
        "resourceType": "Parameters",
        "parameter": [{"name": "reason", "valueString": "arrêt cardiaque"}],
    }
    assert call(ep, er, "POST", "Patient/alice/$break-glass", reason)[0] == 200
    assert call(ep, er, "GET", "DocumentReference/a-consult")[0] == 200
    assert docs(ep, er, "alice")
    assert call(ep, professional("gp"), "GET", "Observation/b-weight")[0] == 200
    status, trail = call(ep, SYSTEM, "GET", "AuditEvent?_count=500&agent=Practitioner/er")
    assert status == 200
    reads = [
        e["resource"]
        for e in trail["entry"]
        if e["resource"]["subtype"][0]["code"] in ("read", "search-type")
    ]
    assert len(reads) == 2
    for event in reads:
        (purpose,) = event["purposeOfEvent"]
        assert {c["code"] for c in purpose["coding"]} == {"ETREAT", "BTG"}
        assert purpose["text"] == "arrêt cardiaque"
    # an access justified by a care relationship keeps its ordinary purpose
    status, gp_trail = call(ep, SYSTEM, "GET", "AuditEvent?_count=500&agent=Practitioner/gp")
    (gp_read,) = [e["resource"] for e in gp_trail["entry"]]
    assert [c["code"] for c in gp_read["purposeOfEvent"][0]["coding"]] == ["TREAT"]
