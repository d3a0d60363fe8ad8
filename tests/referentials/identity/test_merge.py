"""$merge semantics (surviving target, links, references re-pointed) and unmerge restoring both."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from socle.fhir.errors import Invalid, NotFound, Unprocessable
from socle.referentials.identity import mpi
from socle.referentials.identity.merge import merge, unmerge
from socle.referentials.identity.nir import make_nir
from socle.referentials.identity.traits import PartialDate, Traits
from socle.store.access import SYSTEM
from socle.store.repository import Store
from tests.referentials.identity._fixtures import store_patients

NIR = make_nir(2, 1975, 3, "69381", 44)
GOOD = Traits("Lefèvre", ("Marie",), PartialDate(1975, 3, 8), "female", "69381", ins=NIR)
DUP = Traits("Lefevre", ("Marie",), PartialDate(1975, 8, 3), "female")


def setup(engine: Engine) -> Store:
    store_patients(engine, {"good": GOOD})
    store_patients(engine, {"dup": DUP})
    store = Store(engine)
    with store.write() as conn:
        store.create_many(
            conn,
            [
                {
                    "resourceType": "Encounter",
                    "id": "e1",
                    "status": "finished",
                    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                    "subject": {"reference": "Patient/dup"},
                },
                {
                    "resourceType": "Observation",
                    "id": "o1",
                    "status": "final",
                    "code": {"text": "weight"},
                    "subject": {"reference": "Patient/dup"},
                    "performer": [{"reference": "Patient/dup"}],
                    "encounter": {"reference": "Encounter/e1"},
                },
                {
                    "resourceType": "Observation",
                    "id": "o2",
                    "status": "final",
                    "code": {"text": "height"},
                    "subject": {"reference": "Patient/good"},
                },
            ],
        )
    return store


def test_merge_then_unmerge(engine: Engine) -> None:
    store = setup(engine)
    with store.write() as conn:
        result = merge(store, conn, SYSTEM, "dup", "good")
    assert result.merge_id is not None
    assert sorted((rt, id) for rt, id, _ in result.repointed) == [("Encounter", "e1"), ("Observation", "o1")]
    with store.read() as conn:
        source = store.get(conn, "Patient", "dup", SYSTEM).resource
        target = store.get(conn, "Patient", "good", SYSTEM).resource
        o1 = store.get(conn, "Observation", "o1", SYSTEM)
        assert source["active"] is False
        assert source["link"] == [{"other": {"reference": "Patient/good"}, "type": "replaced-by"}]
        assert {"other": {"reference": "Patient/dup"}, "type": "replaces"} in target["link"]
        assert o1.resource["subject"]["reference"] == "Patient/good"
        assert o1.resource["performer"][0]["reference"] == "Patient/good"
        assert o1.compartment == "good"  # the whole record is now in the survivor's compartment
        # The merged-away record is no longer a match candidate.
        ids = [s.key for s in mpi.match(conn, SYSTEM, DUP)]
        assert ids == [store.get(conn, "Patient", "good", SYSTEM).resource_key]
    with store.write() as conn:
        with pytest.raises(Unprocessable, match="already merged"):
            merge(store, conn, SYSTEM, "dup", "good")
    with store.write() as conn:
        undone = unmerge(store, conn, SYSTEM, source_id="dup")
    assert undone.merge_id == result.merge_id
    with store.read() as conn:
        source = store.get(conn, "Patient", "dup", SYSTEM)
        target = store.get(conn, "Patient", "good", SYSTEM)
        assert "link" not in source.resource and "active" not in source.resource
        assert "link" not in target.resource
        assert target.resource["identifier"][0]["value"] == NIR
        o1 = store.get(conn, "Observation", "o1", SYSTEM).resource
        assert (
            o1["subject"]["reference"] == "Patient/dup" and o1["performer"][0]["reference"] == "Patient/dup"
        )
        assert store.get(conn, "Observation", "o2", SYSTEM).resource["subject"]["reference"] == "Patient/good"
        assert source.version == 3 and target.version == 3  # versioned: create, merge, unmerge
    with store.write() as conn, pytest.raises(NotFound):
        unmerge(store, conn, SYSTEM, source_id="dup")


def test_source_identifiers_are_kept_on_the_target_with_an_old_ins(engine: Engine) -> None:
    store_patients(engine, {"a": DUP, "b": GOOD})
    store = Store(engine)
    with store.write() as conn:
        result = merge(store, conn, SYSTEM, "b", "a")
    ins = [i for i in result.target["identifier"] if i["value"] == NIR]
    assert ins and ins[0]["use"] == "old"


def test_preview_writes_nothing_and_bad_requests(engine: Engine) -> None:
    store = setup(engine)
    with store.write() as conn:
        preview = merge(store, conn, SYSTEM, "dup", "good", preview=True)
        assert preview.merge_id is None and len(preview.repointed) == 2
        assert store.get(conn, "Observation", "o1", SYSTEM).resource["subject"]["reference"] == "Patient/dup"
        with pytest.raises(Invalid):
            merge(store, conn, SYSTEM, "good", "good")
        with pytest.raises(NotFound):
            merge(store, conn, SYSTEM, "nobody", "good")
        with pytest.raises(Invalid, match="result-patient"):
            merge(store, conn, SYSTEM, "dup", "good", result_patient={"resourceType": "Patient", "id": "x"})
