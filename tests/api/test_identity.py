"""Identity operations over HTTP on both backends: $match, $merge/$unmerge, $ins-lookup, $identity-status."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from socle.referentials.identity.nir import make_nir
from socle.referentials.identity.population import generate_people
from socle.referentials.identity.registry import load_registry
from socle.referentials.identity.registry_schema import ins_lookup_log
from socle.referentials.identity.traits import PartialDate, Traits
from tests.referentials.identity._fixtures import store_patients

GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"
NIR = make_nir(1, 1950, 3, "75114", 17)
PEOPLE = {
    "dupont": Traits("Dupont", ("Jean", "Paul"), PartialDate(1950, 3, 2), "male", "75114", ins=NIR),
    "homonym": Traits("Dupont", ("Jean", "Marc"), PartialDate(1950, 3, 2), "male", "13201"),
    "lefevre": Traits("Lefèvre", ("Anne",), PartialDate(1975, 3, 8), "female", "69381", used_name="Martin"),
}


def params(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(parts)}


def patient(family: str, given: list[str], birth: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"use": "official", "family": family, "given": given}],
    }
    if birth:
        body["birthDate"] = birth
    body.update(extra)
    return body


def match(client: TestClient, resource: dict[str, Any], *more: dict[str, Any]) -> Any:
    return client.post("/fhir/Patient/$match", json=params({"name": "resource", "resource": resource}, *more))


def issue(response: Any) -> dict[str, Any]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return dict(body["issue"][0])


def test_match_bundle_scores_and_grades(client: TestClient, engine: Engine) -> None:
    store_patients(engine, PEOPLE)
    birthplace = {
        "url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
        "valueAddress": {
            "extension": [
                {
                    "url": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code",
                    "valueCoding": {"code": "75114"},
                }
            ]
        },
    }
    exact = patient("DUPONT", ["Jean", "Paul"], "1950-03-02", gender="male", extension=[birthplace])
    response = match(client, exact)
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "searchset" and bundle["total"] == len(bundle["entry"])
    first = bundle["entry"][0]
    assert first["resource"]["id"] == "dupont" and first["fullUrl"].endswith("/Patient/dupont")
    assert first["search"]["mode"] == "match" and 0.999 <= first["search"]["score"] <= 1
    assert first["search"]["extension"] == [{"url": GRADE, "valueCode": "certain"}]
    # Homonyms without a birthplace: both probable, neither certain; onlyCertainMatches returns none.
    vague = patient("Dupont", ["Jean"], "1950-03-02", gender="male")
    grades = {
        e["resource"]["id"]: e["search"]["extension"][0]["valueCode"]
        for e in match(client, vague).json()["entry"]
    }
    assert grades == {"dupont": "probable", "homonym": "probable"}
    only = match(client, vague, {"name": "onlyCertainMatches", "valueBoolean": True}).json()
    assert only["total"] == 0
    assert match(client, vague, {"name": "count", "valueInteger": 1}).json()["total"] == 1
    # The married name, and the INS alone.
    married = match(client, patient("MARTIN", ["Anne"], "1975-03-08")).json()["entry"]
    assert married[0]["resource"]["id"] == "lefevre"
    by_ins = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": NIR}],
    }
    assert match(client, by_ins).json()["entry"][0]["resource"]["id"] == "dupont"


def test_match_bad_input_names_the_field(client: TestClient) -> None:
    response = client.post("/fhir/Patient/$match", json={"resourceType": "Patient"})
    assert response.status_code == 400 and issue(response)["expression"] == ["Parameters"]
    response = client.post("/fhir/Patient/$match", json=params())
    assert response.status_code == 400 and issue(response)["expression"] == ["resource"]
    bad_nir = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "185077505612399"}],
    }
    response = match(client, bad_nir)
    assert response.status_code == 400
    assert (
        issue(response)["expression"] == ["Patient.identifier[0].value"]
        and "key" in issue(response)["diagnostics"]
    )
    response = match(client, patient("Dupont", ["Jean"], "1950-02-30"))
    assert response.status_code == 400 and issue(response)["expression"] == ["Patient.birthDate"]
    response = match(client, patient("Dupont", ["Jean"]))
    assert response.status_code == 400 and issue(response)["expression"] == ["Patient.birthDate"]
    response = match(client, patient("Dupont", ["Jean"], "1950"), {"name": "count", "valueInteger": 0})
    assert response.status_code == 400 and issue(response)["expression"] == ["count"]
    assert client.get("/fhir/Patient/$match").status_code == 405


def test_ins_lookup_outcomes_and_every_call_recorded(client: TestClient, engine: Engine) -> None:
    people = list(generate_people(200, 41))
    with engine.begin() as conn:
        load_registry(conn, people)
    person = next(p for p in people if p.traits.birth_date and p.traits.birth_date.complete)
    t = person.traits
    assert t.birth_name and t.birth_date and t.sex
    traits = [
        {"name": "family", "valueString": t.birth_name.lower()},
        {"name": "given", "valueString": t.given_names[0]},
        {"name": "birthdate", "valueDate": t.birth_date.to_fhir()},
        {"name": "gender", "valueCode": t.sex},
    ]
    response = client.post("/fhir/Patient/$ins-lookup", json=params(*traits))
    assert response.status_code == 200, response.text
    out = {p["name"]: p for p in response.json()["parameter"]}
    assert out["outcome"]["valueCoding"]["code"] == "00"
    assert out["ins"]["valueIdentifier"]["value"] == t.ins
    assert out["patient"]["resource"]["birthDate"] == t.birth_date.to_fhir()
    assert out["lookup-id"]["valueString"].isdigit()
    none = client.post(
        "/fhir/Patient/$ins-lookup",
        json=params(*traits[:3], {"name": "gender", "valueCode": "male" if t.sex == "female" else "female"}),
    )
    assert {p["name"]: p for p in none.json()["parameter"]}["outcome"]["valueCoding"]["code"] == "01"
    vitale = client.post(
        "/fhir/Patient/$ins-lookup",
        json=params(
            {"name": "vitale-nir", "valueString": person.vitale_nir},
            {"name": "birthdate", "valueDate": t.birth_date.to_fhir()},
        ),
    )
    assert {p["name"]: p for p in vitale.json()["parameter"]}["outcome"]["valueCoding"]["code"] == "00"
    # Malformed calls: 400 naming the parameter, and recorded too.
    cases = [
        (params(*traits[:2], {"name": "birthdate", "valueDate": "1990-02-30"}, traits[3]), "birthdate"),
        (params(*traits[1:]), "family"),
        (params(traits[0], *traits[2:]), "given"),
        (params(*traits[:3], {"name": "gender", "valueCode": "unknown"}), "gender"),
        (params(*traits, {"name": "birthplace", "valueString": "7511"}), "birthplace"),
        (params({"name": "vitale-nir", "valueString": "185077505612399"}, traits[2]), "vitale-nir"),
    ]
    for body, field in cases:
        response = client.post("/fhir/Patient/$ins-lookup", json=body)
        assert response.status_code == 400, (field, response.text)
        assert issue(response)["expression"] == [field]
    with engine.connect() as conn:
        outcomes = [
            r[0] for r in conn.execute(select(ins_lookup_log.c.outcome).order_by(ins_lookup_log.c.lookup_id))
        ]
    assert outcomes == ["00", "01", "00"] + ["invalid"] * len(cases)


def test_merge_and_unmerge_over_http(client: TestClient, engine: Engine) -> None:
    store_patients(engine, PEOPLE)
    store_patients(engine, {"dup": Traits("Dupond", ("Jean",), PartialDate(1950, 3, 2), "male")})
    created = client.post(
        "/fhir/Observation",
        json={
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "subject": {"reference": "Patient/dup"},
        },
    )
    assert created.status_code == 201
    obs = created.json()["id"]
    body = params(
        {"name": "source-patient", "valueReference": {"reference": "Patient/dup"}},
        {
            "name": "target-patient-identifier",
            "valueIdentifier": {"system": "urn:oid:1.2.250.1.213.1.4.8", "value": NIR},
        },
        {"name": "preview", "valueBoolean": True},
    )
    preview = client.post("/fhir/Patient/$merge", json=body)
    assert preview.status_code == 200, preview.text
    assert client.get(f"/fhir/Observation/{obs}").json()["subject"]["reference"] == "Patient/dup"
    body["parameter"] = body["parameter"][:2]
    merged = client.post("/fhir/Patient/$merge", json=body)
    assert merged.status_code == 200, merged.text
    out = {p["name"]: p for p in merged.json()["parameter"]}
    assert out["result"]["resource"]["id"] == "dupont" and out["input"]["resource"] == body
    assert "1 reference" in out["outcome"]["resource"]["issue"][0]["diagnostics"]
    assert client.get(f"/fhir/Observation/{obs}").json()["subject"]["reference"] == "Patient/dupont"
    assert client.get("/fhir/Patient/dup").json()["active"] is False
    everything = client.get("/fhir/Observation", params={"subject": "Patient/dupont"}).json()
    assert [e["resource"]["id"] for e in everything.get("entry", [])] == [obs]
    undone = client.post(
        "/fhir/Patient/$unmerge",
        json=params({"name": "merge-id", "valueString": out["merge-id"]["valueString"]}),
    )
    assert undone.status_code == 200, undone.text
    assert client.get(f"/fhir/Observation/{obs}").json()["subject"]["reference"] == "Patient/dup"
    assert "active" not in client.get("/fhir/Patient/dup").json()
    bad = client.post(
        "/fhir/Patient/$merge",
        json=params({"name": "source-patient", "valueReference": {"reference": "dup"}}),
    )
    assert bad.status_code == 400 and issue(bad)["expression"] == ["source-patient"]
    missing = client.post(
        "/fhir/Patient/$merge",
        json=params(
            {"name": "source-patient", "valueReference": {"reference": "Patient/nobody"}},
            {"name": "target-patient", "valueReference": {"reference": "Patient/dupont"}},
        ),
    )
    assert missing.status_code == 404


def test_identity_status_over_http(client: TestClient, engine: Engine) -> None:
    store_patients(engine, {"p": PEOPLE["lefevre"]})
    checked = client.post(
        "/fhir/Patient/p/$identity-status",
        json=params(
            {"name": "event", "valueCode": "document-checked"},
            {"name": "document", "valueCode": "PA"},
            {"name": "date", "valueDate": "2025-04-05"},
        ),
    )
    assert checked.status_code == 200, checked.text
    out = {p["name"]: p for p in checked.json()["parameter"]}
    assert (out["before"]["valueCode"], out["after"]["valueCode"]) == ("PROV", "VALI")
    assert client.get("/fhir/Patient/p").json()["meta"]["versionId"] == "2"
    doubt = client.post(
        "/fhir/Patient/p/$identity-status", json=params({"name": "event", "valueCode": "doubt"})
    )
    assert {p["name"]: p for p in doubt.json()["parameter"]}["after"]["valueCode"] == "PROV"
    refused = client.post(
        "/fhir/Patient/p/$identity-status",
        json=params({"name": "event", "valueCode": "insi-retrieved"}, {"name": "lookup", "valueString": "1"}),
    )
    assert refused.status_code == 422 and "DOUT" in issue(refused)["diagnostics"]
    unknown = client.post(
        "/fhir/Patient/p/$identity-status", json=params({"name": "event", "valueCode": "promote"})
    )
    assert unknown.status_code == 400 and issue(unknown)["expression"] == ["event"]
    bad_date = client.post(
        "/fhir/Patient/p/$identity-status",
        json=params({"name": "event", "valueCode": "doubt"}, {"name": "date", "valueDate": "2025-13-01"}),
    )
    assert bad_date.status_code == 400 and issue(bad_date)["expression"] == ["date"]
    assert (
        client.post(
            "/fhir/Patient/nobody/$identity-status", json=params({"name": "event", "valueCode": "doubt"})
        ).status_code
        == 404
    )


def test_capability_statement_lists_the_identity_operations(client: TestClient) -> None:
    rest = client.get("/fhir/metadata").json()["rest"][0]
    patient_ops = {
        op["name"]: op["definition"]
        for r in rest["resource"]
        if r["type"] == "Patient"
        for op in r["operation"]
    }
    assert patient_ops["match"] == "http://hl7.org/fhir/OperationDefinition/Patient-match"
    assert patient_ops["merge"] == "http://hl7.org/fhir/OperationDefinition/Patient-merge"
    assert {"unmerge", "ins-lookup", "identity-status"} <= set(patient_ops)
