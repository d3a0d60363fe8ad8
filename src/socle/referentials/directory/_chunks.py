"""The person/activity file as a stream of mapped chunks, read here or in a child process.

Reading, parsing and mapping a line needs no database, so on a large file a child process does it
while the importer's process writes the previous chunk (the store's write path is the other core's
work). A chunk closes between two persons once it holds `batch_lines` lines, and all the lines of one
idNat_PS inside a chunk map to one Practitioner, even when the file does not list them together.

A chunk crosses the process boundary pickled (measured: 17 µs a line to unpickle, against 25 µs for
orjson, 53 µs to parse and map), through a bounded queue: the child reads at most a few chunks
ahead, so memory stays flat.
"""

from __future__ import annotations

import gc
import multiprocessing
import queue
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from socle.referentials.directory import mapping
from socle.referentials.directory._lines import read_lines
from socle.referentials.directory.extraction import Activity, LineError, parse_activity

__all__ = ["MappedChunk", "mapped_chunks", "mapped_chunks_in_child"]

Resource = dict[str, Any]
_AHEAD = 3  # chunks the child may have ready before the writer takes them
_POLL_SECONDS = 1.0  # how often a waiting writer checks that the child is still alive


@dataclass
class MappedChunk:
    legal: list[Resource] = field(default_factory=list)  # FINESS legal entities named for the first time
    structures: list[Resource] = field(default_factory=list)  # site Organization + Location, first time
    people: list[Resource] = field(default_factory=list)  # Practitioner and PractitionerRole
    lines: int = 0  # data lines read, blank lines aside
    accepted: int = 0
    non_utf8: int = 0
    size: int = 0  # bytes read, for the progress bar
    errors: list[tuple[int, str]] = field(default_factory=list)
    warnings: list[tuple[int, list[str]]] = field(default_factory=list)


def mapped_chunks(path: Path, batch_lines: int, structures: set[str]) -> Iterator[MappedChunk]:
    """Stream the file's chunks; `structures`: ids already written this run (updated as sites appear)."""
    people: dict[str, list[Activity]] = {}  # idNat_PS -> its lines in this chunk, in file order
    chunk = MappedChunk()
    pending = 0
    for line in read_lines(path):
        chunk.size += line.size
        if line.number == 1 or not line.text.strip():
            continue
        chunk.lines += 1
        if line.encoding != "utf-8":
            chunk.non_utf8 += 1
        try:
            activity = parse_activity(line.text)
        except LineError as error:
            chunk.errors.append((line.number, str(error)))
            continue
        chunk.accepted += 1
        if activity.warnings:
            chunk.warnings.append((line.number, list(activity.warnings)))
        if activity.idnat not in people and pending >= batch_lines:
            yield _mapped(chunk, people, structures)
            chunk, people, pending = MappedChunk(), {}, 0
        people.setdefault(activity.idnat, []).append(activity)
        pending += 1
    yield _mapped(chunk, people, structures)


def _mapped(chunk: MappedChunk, people: dict[str, list[Activity]], structures: set[str]) -> MappedChunk:
    for lines in people.values():
        chunk.people.append(mapping.practitioner(lines))
        by_role: dict[str, list[Activity]] = {}
        for a in lines:
            by_role.setdefault(mapping.role_id(a), []).append(a)
            key = a.structure_key
            if key and key not in structures:
                site = mapping.site_resources(a)
                if site is not None:
                    chunk.structures.extend(site)
                    structures.add(key)
            if a.finess_legal and f"finess-{a.finess_legal}" not in structures:
                chunk.legal.append(mapping.legal_entity(a.finess_legal))
                structures.add(f"finess-{a.finess_legal}")
        chunk.people.extend(mapping.practitioner_role(role_lines) for role_lines in by_role.values())
    return chunk


def mapped_chunks_in_child(path: Path, batch_lines: int, structures: set[str]) -> Iterator[MappedChunk]:
    """`mapped_chunks`, produced by a child process (spawned: no state shared by accident).

    `structures` is not updated here: the caller adds the structures of each chunk it receives.
    If the caller stops early, the child is terminated; if the child dies, this raises.
    """
    context = multiprocessing.get_context("spawn")
    chunks: multiprocessing.Queue[MappedChunk | str | None] = context.Queue(maxsize=_AHEAD)
    child = context.Process(
        target=_produce,
        args=(str(path), batch_lines, structures, chunks),
        name="directory-reader",
        daemon=True,
    )
    child.start()
    finished = False
    try:
        while True:
            try:
                item = chunks.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if not child.is_alive():
                    raise RuntimeError(f"the reader of {path} stopped (exit code {child.exitcode})") from None
                continue
            if item is None:
                finished = True
                break
            if isinstance(item, str):
                raise RuntimeError(f"reading {path} failed in the reader process:\n{item}")
            yield item
    finally:
        if not finished:  # the caller stopped early, or the child failed: it may be blocked on `put`
            child.terminate()
        child.join()
        chunks.close()


def _produce(path: str, batch_lines: int, structures: set[str], chunks: multiprocessing.Queue[Any]) -> None:
    """The child's work: every chunk, then None (or the traceback's text if reading failed)."""
    gc.set_threshold(50_000, 20, 100)  # thousands of short-lived dicts per chunk: collect rarely
    try:
        for chunk in mapped_chunks(Path(path), batch_lines, structures):
            chunks.put(chunk)
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        chunks.put(traceback.format_exc())
        return
    chunks.put(None)
