"""Search results on both backends (R4 §3.1.1.5): _sort, keyset paging, _total, handling, POST, system."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from starlette.testclient import TestClient

from socle.fhir.summary import SUBSETTED

FHIR = {"Content-Type": "application/fhir+json"}
BASE = "http://testserver/fhir"


def create(client: TestClient, body: dict[str, Any]) -> str:
    response = client.post(f"/fhir/{body['resourceType']}", json=body, headers=FHIR)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def person(family: str | None = None, birth: str | None = None, gender: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Patient"}
    if family:
        body["name"] = [{"family": family}]
    if birth:
        body["birthDate"] = birth
    if gender:
        body["gender"] = gender
    return body


def search(client: TestClient, url: str, status: int = 200, **headers: str) -> dict[str, Any]:
    response = client.get(url, headers=headers)
    assert response.status_code == status, response.text
    return dict(response.json())


def ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((x["url"] for x in bundle["link"] if x["relation"] == relation), None)


def outcome(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    found = [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "outcome"]
    return [issue for o in found for issue in o["issue"]]


def walk(client: TestClient, url: str) -> list[dict[str, Any]]:
    """Every page of a search, following `next` links."""
    bundles = [search(client, url)]
    while (following := link(bundles[-1], "next")) is not None:
        assert following.startswith(BASE)
        bundles.append(search(client, following.removeprefix("http://testserver")))
    return bundles


@pytest.fixture
def people(client: TestClient) -> dict[str, str]:
    """Six patients: names, birth dates and genders with gaps and ties, created in this order."""
    spec = {
        "A": person("Dupont", "1980-01-01", "male"),
        "B": person("Martin", "1990-06-15", "female"),
        "C": person("Bernard", None, "female"),
        "D": person("Dupont", "1975-03-03", "female"),
        "E": person(None, "1990-06-15", "other"),
        "F": person("Albert"),
    }
    return {key: create(client, body) for key, body in spec.items()}


def letters(people: dict[str, str], found: list[str]) -> str:
    by_id = {v: k for k, v in people.items()}
    return "".join(by_id[i] for i in found)


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("family,-birthdate", "FCADBE"),  # missing family last; Dupont tie broken by birthdate desc
        ("-family", "BADCFE"),  # missing last in descending order too; tie by resource key
        ("birthdate", "DABECF"),
        ("-birthdate", "BEADCF"),
        ("gender,-_lastUpdated", "DCBAEF"),
        ("-_id", None),
    ],
)
def test_sort(client: TestClient, people: dict[str, str], sort: str, expected: str | None) -> None:
    bundle = search(client, f"/fhir/Patient?_sort={sort}")
    found = ids(bundle)
    if expected is None:
        assert found == sorted(people.values(), reverse=True)
    else:
        assert letters(people, found) == expected
    assert bundle["total"] == 6 and bundle["type"] == "searchset"
    assert link(bundle, "self") == f"{BASE}/Patient?_sort={sort.replace(',', '%2C')}"


def test_sort_multi_valued_uses_min_ascending_and_max_descending(client: TestClient) -> None:
    two = create(client, {"resourceType": "Patient", "name": [{"family": "Zola"}, {"family": "Adler"}]})
    one = create(client, person("Martin"))
    assert ids(search(client, "/fhir/Patient?_sort=family")) == [two, one]  # adler < martin
    assert ids(search(client, "/fhir/Patient?_sort=-family")) == [two, one]  # zola > martin
    period = {"start": "2020-01-01", "end": "2020-12-31"}
    base = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    wide = create(client, {**base, "effectivePeriod": period, "valueQuantity": {"value": 5}})
    point = create(client, {**base, "effectiveDateTime": "2020-06-01", "valueQuantity": {"value": 1.5}})
    big = create(client, {**base, "valueQuantity": {"value": 10}})
    none = create(client, base)
    assert ids(search(client, "/fhir/Observation?_sort=date")) == [wide, point, big, none]
    assert ids(search(client, "/fhir/Observation?_sort=-date")) == [wide, point, big, none]
    assert ids(search(client, "/fhir/Observation?_sort=value-quantity")) == [point, wide, big, none]
    assert ids(search(client, "/fhir/Observation?_sort=-value-quantity")) == [big, wide, point, none]


def test_sort_by_reference_token_and_uri(client: TestClient) -> None:
    p1 = create(client, person("X"))
    p2 = create(client, person("Y"))
    base = {"resourceType": "Observation", "code": {"text": "x"}}
    second = create(
        client, {**base, "status": "preliminary", "subject": {"reference": f"Patient/{max(p1, p2)}"}}
    )
    first = create(client, {**base, "status": "final", "subject": {"reference": f"Patient/{min(p1, p2)}"}})
    assert ids(search(client, "/fhir/Observation?_sort=subject")) == [first, second]
    assert ids(search(client, "/fhir/Observation?_sort=-status")) == [second, first]
    assert ids(search(client, "/fhir/Observation?_sort=status")) == [first, second]
    url = {"resourceType": "ValueSet", "status": "active"}
    vb = create(client, {**url, "url": "http://b.example/vs"})
    va = create(client, {**url, "url": "http://a.example/vs"})
    assert ids(search(client, "/fhir/ValueSet?_sort=url")) == [va, vb]


def test_paging_follows_the_sort_and_goes_back(client: TestClient, people: dict[str, str]) -> None:
    pages = walk(client, "/fhir/Patient?_sort=family,-birthdate&_count=4")
    assert [letters(people, ids(p)) for p in pages] == ["FCAD", "BE"]
    assert pages[0]["total"] == 6 and "total" not in pages[1]  # default: total on the first page only
    assert link(pages[0], "previous") is None and link(pages[1], "next") is None
    back = link(pages[1], "previous")
    assert back is not None
    assert letters(people, ids(search(client, back.removeprefix("http://testserver")))) == "FCAD"
    assert [letters(people, ids(p)) for p in walk(client, "/fhir/Patient?_count=2")] == ["AB", "CD", "EF"]


def test_previous_links_walk_back_through_every_page(client: TestClient, people: dict[str, str]) -> None:
    pages = walk(client, "/fhir/Patient?_sort=-birthdate&_count=2")
    assert [letters(people, ids(p)) for p in pages] == ["BE", "AD", "CF"]
    url = link(pages[-1], "previous")
    seen = []
    while url is not None:
        bundle = search(client, url.removeprefix("http://testserver"))
        seen.append(letters(people, ids(bundle)))
        assert link(bundle, "next") is not None
        url = link(bundle, "previous")
    assert seen == ["AD", "BE"]


@pytest.mark.parametrize("sort", ["", "&_sort=family", "&_sort=-_lastUpdated"])
def test_paging_is_stable_while_others_write(client: TestClient, sort: str) -> None:
    """Resources created, updated or deleted between pages never duplicate or skip the others."""
    originals = [create(client, person(f"Name{i:02d}")) for i in range(10)]
    first = search(client, f"/fhir/Patient?_count=3{sort}")
    seen = ids(first)
    # Writes that would sort before, among and after the rows already served.
    create(client, person("Aaaa"))
    create(client, person("Name045"))
    create(client, person("Zzzz"))
    doomed = next(i for i in originals if i not in seen)
    client.delete(f"/fhir/Patient/{doomed}")
    url = link(first, "next")
    while url is not None:
        bundle = search(client, url.removeprefix("http://testserver"))
        seen += ids(bundle)
        url = link(bundle, "next")
    assert len(seen) == len(set(seen))
    assert sorted(seen) == sorted(i for i in originals if i != doomed)


def test_count_zero_total_modes(client: TestClient, backend: str, people: dict[str, str]) -> None:
    only = search(client, "/fhir/Patient?_count=0")
    assert only["total"] == 6 and "entry" not in only and link(only, "next") is None
    summary_count = search(client, "/fhir/Patient?_summary=count&gender=female")
    assert summary_count["total"] == 3 and "entry" not in summary_count
    assert "total" not in search(client, "/fhir/Patient?_total=none")
    second = search(client, str(link(search(client, "/fhir/Patient?_count=2&_total=accurate"), "next"))[17:])
    assert second["total"] == 6 and len(ids(second)) == 2
    estimate = search(client, "/fhir/Patient?_total=estimate&_count=1")["total"]
    assert isinstance(estimate, int) and (estimate == 6 if backend == "sqlite" else estimate >= 0)
    assert search(client, "/fhir/Patient?_total=maybe", 400)["resourceType"] == "OperationOutcome"
    search(client, "/fhir/Patient?_count=-1", 400)
    assert len(ids(search(client, "/fhir/Patient?_count=99999"))) == 6  # capped, not refused


@pytest.mark.parametrize(
    "cursor",
    ["garbage", "-1", "WzFd", "eyJhIjoxfQ", "W10", "WzEsMCw2LDMsWyJ4Il0sMF0", "%00", "=" * 5, "é"],
)
def test_bad_cursors_are_400(client: TestClient, people: dict[str, str], cursor: str) -> None:
    response = client.get("/fhir/Patient", params={"_cursor": cursor, "_sort": "birthdate"})
    assert response.status_code == 400 and response.json()["issue"][0]["expression"] == ["_cursor"]


def test_cursor_is_bound_to_its_sort(client: TestClient, people: dict[str, str]) -> None:
    following = str(link(search(client, "/fhir/Patient?_sort=birthdate&_count=2"), "next"))
    cursor = dict(parse_qsl(urlsplit(following).query))["_cursor"]
    assert client.get("/fhir/Patient", params={"_sort": "birthdate", "_cursor": cursor}).status_code == 200
    assert client.get("/fhir/Patient", params={"_sort": "-birthdate", "_cursor": cursor}).status_code == 400
    assert client.get("/fhir/Patient", params={"_sort": "family", "_cursor": cursor}).status_code == 400


def test_lenient_ignores_and_reports_strict_refuses(client: TestClient, people: dict[str, str]) -> None:
    url = "/fhir/Patient?family=Dupont&foo=bar&_sort=nope,-birthdate&_contained=true&_include=Patient:nope"
    bundle = search(client, url)
    assert letters(people, ids(bundle)) == "AD"
    problems = sorted(issue["expression"][0] for issue in outcome(bundle))
    assert problems == ["_contained", "_include", "_sort", "foo"]
    assert {issue["severity"] for issue in outcome(bundle)} == {"warning"}
    assert link(bundle, "self") == f"{BASE}/Patient?family=Dupont&_sort=-birthdate"
    strict = search(client, url, 400, Prefer="handling=strict")
    assert sorted(i["expression"][0] for i in strict["issue"]) == ["_contained", "_include", "_sort", "foo"]
    assert all(i["code"] == "not-supported" for i in strict["issue"])
    assert ids(search(client, "/fhir/Patient?family=Dupont", Prefer="handling=strict")) == [
        people["A"],
        people["D"],
    ]
    assert search(client, "/fhir/Patient?_include=Patient", 400)["issue"][0]["code"] == "invalid"


def test_post_search_merges_form_and_url(client: TestClient, people: dict[str, str]) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    response = client.post("/fhir/Patient/_search?_sort=-birthdate", content="family=Dupont", headers=form)
    assert response.status_code == 200
    bundle = response.json()
    assert letters(people, ids(bundle)) == "AD"
    assert link(bundle, "self") == f"{BASE}/Patient?_sort=-birthdate&family=Dupont"
    system = client.post("/fhir/_search", content="_type=Patient&family=Martin", headers=form)
    assert system.status_code == 200 and letters(people, ids(system.json())) == "B"
    json_body = client.post("/fhir/Patient/_search", json={"family": "x"}, headers=FHIR)
    assert json_body.status_code == 415


def test_system_search(client: TestClient, people: dict[str, str]) -> None:
    time.sleep(0.002)
    cut = search(client, "/fhir/Patient/_history?_count=1")["entry"][0]["response"]["lastModified"]
    obs = create(client, {"resourceType": "Observation", "status": "final", "code": {"text": "x"}})
    org = create(client, {"resourceType": "Organization", "name": "Org"})
    later = search(client, f"/fhir?_type=Patient,Observation&_lastUpdated=gt{cut}")
    assert ids(later) == [obs] and later["total"] == 1
    assert (
        link(later, "self") == f"{BASE}?_type=Patient%2CObservation&_lastUpdated=gt{cut.replace(':', '%3A')}"
    )
    everything = search(client, f"/fhir?_lastUpdated=gt{cut}&_sort=-_lastUpdated")
    assert ids(everything) == [org, obs]
    by_id = search(client, f"/fhir?_id={people['A']},{org}")
    assert ids(by_id) == [people["A"], org]
    # Without _type only Resource-level parameters apply; with _type, ones every type knows.
    ignored = search(client, "/fhir?family=Dupont&_count=1")
    assert [i["expression"][0] for i in outcome(ignored)] == ["family"] and ignored["total"] == 8
    search(client, "/fhir?family=Dupont", 400, Prefer="handling=strict")
    mixed = search(client, "/fhir?_type=Patient,Observation&family=Dupont&_count=0")
    assert mixed["total"] == 7 and [i["expression"][0] for i in outcome(mixed)] == ["family"]
    assert letters(people, ids(search(client, "/fhir?_type=Patient&family=Dupont"))) == "AD"
    sorted_pages = walk(client, "/fhir?_type=Patient,Organization&_sort=-_id&_count=3")
    assert [i for p in sorted_pages for i in ids(p)] == sorted([*people.values(), org], reverse=True)
    search(client, "/fhir?_type=Nope", 400)


def test_read_and_search_summary_and_elements(client: TestClient, people: dict[str, str]) -> None:
    read = client.get(f"/fhir/Patient/{people['A']}?_elements=gender").json()
    assert set(read) == {"resourceType", "id", "meta", "gender"}
    assert read["meta"]["tag"][0]["code"] == "SUBSETTED"
    assert set(client.get(f"/fhir/Patient/{people['A']}?_summary=true").json()) == {
        "resourceType",
        "id",
        "meta",
        "name",
        "gender",
        "birthDate",
    }
    assert client.get(f"/fhir/Patient/{people['A']}?_summary=nope").status_code == 400
    bundle = search(client, "/fhir/Patient?_elements=birthDate&_sort=birthdate&_count=1")
    found = bundle["entry"][0]["resource"]
    assert found["meta"].pop("tag") == [SUBSETTED]
    assert found == {
        "resourceType": "Patient",
        "id": people["D"],
        "meta": found["meta"],
        "birthDate": "1975-03-03",
    }
    assert set(found["meta"]) == {"versionId", "lastUpdated"}
    assert "_elements=birthDate" in str(link(bundle, "next"))
