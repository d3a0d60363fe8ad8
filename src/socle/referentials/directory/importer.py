"""`socle directory import`: stream the public extractions into FHIR resources, idempotently.

- Streaming: lines are read one at a time (`_lines.read_lines`) and written in batches of about
  `batch_lines` lines, one store transaction per batch; a batch only closes between two persons, so
  all the lines of one idNat_PS (the file lists them together) map to one Practitioner at once.
  A large person file is read and mapped by a child process while this one writes (`_chunks`).
- Bad lines never stop an import: each is counted and reported with its number and reason.
- Idempotent: ids come from national identifiers and unchanged resources are not rewritten
  (`_upsert`). People and roles absent from a *full* extraction are end-dated (Practitioner
  `active=false`, PractitionerRole `active=false` + `period.end`), never deleted; FINESS
  establishments absent from a full FINESS file become inactive the same way.
- Ownership: the FINESS file is the authority on structures; the person file creates the sites it
  names but never overwrites a structure the FINESS import wrote.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from sqlalchemy import Connection

from socle.fhir.query import parse_query
from socle.referentials.directory import mapping
from socle.referentials.directory._chunks import MappedChunk, mapped_chunks, mapped_chunks_in_child
from socle.referentials.directory._lines import Line, first_line, read_lines
from socle.referentials.directory._upsert import Merge, Resource, UpsertCounts, Upserter, strip_server_meta
from socle.referentials.directory.extraction import LineError, is_activity_header
from socle.referentials.directory.finess_file import (
    Establishment,
    FinessLayout,
    finess_layout,
    lambert93_to_wgs84,
    parse_establishment,
    parse_geolocation,
)
from socle.referentials.directory.mailboxes import MSSANTE_TAG, apply_mailboxes, extraction_addresses
from socle.referentials.directory.mssante_file import is_mssante_header
from socle.referentials.directory.mssante_import import MailboxIndex
from socle.referentials.directory.search_params import ensure_search_parameters
from socle.store.access import SYSTEM
from socle.store.indexes import INDEX_TABLES
from socle.store.positions import idx_position
from socle.store.repository import Store
from socle.store.search import compile_search

__all__ = ["DirectoryImporter", "FileReport", "MAX_REPORTED_ERRORS"]

MAX_REPORTED_ERRORS = 10_000  # rejected lines kept with their reason; all are counted
# A person file at least this large is read and mapped by a child process (~12,000 lines; below, the
# child's start-up, about a second of CPU, costs more than it saves).
PARALLEL_BYTES = 4 << 20
Progress = Callable[[int], None]


@dataclass
class FileReport:
    path: Path
    kind: str = "unknown"  # "activity", "finess" or "mssante"
    lines: int = 0  # data lines read (header excluded)
    accepted: int = 0
    rejected: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    warnings: int = 0
    warning_examples: list[tuple[int, str]] = field(default_factory=list)
    non_utf8_lines: int = 0
    counts: UpsertCounts = field(default_factory=UpsertCounts)
    end_dated: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    failure: str | None = None  # the whole file could not be read
    notes: list[str] = field(default_factory=list)

    def reject(self, number: int, reason: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append((number, reason))

    def warn(self, number: int, messages: Iterable[str]) -> None:
        for message in messages:
            self.warnings += 1
            if len(self.warning_examples) < 100:
                self.warning_examples.append((number, message))

    @property
    def lines_per_second(self) -> float:
        return self.lines / self.seconds if self.seconds else 0.0


class DirectoryImporter:
    def __init__(
        self,
        store: Store,
        *,
        batch_lines: int = 2000,
        full: bool = True,
        today: date | None = None,
        parallel: bool | None = None,
    ) -> None:
        """`parallel`: read and map the person file in a child process (None: when it is large)."""
        self.store = store
        self.batch_lines = batch_lines
        self.parallel = parallel
        self.full = full
        self.today = (today or date.today()).isoformat()
        self.upserter = Upserter(store)
        # ids written by this run: structures are shared by many lines, persons must not be
        # end-dated when a later file of the same run lists them.
        self._seen: dict[str, set[str]] = {}
        self._structures: set[str] = set()
        # The MSSanté extraction of this run, read before the other files (None: not in the run).
        self._mailboxes: MailboxIndex | None = None

    # -- entry point ---------------------------------------------------------------------------

    def import_files(self, paths: Sequence[Path], progress: Progress | None = None) -> list[FileReport]:
        """Import every file (kind told by its header), then end-date what full files no longer list.

        The MSSanté extraction is read first, so that the other files write their resources with
        their mailboxes in; FINESS files go next: the structures then exist when the person file
        names them, instead of being written from the person file and rewritten by the FINESS file
        (the slow update path). The mailboxes of resources already stored are set at the end.
        """
        with _rare_collections():
            return self._import_files(paths, progress)

    def _import_files(self, paths: Sequence[Path], progress: Progress | None) -> list[FileReport]:
        reports = []
        with self.store.write() as conn:
            ensure_search_parameters(self.store, conn)
        for path in sorted(paths, key=_file_order):
            report = FileReport(Path(path))
            started = time.perf_counter()
            header = first_line(report.path) if report.path.exists() else ""
            layout = finess_layout(header)
            if not report.path.exists():
                report.failure = "file not found"
            elif is_activity_header(header):
                report.kind = "activity"
                self._import_activities(report, progress)
            elif layout is not None:
                report.kind = "finess"
                self._import_finess(report, layout, progress)
            elif is_mssante_header(header):
                report.kind = "mssante"
                self._read_mailboxes(report, progress)
            else:
                report.failure = (
                    "not a known extraction: header is neither the person/activity file, FINESS"
                    " nor the MSSanté extraction"
                )
            report.seconds = time.perf_counter() - started
            reports.append(report)
        self._set_mailboxes(reports)
        if self.full:
            self._end_date(reports)
        if sum(sum(r.counts.created.values()) + sum(r.counts.updated.values()) for r in reports) >= 1000:
            self._refresh_statistics()
        return reports

    def _refresh_statistics(self) -> None:
        """ANALYZE (and on PostgreSQL VACUUM) the tables a bulk import filled, for the planners.

        PostgreSQL's autovacuum analyzes late (and the migration analyzed them empty): measured on
        100,000 lines, a name search took 19 s before and 40 ms after. SQLite has no statistics
        until ANALYZE: at a million lines an identifier search took 190 ms before, 2 ms after.

        PostgreSQL also gets a VACUUM of the searched tables: freshly inserted rows are not yet
        "all visible", so an index-only scan of `idx_token` still visits the heap for every row
        (measured, 20 k lines: 6,328 rows of a specialty, 2,881 heap blocks, 346 ms; after VACUUM
        0 heap fetches, 1 ms). VACUUM cannot run in a transaction: autocommit connection.
        """
        # idx_position too: `$near` and `Location?near=` read it (one row per positioned Location).
        names = ["resource", "resource_history", *(table.name for table in INDEX_TABLES), idx_position.name]
        with self.store.engine.connect() as conn:
            if self.store.engine.dialect.name == "postgresql":
                searched = [n for n in names if n != "resource_history"]
                conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.exec_driver_sql(f"VACUUM (ANALYZE) {', '.join(searched)}")
                conn.exec_driver_sql("ANALYZE resource_history")
            else:  # sampled statistics: seconds, even on a 12 GB file
                conn.exec_driver_sql("PRAGMA analysis_limit=1000")
                for name in names:
                    conn.exec_driver_sql(f"ANALYZE {name}")
            conn.commit()

    # -- person / activity file ---------------------------------------------------------------

    def _import_activities(self, report: FileReport, progress: Progress | None) -> None:
        in_child = (
            self.parallel if self.parallel is not None else report.path.stat().st_size >= PARALLEL_BYTES
        )
        read = mapped_chunks_in_child if in_child else mapped_chunks
        for chunk in read(report.path, self.batch_lines, set(self._structures)):
            report.lines += chunk.lines
            report.accepted += chunk.accepted
            report.non_utf8_lines += chunk.non_utf8
            for number, reason in chunk.errors:
                report.reject(number, reason)
            for number, messages in chunk.warnings:
                report.warn(number, messages)
            if chunk.people:
                self._write_people(report, chunk)
            if progress is not None:
                progress(chunk.size)

    def _count(self, report: FileReport, line: Line) -> Line | None:
        if not line.text.strip():
            return None
        report.lines += 1
        if line.encoding != "utf-8":
            report.non_utf8_lines += 1
        return line

    def _write_people(self, report: FileReport, chunk: MappedChunk) -> None:
        # Written earlier in this run: the file listed this person's lines in two places.
        repeated: set[str] = set()
        for body in chunk.people:
            seen = self._seen.setdefault(body["resourceType"], set())
            if body["id"] in seen:
                repeated.add(body["id"])
            seen.add(body["id"])
        self._structures.update(body["id"] for body in (*chunk.legal, *chunk.structures))

        def merge(existing: Resource, new: Resource) -> Resource | None:
            return _merge_repeated(existing, new) if new["id"] in repeated else new

        # One lookup of every id of the chunk, one bulk insert of what is new, one transaction.
        merges: dict[tuple[str, str], Merge] = {}
        for body in chunk.legal:
            merges[(body["resourceType"], body["id"])] = _create_only
        for body in chunk.structures:
            merges[(body["resourceType"], body["id"])] = _finess_wins
        with self.store.write() as conn:
            bodies = [*chunk.legal, *chunk.structures, *chunk.people]
            report.counts.add(self._upsert(conn, bodies, merge, merges))

    # -- FINESS establishments ----------------------------------------------------------------

    def _import_finess(self, report: FileReport, layout: FinessLayout, progress: Progress | None) -> None:
        positions = self._geolocations(report.path) if layout.raw else {}
        batch: list[Resource] = []
        size = 0
        seen = self._seen.setdefault("Organization", set())
        for line in read_lines(report.path):
            size += line.size
            if (
                line.number == 1 and not line.text.lower().startswith("structureet")
            ) or not line.text.strip():
                continue
            if layout.raw and not line.text[:11].lower().startswith("structureet"):
                continue  # geolocalisation and other record kinds: not establishments
            if self._count(report, line) is None:
                continue
            try:
                establishment = parse_establishment(line.text, layout)
            except LineError as error:
                report.reject(line.number, str(error))
                continue
            if establishment is None:
                continue
            report.accepted += 1
            report.warn(line.number, establishment.warnings)
            position = _position(establishment, positions.get(establishment.finess))
            batch.extend(mapping.establishment_resources(establishment, position))
            seen.add(f"finess-{establishment.finess}")
            if establishment.legal_finess:  # its legal entity is listed too: not to be end-dated
                seen.add(f"finess-{establishment.legal_finess}")
            if len(batch) >= 2 * self.batch_lines:
                self._write_structures(report, batch)
                batch = []
                if progress is not None:
                    progress(size)
                    size = 0
        if batch:
            self._write_structures(report, batch)
        if progress is not None:
            progress(size)

    def _geolocations(self, path: Path) -> dict[str, tuple[float, float, str]]:
        """First pass over a raw file: its `geolocalisation` lines come after every establishment."""
        found: dict[str, tuple[float, float, str]] = {}
        for line in read_lines(path):
            if line.text[:15].lower() == "geolocalisation":
                parsed = parse_geolocation(line.text)
                if parsed is not None:
                    found[parsed[0]] = parsed[1:]
        return found

    def _write_structures(self, report: FileReport, resources: list[Resource]) -> None:
        legal = [
            r for r in resources if r["resourceType"] == "Organization" and "partOf" not in r and _is_legal(r)
        ]
        others = [r for r in resources if not (r["resourceType"] == "Organization" and _is_legal(r))]
        legal = [r for r in legal if r["id"] not in self._structures]
        self._structures.update(r["id"] for r in legal)
        merges: dict[tuple[str, str], Merge] = {(r["resourceType"], r["id"]): _create_only for r in legal}
        with self.store.write() as conn:
            report.counts.add(self._upsert(conn, [*legal, *others], None, merges))

    def _upsert(
        self,
        conn: Connection,
        bodies: list[Resource],
        merge: Merge | None,
        merges: dict[tuple[str, str], Merge],
    ) -> UpsertCounts:
        """Write a chunk; MSSanté mailboxes: this run's extraction sets them, else the stored ones stay."""
        index = self._mailboxes
        if index is not None:
            bodies = [index.with_mailboxes(b) for b in bodies]
            if index.full:  # this run's extraction says which mailboxes each resource has
                return self.upserter.write(conn, bodies, merge, merges)
        return self.upserter.write(
            conn, bodies, _keeping_mailboxes(merge), {k: _keeping_mailboxes(m) for k, m in merges.items()}
        )

    # -- MSSanté extraction -------------------------------------------------------------------

    def _read_mailboxes(self, report: FileReport, progress: Progress | None) -> None:
        index = self._mailboxes = self._mailboxes or MailboxIndex(full=self.full)
        size = 0
        for line in read_lines(report.path):
            size += line.size
            if line.number == 1 or self._count(report, line) is None:
                continue
            try:
                index.add_line(line.number, line.text)
            except LineError as error:
                report.reject(line.number, str(error))
                continue
            report.accepted += 1
            if size >= 1 << 20 and progress is not None:
                progress(size)
                size = 0
        if progress is not None:
            progress(size)
        if index.unattached:
            report.notes.append(
                f"{index.unattached} personal mailboxes without a national identifier (no professional"
                " to carry them) were not imported"
            )

    def _set_mailboxes(self, reports: list[FileReport]) -> None:
        index = self._mailboxes
        report = next((r for r in reports if r.kind == "mssante" and r.failure is None), None)
        if index is None or report is None:
            return
        if index.full and (report.accepted == 0 or report.rejected > report.accepted):
            index.full = False  # a mostly unreadable file does not say that every mailbox closed
            report.notes.append("closing mailboxes skipped: the MSSanté file is mostly unreadable")
        started = time.perf_counter()
        tagged: list[tuple[str, str]] = []
        if index.full:
            tag = f"{MSSANTE_TAG['system']}|{MSSANTE_TAG['code']}"
            for rt in ("Practitioner", "Organization"):
                tagged.extend((rt, id_) for id_ in self._owned_ids(rt, [("_tag", tag)]))

        def unknown_target(number: int, reason: str) -> None:  # read fine, but names no one
            report.accepted -= 1
            report.reject(number, reason)

        report.counts.add(index.apply(self.store, self.upserter, tagged, unknown_target))
        report.errors.sort()
        report.seconds += time.perf_counter() - started

    # -- end-dating ---------------------------------------------------------------------------

    def _end_date(self, reports: list[FileReport]) -> None:
        """Deactivate what the run's full files own but no longer list (never deletes anything)."""
        kinds = {r.kind for r in reports if r.failure is None}
        for kind in sorted(kinds):
            mine = [r for r in reports if r.kind == kind]
            accepted, rejected = sum(r.accepted for r in mine), sum(r.rejected for r in mine)
            if accepted == 0 or rejected > accepted:
                # A file that is mostly unreadable is not a statement that everyone left.
                mine[0].notes.append(f"end-dating skipped: {rejected} rejected lines for {accepted} accepted")
                kinds.discard(kind)
        plans: list[tuple[FileReport, str, str, list[tuple[str, str]]]] = []
        if "activity" in kinds:
            report = next(r for r in reports if r.kind == "activity")
            for rt in ("Practitioner", "PractitionerRole"):
                plans.append((report, rt, rt, [("_source", mapping.SOURCE_RPPS), ("active", "true")]))
        if "finess" in kinds:
            report = next(r for r in reports if r.kind == "finess")
            plans.append(
                (
                    report,
                    "Organization",
                    "Organization",
                    [("_source", mapping.SOURCE_FINESS), ("active", "true")],
                )
            )
        for report, rt, seen_key, criteria in plans:
            seen = self._seen.get(seen_key, set())
            gone = [id_ for id_ in self._owned_ids(rt, criteria) if id_ not in seen]
            if not gone:
                continue
            for start in range(0, len(gone), 2000):
                chunk = gone[start : start + 2000]
                with self.store.write() as conn:
                    current = self.upserter.existing(conn, rt, chunk)
                    ended = [_ended(body, self.today) for body in current.values()]
                    if rt == "Organization":  # their Locations and HealthcareServices follow
                        places = self.upserter.existing(conn, "Location", list(current))
                        ended.extend({**strip_server_meta(b), "status": "inactive"} for b in places.values())
                        services = self.upserter.existing(conn, "HealthcareService", list(current))
                        ended.extend(_ended(body, self.today) for body in services.values())
                    if ended:
                        self.store.update_many(conn, ended)
            report.end_dated[rt] = len(gone)

    def _owned_ids(self, resource_type: str, criteria: list[tuple[str, str]]) -> Iterator[str]:
        statement = compile_search(parse_query(resource_type, criteria, strict=True), SYSTEM)
        with self.store.read() as conn:
            ids = [str(row[1]) for row in conn.execute(statement)]
        yield from ids


