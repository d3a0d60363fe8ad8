"""FR Core shapes of an INS identity on Patient, and traits read back from any Patient."""

from __future__ import annotations

from socle.fhir.validation import validate_resource
from socle.referentials.identity.profile import (
    BIRTH_LIST_GIVEN_NAME,
    BIRTH_PLACE,
    CS_IDENTIFIER_TYPE,
    CS_STATUS,
    IDENTITY_RELIABILITY,
    INSEE_CODE,
    OID_NIA,
    OID_NIR,
    PROFILE_INS,
    Reliability,
    ins_identifier,
    ins_of,
    patient_resource,
    read_reliability,
    traits_from_patient,
    write_reliability,
)
from socle.referentials.identity.traits import PartialDate, Traits

TRAITS = Traits(
    birth_name="DE LA FONTAINE",
    given_names=("Marie-Hélène", "Jeanne"),
    birth_date=PartialDate(1961, 5, 30),
    sex="female",
    birthplace="2A004",
    used_name="Martin",
    ins="261052A00412345",
)


def test_qualified_identity_has_the_fr_core_ins_shape() -> None:
    reliability = Reliability("QUAL", method="INSI", collection_date="2025-01-02", validation_mode="CN")
    patient = patient_resource(
        TRAITS, reliability=reliability, id="p1", ins_system=OID_NIR, birthplace_name="Ajaccio"
    )
    validate_resource(patient, resource_type="Patient")
    assert PROFILE_INS in patient["meta"]["profile"]
    ident = patient["identifier"][0]
    assert ident["system"] == "urn:oid:1.2.250.1.213.1.4.8" and ident["use"] == "official"
    assert ident["type"]["coding"][0] == {"system": CS_IDENTIFIER_TYPE, "code": "INS-NIR"}
    official, usual = patient["name"]
    assert official["use"] == "official" and official["family"] == "DE LA FONTAINE"
    assert official["given"] == ["Marie-Hélène"]  # exactly one given: the first birth given name
    assert official["extension"] == [{"url": BIRTH_LIST_GIVEN_NAME, "valueString": "Marie-Hélène Jeanne"}]
    assert usual == {"use": "usual", "family": "Martin", "given": ["Marie-Hélène"]}
    birthplace = next(e for e in patient["extension"] if e["url"] == BIRTH_PLACE)
    assert birthplace["valueAddress"]["extension"][0]["url"] == INSEE_CODE
    assert birthplace["valueAddress"]["extension"][0]["valueCoding"]["code"] == "2A004"
    status = next(e for e in patient["extension"] if e["url"] == IDENTITY_RELIABILITY)
    assert {"url": "identityStatus", "valueCoding": {"system": CS_STATUS, "code": "QUAL"}} in status[
        "extension"
    ]
    assert patient["gender"] == "female" and patient["birthDate"] == "1961-05-30"


def test_nia_has_use_temp_and_provisional_identities_carry_no_ins() -> None:
    assert ins_identifier("261052A00412345", OID_NIA)["use"] == "temp"
    provisional = patient_resource(TRAITS, reliability=Reliability("PROV"))
    assert "identifier" not in provisional
    assert PROFILE_INS not in provisional["meta"]["profile"]


def test_traits_round_trip() -> None:
    patient = patient_resource(TRAITS, reliability=Reliability("RECUP", method="INSI"), ins_system=OID_NIR)
    assert traits_from_patient(patient) == TRAITS


def test_traits_from_a_plain_patient_and_a_maiden_name() -> None:
    plain = {
        "resourceType": "Patient",
        "name": [{"use": "official", "family": "Dupont", "given": ["Jean", "Paul"]}],
        "gender": "male",
        "birthDate": "1970",
    }
    traits = traits_from_patient(plain)
    assert (traits.birth_name, traits.given_names, traits.birth_date) == (
        "Dupont",
        ("Jean", "Paul"),
        PartialDate(1970),
    )
    married = {
        "resourceType": "Patient",
        "name": [
            {"use": "official", "family": "Martin", "given": ["Anne"]},
            {"use": "maiden", "family": "Durand"},
        ],
    }
    traits = traits_from_patient(married)
    assert (traits.birth_name, traits.used_name) == ("Durand", "Martin")


def test_reliability_round_trip_and_old_ins_is_not_current() -> None:
    reliability = Reliability("VALI", comments=("HOMD",), validation_mode="PA", validation_date="2024-02-03")
    patient = write_reliability(
        {"resourceType": "Patient", "extension": [{"url": "x", "valueString": "y"}]}, reliability
    )
    assert read_reliability(patient) == reliability
    assert {"url": "x", "valueString": "y"} in patient["extension"]
    assert read_reliability({"resourceType": "Patient"}).status == "PROV"
    old = {"resourceType": "Patient", "identifier": [{**ins_identifier("185077505612323"), "use": "old"}]}
    assert ins_of(old) == [] and len(ins_of(old, include_old=True)) == 1
