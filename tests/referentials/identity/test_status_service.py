"""Status changes on stored Patients: INS retrieved from a lookup, document checks, audit rows."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from socle.fhir.errors import Unprocessable
from socle.referentials.identity.population import generate_people, ins_style
from socle.referentials.identity.profile import read_reliability, traits_from_patient
from socle.referentials.identity.registry import load_registry, lookup_traits, record_lookup
from socle.referentials.identity.registry_schema import identity_status_log
from socle.referentials.identity.status import IdentityEvent
from socle.referentials.identity.status_service import change_status
from socle.referentials.identity.traits import Traits
from socle.store.access import SYSTEM
from socle.store.repository import Store
from tests.referentials.identity._fixtures import store_patients


def test_retrieved_then_qualified_then_document_false(engine: Engine) -> None:
    person = next(p for p in generate_people(50, 31) if p.kind == "NIR" and p.traits.birth_date.complete)  # type: ignore[union-attr]
    t = person.traits
    assert t.birth_name and t.birth_date and t.sex
    typed = Traits(t.birth_name.upper(), t.given_names[:1], t.birth_date, t.sex)  # what the desk typed
    store_patients(engine, {"p": typed})
    store = Store(engine)
    with store.write() as conn:
        load_registry(conn, [person])
        result = lookup_traits(
            conn,
            birth_name=typed.birth_name or "",
            given_names=typed.given_names,
            sex=t.sex,
            birth_date=t.birth_date,
        )
        lookup = record_lookup(
            conn,
            principal="dr",
            mode="traits",
            criteria={},
            outcome=result.outcome,
            matches=result.matches,
            matricule=result.entry.matricule if result.entry else None,
        )
        recup = change_status(
            store,
            conn,
            SYSTEM,
            "p",
            IdentityEvent("insi-retrieved", lookup=str(lookup), date="2025-01-02"),
            principal="dr",
        )
    body = recup.version.resource
    assert (recup.before.status, recup.after.status) == ("PROV", "RECUP")
    assert traits_from_patient(body).ins == t.ins
    assert traits_from_patient(body).given_names == tuple(ins_style(g) for g in t.given_names)
    assert traits_from_patient(body).birthplace == t.birthplace  # strict traits from INSi
    with store.write() as conn:
        qual = change_status(store, conn, SYSTEM, "p", IdentityEvent("document-checked", document="CN"))
        assert qual.after.status == "QUAL"
        assert (
            "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins"
            in qual.version.resource["meta"]["profile"]
        )
        down = change_status(store, conn, SYSTEM, "p", IdentityEvent("document-false", reason="usurpation"))
        assert (
            down.after.status == "RECUP" and read_reliability(down.version.resource).validation_mode is None
        )
        rows = conn.execute(select(identity_status_log).order_by(identity_status_log.c.event_id)).all()
    assert [(r.event, r.status_before, r.status_after, r.version_after) for r in rows] == [
        ("insi-retrieved", "PROV", "RECUP", 2),
        ("document-checked", "RECUP", "QUAL", 3),
        ("document-false", "QUAL", "RECUP", 4),
    ]
    assert rows[0].principal == "dr" and rows[0].evidence["lookup"] == str(lookup)
    assert rows[2].evidence == {"reason": "usurpation"}


def test_a_lookup_that_did_not_answer_00_is_no_evidence(engine: Engine) -> None:
    store_patients(engine, {"p": Traits("A", ("B",))})
    store = Store(engine)
    with store.write() as conn:
        lookup = record_lookup(conn, principal="x", mode="traits", criteria={}, outcome="02", matches=2)
        with pytest.raises(Unprocessable, match="did not return one identity"):
            change_status(store, conn, SYSTEM, "p", IdentityEvent("insi-retrieved", lookup=str(lookup)))