@contextmanager
def _rare_collections() -> Iterator[None]:
    """Collect garbage less often during an import: each chunk allocates thousands of short-lived
    dicts, and the default thresholds ran full collections over every long-lived object (the FHIR
    definitions, the communes…) about once per 500 lines: half the CPU of a re-import, measured."""
    before = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _file_order(path: Path) -> int:
    """Sort key: MSSanté (0), FINESS (1), the rest (2); a stable sort keeps the given order otherwise."""
    try:
        header = first_line(Path(path))
    except OSError:
        return 2
    if is_mssante_header(header):
        return 0
    return 1 if finess_layout(header) is not None else 2


def _keeping_mailboxes(merge: Merge | None) -> Merge:
    """`merge`, then the stored MSSanté mailboxes carried over (a run without a full MSSanté file)."""

    def merged(existing: Resource, new: Resource) -> Resource | None:
        target = merge(existing, new) if merge is not None else new
        if target is None:
            return None
        kept = [*extraction_addresses(existing), *extraction_addresses(target)]
        return apply_mailboxes(target, kept) if kept else target  # most resources have none

    return merged


def _is_legal(resource: Resource) -> bool:
    return any(
        c.get("code") == "FINEJ"
        for i in resource.get("identifier", ())
        for c in i.get("type", {}).get("coding", ())
    )


