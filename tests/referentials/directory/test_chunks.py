"""The person file read and mapped in a child process gives the same import as in-process reading."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from socle.referentials.directory import DirectoryImporter
from socle.referentials.directory._chunks import mapped_chunks, mapped_chunks_in_child
from socle.store.repository import Store
from socle.store.schema import resource_history
from tests.referentials.directory._lines import RPPS, activity_line, write_file

OTHER_RPPS = "99700218896"


def _lines() -> list[str]:
    return [
        activity_line(siret="73282932000074"),
        activity_line(identifier=OTHER_RPPS, family="NOËL", given="Zoé", tech="C0000000002"),
        "8|123|8123|bad|line",  # wrong field count
        activity_line(identifier="1234"),  # bad RPPS
        activity_line(skill="SM57", skill_label="Allergologie", siret="73282932000074"),  # Hélène again
        "",  # blank: not a line of data
        activity_line(identifier=OTHER_RPPS, family="NOËL", given="Zoé", tech="C0000000002", skill="SM40"),
    ]


def _versions(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(resource_history)).scalar_one())


def test_chunks_close_between_persons_and_group_a_persons_lines(tmp_path: Path) -> None:
    path = write_file(tmp_path / "people.txt", _lines())
    chunks = list(mapped_chunks(path, 2, set()))
    assert sum(c.size for c in chunks) == path.stat().st_size  # every byte counted for the progress bar
    assert sum(c.lines for c in chunks) == 6 and sum(c.accepted for c in chunks) == 4
    assert [n for c in chunks for n, _ in c.errors] == [4, 5]  # editor line numbers (header = 1)
    # 2 lines per chunk at least, closed only before a new person: Hélène's and Zoé's later lines
    # join the chunk where they already are, so each person maps once, from all their lines
    assert len(chunks) == 1
    [helene] = [b for b in chunks[0].people if b["id"] == f"ps-8{RPPS}"]
    assert {c["code"] for q in helene["qualification"] for c in q["code"]["coding"]} == {"10", "SM54", "SM57"}
    # the same site is mapped once per run, whatever the number of lines naming it
    assert [b["id"] for b in chunks[0].structures if b["resourceType"] == "Organization"] == [
        "siret-73282932000074",
        "tech-C0000000002",
    ]


def test_chunks_skip_the_structures_already_written(tmp_path: Path) -> None:
    path = write_file(tmp_path / "people.txt", _lines())
    [chunk] = mapped_chunks(path, 2000, {"siret-73282932000074"})
    assert [b["id"] for b in chunk.structures if b["resourceType"] == "Organization"] == ["tech-C0000000002"]


def test_child_reader_gives_the_same_chunks(tmp_path: Path) -> None:
    path = write_file(tmp_path / "people.txt", _lines(), encoding="cp1252")
    here = list(mapped_chunks(path, 1, set()))
    there = list(mapped_chunks_in_child(path, 1, set()))
    assert there == here and len(here) == 4  # a new chunk before each person not already in it
    assert sum(c.non_utf8 for c in there) == 5  # the ASCII bad line decodes as UTF-8


def test_stopping_early_ends_the_child(tmp_path: Path) -> None:
    path = write_file(tmp_path / "people.txt", _lines() * 20)
    reader = mapped_chunks_in_child(path, 1, set())
    assert next(reader).people
    reader.close()  # the child, blocked on a full queue, is terminated: close returns


def test_child_reader_failure_is_raised(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="FileNotFoundError"):
        list(mapped_chunks_in_child(tmp_path / "missing.txt", 10, set()))


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"])
def test_import_through_the_child_reader(engine: Engine, tmp_path: Path, encoding: str) -> None:
    store = Store(engine)
    path = write_file(tmp_path / "people.txt", _lines(), encoding=encoding)
    [report] = DirectoryImporter(store, parallel=True).import_files([path])
    assert (report.lines, report.accepted, report.rejected) == (6, 4, 2)
    assert [n for n, _ in report.errors] == [4, 5]
    assert "expected 52 fields" in report.errors[0][1] and "RPPS '1234'" in report.errors[1][1]
    assert report.non_utf8_lines == (5 if encoding == "cp1252" else 0)
    assert report.counts.created == {
        "Practitioner": 2,
        "PractitionerRole": 2,
        "Organization": 2,
        "Location": 2,
    }
    versions = _versions(engine)
    # the same file again, read in this process: nothing rewritten, nobody end-dated
    [again] = DirectoryImporter(store, parallel=False).import_files([path])
    assert not again.counts.created and not again.counts.updated and not again.end_dated
    assert _versions(engine) == versions
    # and again through the child, now without Zoé: she is end-dated, not deleted
    alone = write_file(tmp_path / "alone.txt", _lines()[:1])
    [last] = DirectoryImporter(store, parallel=True).import_files([alone])
    assert last.end_dated == {"Practitioner": 1, "PractitionerRole": 1}
    assert last.counts.updated == {"Practitioner": 1, "PractitionerRole": 1}  # Hélène without SM57
