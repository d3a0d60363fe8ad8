"""Property: random principals × random patient choices × random queries over every read path give
exactly what a naive reference evaluator admits after the fact: zero leaks, zero wrongful denials.

The reference below re-states the rules in plain Python over whole resources (no SQL): it takes the
system's answer to the same query and keeps what the principal may see. Read paths: read, vread,
type search, _include, _revinclude, chain, _has, type and system history, compartment search,
$everything, batch GET entries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from socle.fhir.compartment import patient_compartment
from socle.fhir.package import data_dir
from socle.trust.auth.scopes import ScopeSet
from socle.trust.principal import Principal
from tests.trust.policy_world import (
    SYSTEM,
    actor,
    call,
    citizen,
    consent,
    emergency,
    endpoint,
    load,
    professional,
    second_engine,
    world,
)

MATRIX = orjson.loads((data_dir() / "trust" / "access-matrix.json").read_bytes())
PUBLIC = {
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "HealthcareService",
    "Endpoint",
    "Medication",
    "Substance",
    "ValueSet",
    "CodeSystem",
    "ConceptMap",
    "NamingSystem",
    "SearchParameter",
    "StructureDefinition",
    "OperationDefinition",
    "CapabilityStatement",
    "CompartmentDefinition",
    "Questionnaire",
    "PlanDefinition",
    "ActivityDefinition",
    "Library",
}
PRIVATE = {"AuditEvent", "Consent"}
NOW = datetime.now(UTC)


def _iso(d: datetime) -> str:
    return d.isoformat(timespec="seconds").replace("+00:00", "Z")


# -- the random patient choices: each is one Consent, active or not --------------------------------

BTG = [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "BTG"}]
CHOICES: dict[str, tuple[str, dict[str, Any]]] = {
    "mask-a-rx": (
        "alice",
        {
            "type": "deny",
            "data": [{"meaning": "instance", "reference": {"reference": "DocumentReference/a-rx"}}],
        },
    ),
    "mask-a-summary-pharma": (
        "alice",
        {
            "type": "deny",
            "actor": actor("pharma"),
            "data": [{"meaning": "instance", "reference": {"reference": "DocumentReference/a-summary"}}],
        },
    ),
    "mask-a-weight": (
        "alice",
        {
            "type": "deny",
            "data": [{"meaning": "instance", "reference": {"reference": "Observation/a-weight"}}],
        },
    ),
    "alice-blocks-gp": ("alice", {"type": "deny", "actor": actor("gp")}),
    "alice-blocks-nurse": ("alice", {"type": "deny", "actor": actor("nurse")}),
    "bob-blocks-gp": ("bob", {"type": "deny", "actor": actor("gp")}),
    "carol-grants-stranger": ("carol", {"type": "permit", "actor": actor("stranger")}),
    "alice-grants-dentist": ("alice", {"type": "permit", "actor": actor("dentist")}),
    "btg-er-alice": (
        "alice",
        {
            "type": "permit",
            "actor": actor("er"),
            "purpose": BTG,
            "period": {"start": _iso(NOW - timedelta(hours=1)), "end": _iso(NOW + timedelta(hours=3))},
        },
    ),
    "btg-er-carol-expired": (
        "carol",
        {
            "type": "permit",
            "actor": actor("er"),
            "purpose": BTG,
            "period": {"start": _iso(NOW - timedelta(hours=9)), "end": _iso(NOW - timedelta(hours=5))},
        },
    ),
}

# -- principals ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Who:
    name: str
    principal: Principal
    kind: str  # citizen | professional | emergency | app-patient-obs | backend-patients
    patient: str | None = None
    relationship: str = "self"
    practitioner: str | None = None
    profession: str | None = None


WHO = [
    Who("alice", citizen("alice"), "citizen", "alice"),
    Who("bob", citizen("bob"), "citizen", "bob"),
    Who("carol", citizen("carol"), "citizen", "carol"),
    Who("bob-guardian", citizen("bob", "guardian"), "citizen", "bob", "guardian"),
    Who("alice-helper", citizen("alice", "helper"), "citizen", "alice", "helper"),
    *(
        Who(p, professional(p, prof), "professional", practitioner=p, profession=prof)
        for p, prof in (
            ("gp", "10"),
            ("nurse", "60"),
            ("pharma", "21"),
            ("stranger", "10"),
            ("dentist", "40"),
        )
    ),
    Who("er", emergency("er"), "emergency", practitioner="er"),
    Who(
        "alice-app",
        citizen("alice", scopes=ScopeSet.parse("patient/Observation.rs launch/patient")),
        "app-patient-obs",
        "alice",
    ),
    Who(
        "backend",
        Principal("app", "backend", ScopeSet.parse("system/Patient.rs"), client_id="backend"),
        "backend-patients",
    ),
]

# -- the naive reference -------------------------------------------------------------------------

HIDDEN = {
    "self": {"INVISIBLE_PATIENT"},
    "guardian": {"INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX"},
    "helper": {"INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX", "MASQUE_PS", "R", "V"},
}


def labels(body: dict[str, Any]) -> set[str]:
    codings = list((body.get("meta") or {}).get("security") or [])
    for concept in body.get("securityLabel") or []:
        codings += concept.get("coding") or []
    return {
        ("INVISIBLE_REPRESENTANTS_LEGAUX" if c.get("code") == "INVISIBLE_REP_LEGAUX" else c.get("code"))
        for c in codings
    }


def refs(body: dict[str, Any], *fields: str) -> set[str]:
    out = set()
    for f in fields:
        value = body.get(f)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and isinstance(item.get("reference"), str):
                out.add(item["reference"])
    return out


class Reference:
    def __init__(self, everything: dict[str, dict[str, Any]], on: set[str]) -> None:
        self.all = everything
        self.on = on

    def _consents(self) -> Iterable[tuple[str, dict[str, Any]]]:
        yield "alice", {"type": "permit", "actor": actor("pharma")}  # in the world, always active
        for name in self.on:
            yield CHOICES[name]

    def related(self, who: Who) -> tuple[set[str], set[str], set[str]]:
        """(full, matrix, masked keys) for a professional or responder."""
        me = f"Practitioner/{who.practitioner}"
        mine = {me} | ({"PractitionerRole/gp-role"} if who.practitioner == "gp" else set())
        gp = {
            k.split("/")[1]
            for k, b in self.all.items()
            if k.startswith("Patient/") and refs(b, "generalPractitioner") & mine
        }
        team = {"alice"} if who.practitioner == "nurse" else set()
        granted, blocked, btg, masked = set(), set(), set(), set()
        for patient, prov in self._consents():
            actors = {a["reference"]["reference"] for a in prov.get("actor", [])}
            end = (prov.get("period") or {}).get("end")
            if end and end <= _iso(NOW):
                continue
            if prov["type"] == "deny" and prov.get("data"):
                if not actors or actors & mine:
                    masked |= {d["reference"]["reference"] for d in prov["data"]}
            elif prov["type"] == "deny" and actors & mine:
                blocked.add(patient)
            elif prov["type"] == "permit" and actors & mine:
                (btg if prov.get("purpose") else granted).add(patient)
        if who.kind == "emergency":
            return btg - blocked, set(), masked
        full = (gp | btg) - blocked
        return full, (team | granted) - blocked - full, masked

    def visible(self, who: Who, key: str) -> bool:
        body = self.all[key]
        kind = body["resourceType"]
        comp = patient_compartment(body)
        if who.kind == "backend-patients":
            return kind == "Patient"
        if who.kind in ("citizen", "app-patient-obs"):
            ok = (comp == who.patient and not labels(body) & HIDDEN[who.relationship]) or (
                comp is None and kind in PUBLIC
            )
            return ok and (who.kind == "citizen" or (kind == "Observation" and comp == who.patient))
        if comp is None:
            return kind not in PRIVATE
        if kind in PRIVATE:
            return False
        full, matrix, masked = self.related(who)
        mine = {f"Practitioner/{who.practitioner}"} | (
            {"PractitionerRole/gp-role"} if who.practitioner == "gp" else set()
        )
        if comp in full:
            ok = True
        elif comp in matrix:
            row = MATRIX["professions"].get(who.profession or "", MATRIX["default"])
            types = row["resources"]
            ok = types == "*" or kind in set(types) | set(MATRIX["always"])
            if ok and kind == "DocumentReference" and row["documents"] != "*":
                ok = body["type"]["coding"][0]["code"] in row["documents"]
        else:
            return False
        if ok and ("MASQUE_PS" in labels(body) or key in masked):
            ok = bool(refs(body, "author", "performer") & mine)
        return ok


# -- queries over every read path ----------------------------------------------------------------

KEYS = sorted(f"{r['resourceType']}/{r['id']}" for r in world())
PATIENTS = ["alice", "bob", "carol"]
SEARCHES = [
    "DocumentReference?_count=200",
    "Observation?_count=200",
    "Patient?_count=200",
    "Consent?_count=200",
    "CareTeam?_count=200",
    "Practitioner?_count=200",
    "DocumentReference?_include=DocumentReference:subject&_count=200",
    "Patient?_revinclude=DocumentReference:subject&_count=200",
    "DocumentReference?subject:Patient.gender=female&_count=200",
    "Patient?_has:DocumentReference:subject:type=11488-4&_count=200",
]
HISTORIES = [
    "Observation/_history?_count=500",
    "DocumentReference/_history?_count=500",
    "_history?_count=1000",
]

query = st.one_of(
    st.tuples(st.just("read"), st.sampled_from(KEYS)),
    st.tuples(st.just("vread"), st.sampled_from(KEYS)),
    st.tuples(st.just("search"), st.sampled_from(SEARCHES)),
    st.tuples(st.just("history"), st.sampled_from(HISTORIES)),
    st.tuples(
        st.just("compartment"),
        st.sampled_from(
            [
                f"Patient/{p}/{t}?_count=200"
                for p in PATIENTS
                for t in ("DocumentReference", "Observation", "Consent")
            ]
        ),
    ),
    st.tuples(st.just("everything"), st.sampled_from(PATIENTS)),
    st.tuples(st.just("batch"), st.lists(st.sampled_from(KEYS), min_size=1, max_size=4)),
)


def entries(bundle: dict[str, Any], mode: str | None = None) -> set[str]:
    out = set()
    for e in bundle.get("entry") or []:
        r = e.get("resource")
        if r is not None and (mode is None or (e.get("search") or {}).get("mode") == mode):
            out.add(f"{r['resourceType']}/{r['id']}")
    return out


def versions(bundle: dict[str, Any]) -> set[tuple[str, str]]:
    out = set()
    for e in bundle.get("entry") or []:
        r = e.get("resource")
        if r is not None and r["resourceType"] not in ("Consent", "AuditEvent"):  # written by the test itself
            out.add((f"{r['resourceType']}/{r['id']}", r["meta"]["versionId"]))
        elif r is None and not e.get("fullUrl", "").split("/fhir/")[-1].startswith(("Consent", "AuditEvent")):
            out.add((e.get("fullUrl", ""), "deleted"))
    return out


def check(ep: Any, ref: Reference, who: Who, q: tuple[str, Any]) -> None:
    kind, arg = q
    p = who.principal
    if kind in ("read", "vread"):
        url = arg if kind == "read" else f"{arg}/_history/1"
        status, body = call(ep, p, "GET", url)
        assert status == (200 if ref.visible(who, arg) else 404), (who.name, url, status, body)
        return
    if kind == "batch":
        bundle = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"request": {"method": "GET", "url": k}} for k in arg],
        }
        status, body = call(ep, p, "POST", "", bundle)
        assert status == 200
        got = [e["response"]["status"][:3] for e in body["entry"]]
        assert got == [("200" if ref.visible(who, k) else "404") for k in arg], (who.name, arg, got)
        return
    if kind == "everything":
        url = f"Patient/{arg}/$everything?_count=500"
        status, body = call(ep, p, "GET", url)
        if not ref.visible(who, f"Patient/{arg}"):
            assert status == 404, (who.name, url, status)
            return
        s_status, s_body = call(ep, SYSTEM, "GET", url)
        assert status == 200 and s_status == 200
        expected = {k for k in entries(s_body, "match") if k in ref.all and ref.visible(who, k)}
        expected |= {k for k in entries(s_body, "match") if k not in ref.all and _choice_visible(ref, who, k)}
        got_match = entries(body, "match")
        assert got_match == expected, (who.name, url, got_match ^ expected)
        leaked = {k for k in entries(body) if k in ref.all and not ref.visible(who, k)}
        assert not leaked, (who.name, url, leaked)
        return
    url = arg
    status, body = call(ep, p, "GET", url)
    s_status, s_body = call(ep, SYSTEM, "GET", url)
    assert s_status == 200, (url, s_body)
    assert status == 200, (who.name, url, status, body)
    if kind == "history":
        expected_v = {(k, v) for k, v in versions(s_body) if k in ref.all and ref.visible(who, k)}
        got_v = versions(body)
        assert got_v == expected_v, (who.name, url, got_v ^ expected_v)
        return
    got = entries(body, "match")
    if "subject:Patient" in url:
        expected = {
            k
            for k in entries(s_body, "match")
            if ref.visible(who, k) and ref.visible(who, next(iter(refs(ref.all[k], "subject"))))
        }
    elif "_has:" in url:
        expected = {
            k
            for k in entries(s_body, "match")
            if ref.visible(who, k)
            and any(
                ref.visible(who, d)
                for d, b in ref.all.items()
                if d.startswith("DocumentReference/")
                and refs(b, "subject") == {k}
                and b["type"]["coding"][0]["code"] == "11488-4"
            )
        }
    else:
        expected = {k for k in entries(s_body, "match") if k in ref.all and ref.visible(who, k)}
        # resources written by the test (consents) are in the reference too, by their choice name
        expected |= {k for k in entries(s_body, "match") if k not in ref.all and _choice_visible(ref, who, k)}
    assert got == expected, (who.name, url, got ^ expected)
    included = entries(body, "include")
    leaked = {k for k in included if k in ref.all and not ref.visible(who, k)}
    assert not leaked, (who.name, url, leaked)
    if "_include=" in url or "_revinclude=" in url:
        s_included = entries(s_body, "include")
        assert included == {
            k for k in s_included if k in ref.all and ref.visible(who, k) and _reached(ref, who, k, got, url)
        }, (who.name, url)


def _reached(ref: Reference, who: Who, key: str, matches: set[str], url: str) -> bool:
    """An included resource is expected when a visible match references it (or it references one)."""
    body = ref.all[key]
    if "_revinclude" in url:
        return bool(refs(body, "subject") & matches)
    return any(key in refs(ref.all[m], "subject") for m in matches if m in ref.all)


def _choice_visible(ref: Reference, who: Who, key: str) -> bool:
    name = key.split("/", 1)[1]
    if not key.startswith("Consent/") or name not in CHOICES:
        return False
    return who.kind == "citizen" and who.patient == CHOICES[name][0]  # her choices, in force or not


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=False)
def test_policy_matches_the_reference(engine: Engine, backend: str) -> None:
    ep = endpoint(engine)
    everything = {f"{r['resourceType']}/{r['id']}": r for r in world()}
    load(ep, world())
    # Choices are written through another app instance (another worker, its own engine): the
    # reading instance's relationship cache must see them on its next request.
    other = second_engine(engine)
    writer = endpoint(other)

    state: dict[str, bool] = {}

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=False)
    @given(
        on=st.sets(st.sampled_from(sorted(CHOICES))),
        who=st.sampled_from(WHO),
        queries=st.lists(query, min_size=1, max_size=3),
    )
    def run(on: set[str], who: Who, queries: list[tuple[str, Any]]) -> None:
        for name, (patient, provision) in CHOICES.items():
            if state.get(name) == (name in on):
                continue  # unchanged since the previous example
            body = consent(name, patient, provision)
            body["status"] = "active" if name in on else "inactive"
            assert call(writer, SYSTEM, "PUT", f"Consent/{name}", body)[0] in (200, 201)
            state[name] = name in on
        ref = Reference(everything, set(on))
        for q in queries:
            check(ep, ref, who, q)

    try:
        run()
    finally:
        other.dispose()
