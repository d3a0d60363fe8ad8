"""`Bundle.total` when the client does not ask (R4 search.html#total lets the server choose): exact
when the page holds every match or the matches are few, bounded otherwise; `_total` as asked."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from socle.api import audit
from socle.api import search as search_api
from tests.api.test_search import ids, link, people, search  # noqa: F401 (people: a fixture)
from tests.api.test_search_includes import statements


@pytest.mark.usefixtures("people")
def test_default_total_is_exact_and_free_when_the_page_holds_every_match(
    client: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "events", lambda *args: [])  # count the search's statements only
    with statements(engine) as seen:
        bundle = search(client, "/fhir/Patient?gender=female")
    assert bundle["total"] == 3 and len(ids(bundle)) == 3
    assert len(seen) == 1  # the page only: no count statement
    assert search(client, "/fhir/Patient?family=nobody")["total"] == 0


@pytest.mark.usefixtures("people")
def test_default_total_counts_up_to_the_limit(client: TestClient) -> None:
    first = search(client, "/fhir/Patient?_count=2")
    assert first["total"] == 6 and len(ids(first)) == 2  # 6 ≤ DEFAULT_COUNT_LIMIT: counted
    later = search(client, str(link(first, "next"))[17:])
    assert "total" not in later and len(ids(later)) == 2  # later pages: none unless asked


@pytest.mark.usefixtures("people")
def test_beyond_the_limit_estimate_or_none_and_accurate_when_asked(
    client: TestClient, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_api, "DEFAULT_COUNT_LIMIT", 3)
    bundle = search(client, "/fhir/Patient?_count=2")
    if backend == "sqlite":  # no estimate on SQLite: no total rather than a count of everything
        assert "total" not in bundle
    else:  # the planner's estimate, never below the rows already counted
        assert bundle["total"] >= 4
    assert len(ids(bundle)) == 2 and link(bundle, "next") is not None
    assert search(client, "/fhir/Patient?_count=2&_total=accurate")["total"] == 6
    assert search(client, "/fhir/Patient?_summary=count")["total"] == 6
    assert search(client, "/fhir/Patient?_count=0")["total"] == 6
    assert "total" not in search(client, "/fhir/Patient?_total=none&_count=2")
    second = search(client, str(link(search(client, "/fhir/Patient?_count=2&_total=accurate"), "next"))[17:])
    assert second["total"] == 6
