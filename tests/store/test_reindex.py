"""Rebuilding index rows (socle.store.reindex) and `socle reindex`, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, delete, func, select
from typer.testing import CliRunner

from socle.cli import app
from socle.fhir.search_params import registry
from socle.services import search_parameters
from socle.store.access import SYSTEM
from socle.store.engine import make_engine
from socle.store.fulltext import idx_text
from socle.store.indexes import INDEX_TABLES
from socle.store.migrate import upgrade
from socle.store.reindex import count_resources, reindex
from socle.store.repository import Store

runner = CliRunner()
BIRTH_PLACE = {
    "resourceType": "SearchParameter",
    "id": "birth-place",
    "url": "http://example.org/SearchParameter/birth-place",
    "name": "birthPlace",
    "status": "active",
    "description": "Place of birth",
    "code": "birth-place",
    "base": ["Patient"],
    "type": "string",
    "expression": "Patient.extension('http://example.org/birth-place').value",
}


@pytest.fixture(autouse=True)
def _core_registry() -> Iterator[None]:
    """Custom SearchParameters live in the process-wide registry: start and end each test without."""
    search_parameters._SYNC = search_parameters.SearchParameterSync()
    registry().replace_custom([])
    yield
    search_parameters._SYNC = search_parameters.SearchParameterSync()
    registry().replace_custom([])


def patient(id: str, family: str, place: str) -> dict[str, object]:
    return {
        "resourceType": "Patient",
        "id": id,
        "name": [{"family": family}],
        "extension": [{"url": "http://example.org/birth-place", "valueString": place}],
    }


def seed(store: Store) -> None:
    with store.write() as conn:
        for i, (family, place) in enumerate([("Dupont", "Lyon"), ("Martin", "Paris"), ("Durand", "Lille")]):
            store.update(conn, patient(f"p{i}", family, place))
        store.update(conn, {"resourceType": "Organization", "id": "o1", "name": "Clinique du Parc"})
        store.update(conn, {"resourceType": "Organization", "id": "o2", "name": "Hôpital Nord"})
        store.update(conn, {"resourceType": "Organization", "id": "gone", "name": "Fermée"})
        store.delete(conn, "Organization", "gone")


def index_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return sum(
            int(conn.scalar(select(func.count()).select_from(t)) or 0) for t in (*INDEX_TABLES, idx_text)
        )


def wipe_indexes(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in (*INDEX_TABLES, idx_text):
            conn.execute(delete(table))


def search(store: Store, resource_type: str, name: str, value: str) -> list[str]:
    with store.read() as conn:
        page, _, _ = store.search_page(
            conn, resource_type, [(name, value)], SYSTEM, count=50, after=None, strict=True
        )
    return sorted(v.id for v in page)


def test_rebuilds_exactly_what_the_writes_made(engine: Engine) -> None:
    store = Store(engine)
    seed(store)
    written = index_rows(engine)
    wipe_indexes(engine)
    assert search(store, "Patient", "family", "dupont") == []
    assert search(store, "Organization", "_content", "clinique") == []
    result = reindex(engine, batch_size=2)
    assert result.resources == 5  # the deleted Organization is skipped
    assert result.batches == 3
    assert dict(result.by_type) == {"Patient": 3, "Organization": 2}
    assert index_rows(engine) == written
    assert search(store, "Patient", "family", "dupont") == ["p0"]
    assert search(store, "Organization", "_content", "clinique") == ["o1"]
    reindex(engine)  # idempotent: rows are replaced, not duplicated
    assert index_rows(engine) == written


def test_one_type_and_resume_after_a_key(engine: Engine) -> None:
    store = Store(engine)
    seed(store)
    wipe_indexes(engine)
    with engine.connect() as conn:
        assert count_resources(conn, "Patient") == 3
    first = reindex(engine, resource_type="Patient", batch_size=1)
    assert (first.resources, first.batches, dict(first.by_type)) == (3, 3, {"Patient": 3})
    assert search(store, "Organization", "name", "clinique") == []
    assert first.last_key is not None
    again = reindex(engine, resource_type="Patient", after=first.last_key)
    assert again.resources == 0 and again.last_key is None


def test_progress_reports_each_batch(engine: Engine) -> None:
    seed(Store(engine))
    seen: list[tuple[int, int]] = []
    result = reindex(engine, batch_size=4, progress=lambda count, key: seen.append((count, key)))
    assert [count for count, _ in seen] == [4, 1]
    assert seen[-1][1] == result.last_key


def test_a_new_search_parameter_indexes_old_resources_after_reindex(engine: Engine) -> None:
    store = Store(engine)
    seed(store)
    with store.write() as conn:
        store.update(conn, dict(BIRTH_PLACE))
        search_parameters.refresh(conn, strict=True)
    assert search(store, "Patient", "birth-place", "lyon") == []  # written before the parameter existed
    reindex(engine, resource_type="Patient")
    assert search(store, "Patient", "birth-place", "lyon") == ["p0"]


def test_cli_reindex(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    store = Store(engine)
    seed(store)
    with store.write() as conn:
        store.update(conn, dict(BIRTH_PLACE))
    wipe_indexes(engine)
    registry().replace_custom([])  # as in a fresh process: the CLI loads the stored parameters itself
    search_parameters._SYNC = search_parameters.SearchParameterSync()

    result = runner.invoke(
        app, ["reindex", "--database", database_url, "--type", "Patient", "--batch-size", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "3 resources reindexed in 2 batches" in result.output
    assert "Patient: 3" in result.output
    assert search(store, "Patient", "birth-place", "paris") == ["p1"]
    assert search(store, "Organization", "name", "clinique") == []

    result = runner.invoke(app, ["reindex", "--database", database_url])
    assert result.exit_code == 0, result.output
    assert "6 resources reindexed in 1 batches" in result.output  # 5 + the SearchParameter itself
    assert search(store, "Organization", "name", "clinique") == ["o1"]
    engine.dispose()


def test_cli_reindex_usage_errors(database_url: str) -> None:
    result = runner.invoke(app, ["reindex", "--database", database_url, "--type", "Patients"])
    assert result.exit_code == 2
    assert "not a FHIR R4 resource type" in re.sub(r"[\s│]+", " ", result.output)
    result = runner.invoke(app, ["reindex", "--database", database_url, "--batch-size", "0"])
    assert result.exit_code == 2
