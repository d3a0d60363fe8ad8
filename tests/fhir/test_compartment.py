from __future__ import annotations

from socle.fhir.compartment import compartment_params, patient_compartment


def test_definition_is_the_official_patient_compartment() -> None:
    params = compartment_params()
    assert params["Observation"] == ("subject", "performer")
    assert params["Claim"] == ("patient", "payee")
    assert "Organization" not in params


def test_observation_subject() -> None:
    assert (
        patient_compartment({"resourceType": "Observation", "subject": {"reference": "Patient/123"}}) == "123"
    )


def test_first_parameter_in_definition_order_wins() -> None:
    observation = {
        "resourceType": "Observation",
        "performer": [{"reference": "Patient/performer"}],
        "subject": {"reference": "Patient/subject"},
    }
    assert patient_compartment(observation) == "subject"


def test_non_patient_references_are_skipped() -> None:
    observation = {
        "resourceType": "Observation",
        "subject": {"reference": "Group/g1"},
        "performer": [
            {"reference": "Practitioner/d1"},
            {"reference": "https://h.example/fhir/Patient/9/_history/2"},
        ],
    }
    assert patient_compartment(observation) == "9"


def test_encounter_claim_immunization() -> None:
    assert patient_compartment({"resourceType": "Encounter", "subject": {"reference": "Patient/e"}}) == "e"
    assert patient_compartment({"resourceType": "Claim", "patient": {"reference": "Patient/c"}}) == "c"
    claim_payee = {"resourceType": "Claim", "payee": {"party": {"reference": "Patient/payee"}}}
    assert patient_compartment(claim_payee) == "payee"
    assert patient_compartment({"resourceType": "Immunization", "patient": {"reference": "Patient/i"}}) == "i"


def test_patient_is_in_its_own_compartment() -> None:
    assert (
        patient_compartment(
            {"resourceType": "Patient", "id": "p1", "link": [{"other": {"reference": "Patient/p2"}}]}
        )
        == "p1"
    )
    assert patient_compartment({"resourceType": "Patient"}) is None


def test_outside_any_patient_compartment() -> None:
    assert patient_compartment({"resourceType": "Organization", "id": "o"}) is None
    assert (
        patient_compartment(
            {
                "resourceType": "Observation",
                "subject": {"reference": "urn:uuid:0b3c1f1e-0000-4000-8000-000000000000"},
            }
        )
        is None
    )
    assert (
        patient_compartment({"resourceType": "Observation", "subject": {"display": "no reference"}}) is None
    )
