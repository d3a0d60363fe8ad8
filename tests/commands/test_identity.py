"""`socle ins check`, `socle mpi index|duplicates|merge|unmerge` and `socle demo generate`, in-process."""

from __future__ import annotations

from pathlib import Path

import orjson
from sqlalchemy import func, select
from typer.testing import CliRunner

from socle.cli import app
from socle.referentials.identity.registry_schema import ins_registry, mpi_traits
from socle.store.engine import make_engine
from socle.store.schema import resource

runner = CliRunner()


def scalar(database_url: str, query: object) -> int:
    engine = make_engine(database_url)
    with engine.connect() as conn:
        value = conn.scalar(query)  # type: ignore[call-overload]
    engine.dispose()
    return int(value or 0)


def test_ins_check_valid_and_invalid() -> None:
    result = runner.invoke(app, ["ins", "check", "1 85 07 2A 004 123 88"])
    assert result.exit_code == 0, result.output
    assert "Ajaccio" in result.output and "male" in result.output and "2A" in result.output
    abroad = runner.invoke(app, ["ins", "check", "295109912611193"])
    assert abroad.exit_code == 0 and "born abroad" in abroad.output
    bad = runner.invoke(app, ["ins", "check", "284058832102530"])
    assert bad.exit_code == 1 and "(key)" in bad.output and "expected 32" in bad.output


def test_demo_generate_then_mpi_commands(database_url: str, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = runner.invoke(
        app,
        [
            "demo",
            "generate",
            "--patients",
            "400",
            "--seed",
            "7",
            "--database",
            database_url,
            "--out",
            str(out),
            "--clinical",
            "3",
            "--queries",
            "50",
            "--professionals",
            "80",
        ],
    )
    assert result.exit_code == 0, result.output
    patients = [orjson.loads(line) for line in (out / "Patient.ndjson").read_bytes().splitlines()]
    duplicates = [orjson.loads(line) for line in (out / "duplicates-truth.ndjson").read_bytes().splitlines()]
    queries = [orjson.loads(line) for line in (out / "match-benchmark.ndjson").read_bytes().splitlines()]
    assert len(patients) == 400 + len(duplicates) and len(queries) == 50
    assert {q["kind"] for q in queries} <= {"positive", "negative", "homonym"}
    assert all(p["generalPractitioner"][0]["reference"].startswith("Practitioner/ps-") for p in patients)
    stored = scalar(
        database_url, select(func.count()).select_from(resource).where(resource.c.resource_type == "Patient")
    )
    assert stored == len(patients)
    assert scalar(database_url, select(func.count()).select_from(mpi_traits)) == len(patients)
    assert scalar(database_url, select(func.count()).select_from(ins_registry)) >= 400
    clinical = scalar(
        database_url,
        select(func.count())
        .select_from(resource)
        .where(resource.c.resource_type.not_in(["Patient", "Practitioner", "Organization"])),
    )
    assert clinical > 0

    rebuilt = runner.invoke(app, ["mpi", "index", "--database", database_url])
    assert rebuilt.exit_code == 0 and f"{len(patients)} Patients indexed" in rebuilt.output
    report = tmp_path / "pairs.ndjson"
    found = runner.invoke(app, ["mpi", "duplicates", "--database", database_url, "--out", str(report)])
    assert found.exit_code == 0, found.output
    pairs = {frozenset((p["a"], p["b"])) for p in map(orjson.loads, report.read_bytes().splitlines())}
    truth = {frozenset((d["a"], d["b"])) for d in duplicates}
    assert len(pairs & truth) >= 0.8 * len(truth)

    a, b = sorted(next(iter(pairs & truth)) if pairs & truth else (patients[1]["id"], patients[0]["id"]))
    merged = runner.invoke(app, ["mpi", "merge", b, a, "--database", database_url])
    assert merged.exit_code == 0, merged.output
    again = runner.invoke(app, ["mpi", "merge", b, a, "--database", database_url])
    assert again.exit_code == 1 and "already merged" in again.output
    undone = runner.invoke(app, ["mpi", "unmerge", b, "--database", database_url])
    assert undone.exit_code == 0, undone.output


def test_demo_generate_files_only(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "demo",
            "generate",
            "--patients",
            "30",
            "--no-database",
            "--out",
            str(tmp_path),
            "--clinical",
            "0",
            "--queries",
            "10",
        ],
    )
    assert result.exit_code == 0, result.output
    registry = (tmp_path / "ins-registry.ndjson").read_bytes().splitlines()
    assert len(registry) == 30 and orjson.loads(registry[0])["kind"] in ("INS-NIR-DEMO", "INS-NIA")
    assert runner.invoke(app, ["demo", "generate", "--no-database"]).exit_code == 2
