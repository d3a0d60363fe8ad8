"""The `socle` command line, run in-process with Typer's CliRunner."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
from sqlalchemy import func, select
from typer.testing import CliRunner

from socle.cli import app
from socle.store.engine import make_engine
from socle.store.schema import resource
from tests.conftest import REPO

runner = CliRunner()


def count(database_url: str, resource_type: str | None = None) -> int:
    engine = make_engine(database_url)
    query = select(func.count()).select_from(resource).where(resource.c.deleted.is_(False))
    if resource_type:
        query = query.where(resource.c.resource_type == resource_type)
    with engine.connect() as conn:
        value = conn.scalar(query)
    engine.dispose()
    return int(value or 0)


def test_db_upgrade(database_url: str) -> None:
    result = runner.invoke(app, ["db", "upgrade", "--database", database_url])
    assert result.exit_code == 0, result.output
    assert count(database_url) == 0


def test_load_synthea_archive(database_url: str) -> None:
    result = runner.invoke(
        app,
        ["load", str(REPO / "data" / "synthea" / "synthea-r4-25-patients.tgz"), "--database", database_url],
    )
    assert result.exit_code == 0, result.output
    assert "2036 resources loaded, 0 rejected" in result.output
    assert count(database_url, "Patient") == 21
    assert count(database_url) == 2036


def test_load_ndjson_collection_and_rejects(database_url: str, tmp_path: Path) -> None:
    # Files in any order: the Observation refers to a Patient loaded from a later file.
    observations = tmp_path / "a-Observation.ndjson.gz"
    lines = [
        {
            "resourceType": "Observation",
            "id": "o1",
            "status": "final",
            "code": {"text": "pouls"},
            "subject": {"reference": "Patient/p1"},
        },
        {"resourceType": "Observation", "id": "o2", "status": "bogus", "code": {"text": "x"}},
    ]
    observations.write_bytes(gzip.compress(b"\n".join(orjson.dumps(x) for x in lines) + b"\nnot json\n"))
    collection = tmp_path / "b-patients.json"
    collection.write_bytes(
        orjson.dumps(
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": {"resourceType": "Patient", "id": "p1"}}],
            }
        )
    )
    result = runner.invoke(app, ["load", str(observations), str(collection), "--database", database_url])
    assert result.exit_code == 0, result.output
    assert "2 resources loaded, 2 rejected" in result.output
    assert "a-Observation.ndjson.gz:2" in result.output and "a-Observation.ndjson.gz:3" in result.output
    assert count(database_url, "Observation") == 1 and count(database_url, "Patient") == 1
