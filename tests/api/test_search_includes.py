"""_include / _revinclude (R4 §3.1.1.5.4), :iterate, `*`, and their cost in SQL statements."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, event
from starlette.testclient import TestClient

from socle.api import audit
from tests.api.test_search import create, ids, link, outcome, search


@pytest.fixture
def chart(client: TestClient) -> dict[str, str]:
    """Org ← Patient P1 ← obs O1 (performer Dr) ; P2 ← O2 ; O3 about a Location ; P1 ↔ P2 linked."""
    made: dict[str, str] = {}
    made["Org"] = create(client, {"resourceType": "Organization", "name": "Clinic"})
    made["Dr"] = create(client, {"resourceType": "Practitioner", "name": [{"family": "House"}]})
    made["Loc"] = create(client, {"resourceType": "Location", "name": "Room 1"})
    made["P1"] = create(
        client,
        {"resourceType": "Patient", "managingOrganization": {"reference": f"Organization/{made['Org']}"}},
    )
    made["P2"] = create(
        client,
        {
            "resourceType": "Patient",
            "link": [{"other": {"reference": f"Patient/{made['P1']}"}, "type": "seealso"}],
        },
    )
    client.put(
        f"/fhir/Patient/{made['P1']}",
        json={
            "resourceType": "Patient",
            "id": made["P1"],
            "managingOrganization": {"reference": f"Organization/{made['Org']}"},
            "link": [{"other": {"reference": f"Patient/{made['P2']}"}, "type": "seealso"}],
        },
        headers={"Content-Type": "application/fhir+json"},
    )
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    made["O1"] = create(
        client,
        {
            **obs,
            "subject": {"reference": f"Patient/{made['P1']}"},
            "performer": [{"reference": f"Practitioner/{made['Dr']}"}],
        },
    )
    made["O2"] = create(client, {**obs, "subject": {"reference": f"Patient/{made['P2']}"}})
    made["O3"] = create(client, {**obs, "subject": {"reference": f"Location/{made['Loc']}"}})
    return made


def names(chart: dict[str, str], found: list[str]) -> list[str]:
    by_id = {v: k for k, v in chart.items()}
    return sorted(by_id[i] for i in found)


def test_include_forms(client: TestClient, chart: dict[str, str]) -> None:
    bundle = search(client, "/fhir/Observation?_include=Observation:subject")
    assert names(chart, ids(bundle)) == ["O1", "O2", "O3"]
    assert names(chart, ids(bundle, "include")) == ["Loc", "P1", "P2"]
    assert all(e["fullUrl"].startswith("http://testserver/fhir/") for e in bundle["entry"])
    typed = search(client, "/fhir/Observation?_include=Observation:subject:Patient")
    assert names(chart, ids(typed, "include")) == ["P1", "P2"]
    star = search(client, f"/fhir/Observation?_id={chart['O1']}&_include=Observation:*")
    assert names(chart, ids(star, "include")) == ["Dr", "P1"]
    bare = search(client, f"/fhir/Observation?_id={chart['O1']}&_include=*")
    assert names(chart, ids(bare, "include")) == ["Dr", "P1"]
    # An include whose source type is not searched brings nothing (no iterate).
    assert ids(search(client, "/fhir/Observation?_include=Patient:organization"), "include") == []


def test_revinclude(client: TestClient, chart: dict[str, str]) -> None:
    bundle = search(client, f"/fhir/Patient?_id={chart['P1']}&_revinclude=Observation:subject")
    assert names(chart, ids(bundle)) == ["P1"] and names(chart, ids(bundle, "include")) == ["O1"]
    both = search(client, "/fhir/Patient?_revinclude=Observation:subject&_include=Patient:organization")
    assert names(chart, ids(both, "include")) == ["O1", "O2", "Org"]
    star = search(client, f"/fhir/Practitioner?_revinclude=Observation:*&_id={chart['Dr']}")
    assert names(chart, ids(star, "include")) == ["O1"]
    typed = search(client, "/fhir/Location?_revinclude=Observation:subject:Patient")
    assert ids(typed, "include") == []


def test_iterate_until_fixpoint(client: TestClient, chart: dict[str, str]) -> None:
    url = (
        f"/fhir/Observation?_id={chart['O1']}"
        "&_include=Observation:subject&_include:iterate=Patient:organization"
    )
    assert names(chart, ids(search(client, url), "include")) == ["Org", "P1"]
    plain = url.replace(":iterate", "")
    assert names(chart, ids(search(client, plain), "include")) == ["P1"]
    reverse = (
        f"/fhir/Patient?_id={chart['P1']}"
        "&_revinclude=Observation:subject&_include:iterate=Observation:performer"
    )
    assert names(chart, ids(search(client, reverse), "include")) == ["Dr", "O1"]
    # A reference cycle (P1 ↔ P2 through Patient.link) terminates, each resource once.
    cycle = search(client, f"/fhir/Patient?_id={chart['P1']}&_include:iterate=Patient:link")
    assert names(chart, ids(cycle, "include")) == ["P2"]
    wide = search(
        client,
        f"/fhir/Organization?_id={chart['Org']}&_revinclude:iterate=Patient:organization"
        "&_revinclude:iterate=Observation:subject&_include:iterate=Observation:performer",
    )
    assert names(chart, ids(wide, "include")) == ["Dr", "O1", "P1"]


def test_includes_follow_projection_and_paging(client: TestClient, chart: dict[str, str]) -> None:
    first = search(client, "/fhir/Observation?_include=Observation:subject&_count=1&_summary=true")
    assert names(chart, ids(first)) == ["O1"] and names(chart, ids(first, "include")) == ["P1"]
    included = next(e["resource"] for e in first["entry"] if e["search"]["mode"] == "include")
    assert included["meta"]["tag"][0]["code"] == "SUBSETTED"
    following = search(client, str(link(first, "next")).removeprefix("http://testserver"))
    assert names(chart, ids(following)) == ["O2"] and names(chart, ids(following, "include")) == ["P2"]


def test_bad_includes(client: TestClient, chart: dict[str, str]) -> None:
    lenient = search(client, "/fhir/Observation?_include=Observation:status&_include=Nope:subject&_count=0")
    assert [i["expression"][0] for i in outcome(lenient)] == ["_include", "_include"]
    strict = client.get("/fhir/Observation?_include=Observation:code", headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400
    for bad in ("Observation", "a:b:c:d", "Observation::Patient", ":subject"):
        assert client.get("/fhir/Observation", params={"_include": bad}).status_code == 400
    assert client.get("/fhir/Observation", params={"_include:deep": "Observation:subject"}).status_code == 400
    assert client.get("/fhir/Observation", params={"_revinclude": "*"}).status_code == 400


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        # The HTTP layer's per-request check for changed custom SearchParameters is not search work.
        values = parameters.values() if isinstance(parameters, dict) else parameters
        if statement.lstrip().upper().startswith("SELECT") and "SearchParameter" not in values:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_one_statement_per_page_and_per_include_level(
    client: TestClient, engine: Engine, chart: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the search's SQL is counted here: the audit's own statements (chain head, compartments of
    # the returned entries) are per request, not per row, and are covered by tests/trust/test_audit_*.
    monkeypatch.setattr(audit, "events", lambda *args: [])
    for _ in range(20):
        create(
            client,
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "subject": {"reference": f"Patient/{chart['P2']}"},
            },
        )
    with statements(engine) as seen:
        bundle = search(client, "/fhir/Observation?_count=30&_total=none")
    assert len(ids(bundle)) == 23 and len(seen) == 1
    with statements(engine) as seen:
        bundle = search(
            client,
            "/fhir/Observation?_count=30&_include=Observation:subject&_include=Observation:performer"
            "&_include:iterate=Patient:organization&_include:iterate=Patient:link",
        )
    # page + 2 include levels: (subject, performer) then (organization, link) from the new
    # Patients; the third level's only source is the Organization, which no spec applies to: no SQL.
    # No count: the page holds every match, so its length is the total.
    assert names(chart, ids(bundle, "include")) == ["Dr", "Loc", "Org", "P1", "P2"]
    assert bundle["total"] == 23 and len(seen) == 3
