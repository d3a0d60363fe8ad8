"""`_summary` / `_elements` projections (R4 §3.1.1.5.8-9): exact output shapes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from socle.fhir.errors import Invalid
from socle.fhir.summary import SUBSETTED, Projection, projection

META = {"versionId": "1", "lastUpdated": "2024-01-01T00:00:00Z"}
TAGGED = {**META, "tag": [SUBSETTED]}


def patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "p1",
        "meta": dict(META),
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'},
        "identifier": [{"system": "urn:s", "value": "1"}],
        "active": True,
        "name": [{"family": "Martin", "given": ["Hélène"]}],
        "gender": "female",
        "birthDate": "1980-01-01",
        "_birthDate": {"extension": [{"url": "urn:x", "valueString": "approx"}]},
        "maritalStatus": {"text": "married"},
        "contact": [{"name": {"family": "Contact"}}],
        "communication": [{"language": {"text": "fr"}}],
    }


def observation() -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "o1",
        "meta": dict(META),
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">o</div>'},
        "status": "final",
        "code": {"text": "bp"},
        "subject": {"reference": "Patient/p1"},
        "note": [{"text": "not summary"}],
        "valueQuantity": {"value": 1, "unit": "mg"},
        "referenceRange": [{"text": "normal"}],
        "component": [
            {"code": {"text": "sys"}, "valueQuantity": {"value": 120}, "interpretation": [{"text": "N"}]}
        ],
    }


def test_summary_true_keeps_summary_elements_and_walks_backbones() -> None:
    assert Projection("true").apply(patient()) == {
        "resourceType": "Patient",
        "id": "p1",
        "meta": TAGGED,
        "identifier": [{"system": "urn:s", "value": "1"}],
        "active": True,
        "name": [{"family": "Martin", "given": ["Hélène"]}],
        "gender": "female",
        "birthDate": "1980-01-01",
        "_birthDate": {"extension": [{"url": "urn:x", "valueString": "approx"}]},
    }
    assert Projection("true").apply(observation()) == {
        "resourceType": "Observation",
        "id": "o1",
        "meta": TAGGED,
        "status": "final",
        "code": {"text": "bp"},
        "subject": {"reference": "Patient/p1"},
        "valueQuantity": {"value": 1, "unit": "mg"},
        # component is summary, its interpretation is not; referenceRange is not summary at all
        "component": [{"code": {"text": "sys"}, "valueQuantity": {"value": 120}}],
    }


def test_summary_text_and_data() -> None:
    obs = observation()
    assert Projection("text").apply(obs) == {
        "resourceType": "Observation",
        "id": "o1",
        "meta": TAGGED,
        "text": obs["text"],
        "status": "final",
        "code": {"text": "bp"},
    }
    data = Projection("data").apply(obs)
    expected = {k: v for k, v in observation().items() if k != "text"}
    expected["meta"] = TAGGED
    assert data == expected


def test_elements_keep_mandatory_id_meta_and_choices() -> None:
    assert Projection(elements=frozenset({"birthDate"})).apply(patient()) == {
        "resourceType": "Patient",
        "id": "p1",
        "meta": TAGGED,
        "birthDate": "1980-01-01",
        "_birthDate": {"extension": [{"url": "urn:x", "valueString": "approx"}]},
    }
    # status and code are mandatory (min 1) in Observation; `value` names the value[x] choice
    assert Projection(elements=frozenset({"value", "Patient.name", "nope"})).apply(observation()) == {
        "resourceType": "Observation",
        "id": "o1",
        "meta": TAGGED,
        "status": "final",
        "code": {"text": "bp"},
        "valueQuantity": {"value": 1, "unit": "mg"},
    }


def test_projection_does_not_modify_the_input_and_tags_once() -> None:
    original = patient()
    original["meta"]["tag"] = [{"system": "urn:t", "code": "keep"}, dict(SUBSETTED)]
    before = copy.deepcopy(original)
    result = Projection("true").apply(original)
    assert original == before
    assert result["meta"]["tag"] == [{"system": "urn:t", "code": "keep"}, SUBSETTED]


def test_projection_parameters() -> None:
    assert projection(None, None) is None
    assert projection("false", None) is None
    assert projection("count", None) is None
    assert projection(None, " , ") is None
    assert projection("true", "name") == Projection("true")
    assert projection(None, "name, gender") == Projection(elements=frozenset({"name", "gender"}))
    assert projection("false", "name") == Projection(elements=frozenset({"name"}))
    with pytest.raises(Invalid):
        projection("yes", None)
