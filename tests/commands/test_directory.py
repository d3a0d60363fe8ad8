"""`socle demo directory` and `socle directory import|check` in-process, on both databases."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from socle.cli import app
from socle.fhir.search_params import registry
from tests.referentials.directory._lines import activity_line, write_file


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    yield
    registry().replace_custom([])


def test_demo_then_import_twice(database_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    demo = runner.invoke(app, ["demo", "directory", "--professionals", "60", "--out", str(tmp_path)])
    assert demo.exit_code == 0, demo.output
    files = sorted(str(p) for p in tmp_path.iterdir())
    assert len(files) == 3  # person/activity, FINESS and MSSanté extractions
    first = runner.invoke(app, ["directory", "import", *files, "--database", database_url])
    assert first.exit_code == 0, first.output
    assert "(activity)" in first.output and "(finess)" in first.output and "(mssante)" in first.output
    assert first.output.count(" 0 rejected") == 3
    again = runner.invoke(app, ["directory", "import", *files, "--database", database_url])
    assert again.exit_code == 0
    assert again.output.count("created: -") == 3 and again.output.count("updated: -") == 3


def test_bad_lines_are_reported_not_fatal(database_url: str, tmp_path: Path) -> None:
    path = write_file(tmp_path / "p.txt", [activity_line(), "x|y", activity_line(identifier="12")])
    errors = tmp_path / "errors.csv"
    result = CliRunner().invoke(
        app, ["directory", "import", str(path), "--database", database_url, "--errors", str(errors)]
    )
    assert result.exit_code == 0, result.output
    assert "p.txt:3: expected 52 fields" in result.output and "p.txt:4: RPPS '12'" in result.output
    with open(errors, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        ["file", "line", "reason"],
        [str(path), "3", "expected 52 fields separated by '|', got 2"],
        [str(path), "4", "RPPS '12': expected 11 digits, got 2 characters"],
    ]


def test_unknown_file_fails(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("hello\n")
    result = CliRunner().invoke(app, ["directory", "import", str(path), "--database", database_url])
    assert result.exit_code == 1 and "not a known extraction" in result.output


def test_check() -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["directory", "check", "siret", "73282932000074"]).exit_code == 0
    bad = runner.invoke(app, ["directory", "check", "finess", "12"])
    assert bad.exit_code == 1 and "FINESS" in bad.output
