"""The SQL and plan of a search (socle.store.explain) and `socle explain`, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from socle.cli import app
from socle.fhir.errors import Invalid
from socle.fhir.hashing import system_value_hash
from socle.store.access import SYSTEM
from socle.store.engine import make_engine
from socle.store.explain import explain_search
from socle.store.migrate import upgrade
from socle.store.repository import Store

runner = CliRunner()
QUERY = "code=http://loinc.org|8867-4&date=ge2020"
OBSERVATION = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": "Heart rate"},
    "effectiveDateTime": "2021-03-04T10:00:00Z",
}


def test_sql_has_the_values_inlined_and_runs_as_printed(engine: Engine) -> None:
    store = Store(engine)
    with store.write() as conn:
        store.create(conn, dict(OBSERVATION))
    with engine.connect() as conn:
        explanation = explain_search(conn, "Observation", QUERY, SYSTEM)
        assert str(system_value_hash("Observation", "code", "http://loinc.org", "8867-4")) in explanation.sql
        assert "idx_token" in explanation.sql and "idx_date" in explanation.sql
        assert "LIMIT 51" in explanation.sql
        rows = conn.exec_driver_sql(explanation.sql).all()  # the printed SQL is runnable as is
    assert len(rows) == 1
    assert explanation.unknown == ()


def test_plan_comes_from_the_database(engine: Engine, backend: str) -> None:
    with engine.connect() as conn:
        explanation = explain_search(conn, "Observation", QUERY + "&_count=10", SYSTEM)
    assert "LIMIT 11" in explanation.sql
    plan = "\n".join(explanation.plan)
    if backend == "sqlite":
        assert "ix_idx_token_sys_value" in plan  # the token hash index drives the lookup
    else:
        assert plan.startswith("Limit")
        assert "actual time" not in plan


def test_analyze_runs_the_query_on_postgresql(engine: Engine, backend: str) -> None:
    with engine.connect() as conn:
        explanation = explain_search(conn, "Observation", QUERY, SYSTEM, analyze=True)
    plan = "\n".join(explanation.plan)
    assert ("actual time" in plan) == (backend == "postgresql")


def test_full_text_sql_is_the_dialect_s_own(engine: Engine, backend: str) -> None:
    with engine.connect() as conn:
        explanation = explain_search(conn, "Patient", "_content=hélène OR martin&foo=1", SYSTEM)
        conn.exec_driver_sql(explanation.sql).all()
    if backend == "sqlite":
        assert 'idx_text_fts MATCH \'content : (("hélène") OR ("martin"))\'' in explanation.sql
    else:
        assert "@@ websearch_to_tsquery('french'::regconfig, 'helene or martin')" in explanation.sql
    assert explanation.unknown == ("foo",)


def test_invalid_query_is_a_fhir_error(engine: Engine) -> None:
    with engine.connect() as conn, pytest.raises(Invalid):
        explain_search(conn, "Observation", "date=notadate", SYSTEM)


def test_cli_explain(database_url: str, backend: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    result = runner.invoke(app, ["explain", f"Observation?{QUERY}", "--database", database_url])
    assert result.exit_code == 0, result.output
    # the code drives, read from its index in key order (store.search._stream_from)
    assert result.stdout.startswith(
        f"-- SQL ({backend})\nSELECT driving.resource_key AS resource_key, resource.id"
    )
    assert "-- EXPLAIN" in result.stdout
    result = runner.invoke(app, ["explain", "/fhir/Patient?name=a%25b&bogus=1", "--database", database_url])
    assert result.exit_code == 0, result.output
    assert "'a%b" in result.stdout  # LIKE-free prefix search, `%` kept literally
    assert "ignored (unknown to the search): bogus" in result.stderr
    if backend == "postgresql":
        result = runner.invoke(
            app, ["explain", f"Observation?{QUERY}", "--analyze", "--database", database_url]
        )
        assert result.exit_code == 0, result.output
        assert "actual time" in result.stdout


@pytest.mark.parametrize(
    ("query", "code", "message"),
    [
        ("Observation?date=notadate", 1, "not a valid date"),
        ("Patient?_content=-x", 1, "needs a word"),
        ("Observations?code=1", 2, "does not start with a FHIR R4 resource type"),
        ("?code=1", 2, "does not start with a FHIR R4 resource type"),
    ],
)
def test_cli_explain_errors(database_url: str, query: str, code: int, message: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    result = runner.invoke(app, ["explain", query, "--database", database_url])
    assert result.exit_code == code, result.output
    assert message in re.sub(r"[\s│]+", " ", result.output)  # Rich boxes usage errors at 80 columns
    assert result.stdout == ""