def _position(e: Establishment, geo: tuple[float, float, str] | None) -> tuple[float, float] | None:
    """WGS 84 position of an establishment from its Lambert 93 coordinates (metropolitan France only)."""
    x, y, source = (geo[0], geo[1], geo[2]) if geo else (e.x, e.y, e.coordinate_source)
    if x is None or y is None:
        return None
    if source and "LAMBERT_93" not in source.upper().replace(" ", "_") and geo is not None:
        return None  # overseas projections (UTM…): fall back to the commune's centre
    return lambert93_to_wgs84(x, y)


def _ended(body: Resource, today: str) -> Resource:
    ended = strip_server_meta(body)
    ended["active"] = False
    if body["resourceType"] == "PractitionerRole":
        ended["period"] = {**(body.get("period") or {}), "end": today}
    return ended


def _create_only(_existing: Resource, _new: Resource) -> Resource | None:
    return None


def _finess_wins(existing: Resource, new: Resource) -> Resource | None:
    """The person file never overwrites a structure that the FINESS import owns."""
    if (existing.get("meta") or {}).get("source") == mapping.SOURCE_FINESS:
        return None
    return new


def _merge_repeated(existing: Resource, new: Resource) -> Resource:
    """A person (or role) met twice in one run: keep what both sets of lines said."""
    merged = dict(new)
    for key in ("qualification", "telecom", "specialty", "code"):
        union = list(new.get(key, [])) + [v for v in existing.get(key, []) if v not in new.get(key, [])]
        if union:
            merged[key] = union
    return merged
