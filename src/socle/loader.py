"""`socle load`: bring FHIR data files into the store through the same handlers as the API.

Transaction and batch Bundles are processed as a client would send them (a transaction is all or
nothing). Collections, single resources and NDJSON are loaded resource by resource in batches:
`PUT Type/id` when the resource has an id (ids, and so references between files, are kept), else
`POST`. A resource rejected only because a reference points at something not loaded yet is retried
after the rest, so files can come in any order.

Every write is audited as through the API: its AuditEvents (agent: the `socle load` operator, a
system principal) are chained in the write's own transaction, so loaded data never exists without
its audit trail.
"""

from __future__ import annotations

import gzip
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from socle.api import audit
from socle.api.request import Context, FhirRequest, FhirResponse
from socle.api.router import dispatch
from socle.config import get_settings
from socle.fhir.errors import FhirError
from socle.store.access import SYSTEM
from socle.store.engine import make_engine
from socle.store.migrate import upgrade
from socle.store.repository import Store
from socle.trust.principal import SYSTEM_PRINCIPAL, Principal

BATCH_SIZE = 500
BASE_URL = "urn:socle:load"
# The operator running `socle load`: system rights, recorded as `urn:socle:principal|socle-load`.
LOADER = Principal(kind="system", subject="socle-load", scopes=SYSTEM_PRINCIPAL.scopes)


@dataclass
class Summary:
    loaded: int = 0
    rejected: int = 0
    reasons: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Unit:
    """A transaction/batch Bundle as sent, or a list of (label, resource) to load one by one."""

    name: str
    bundle: dict[str, Any] | None = None
    resources: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.bundle.get("entry") or []) if self.bundle else len(self.resources)


def load_paths(paths: list[Path], database_url: str, console: Console) -> Summary:
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        loader = _Loader(Store(engine))
        units = [unit for path in paths for unit in _units(path, loader.summary)]
        total = sum(unit.size for unit in units)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, disable=not console.is_terminal and total == 0) as progress:
            task = progress.add_task("Loading", total=total)
            for unit in units:
                progress.update(task, description=f"Loading {unit.name}")
                loader.load(unit)
                progress.advance(task, unit.size)
            loader.retry_deferred()
        loader.store.analyze()  # fresh planner statistics for what was just loaded
    finally:
        engine.dispose()
    _print_summary(loader.summary, console)
    return loader.summary


class _Loader:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.settings = get_settings()
        self.summary = Summary()
        self.deferred: list[tuple[str, dict[str, Any]]] = []

    def run(self, request: FhirRequest) -> FhirResponse:
        with self.store.write() as conn:
            ctx = Context(self.store, conn, SYSTEM, self.settings, BASE_URL, LOADER)
            response = dispatch(request, ctx)
            audit.append(conn, self.settings, audit.events(request, ctx, response))  # both or neither
            return response

    def load(self, unit: _Unit) -> None:
        if unit.bundle is not None:
            self._load_bundle(unit)
        else:
            for start in range(0, len(unit.resources), BATCH_SIZE):
                self._load_resources(unit.resources[start : start + BATCH_SIZE], defer=True)

    def retry_deferred(self) -> None:
        """Retry resources whose references were missing, while each pass still loads something."""
        while self.deferred:
            pending, self.deferred = self.deferred, []
            before = self.summary.loaded
            for start in range(0, len(pending), BATCH_SIZE):
                self._load_resources(pending[start : start + BATCH_SIZE], defer=True)
            if self.summary.loaded == before:
                for label, _ in self.deferred:
                    self._reject(label, "a reference points at a resource that is not on the server")
                self.deferred = []

    def _load_bundle(self, unit: _Unit) -> None:
        assert unit.bundle is not None
        try:
            response = self.run(FhirRequest("POST", "", body=unit.bundle))
        except FhirError as error:
            self._reject(unit.name, error.diagnostics, unit.size)
            return
        for position, entry in enumerate(response.body.get("entry", [])):
            status = entry.get("response", {}).get("status", "")
            if status[:1] == "2":
                self.summary.loaded += 1
            else:
                self._reject(f"{unit.name} entry {position}", _diagnostics(entry))

    def _load_resources(self, items: list[tuple[str, dict[str, Any]]], *, defer: bool) -> None:
        entries = []
        for _, resource in items:
            has_id = isinstance(resource.get("id"), str)
            url = (
                f"{resource.get('resourceType')}/{resource['id']}"
                if has_id
                else str(resource.get("resourceType"))
            )
            entries.append(
                {"resource": resource, "request": {"method": "PUT" if has_id else "POST", "url": url}}
            )
        batch = {"resourceType": "Bundle", "type": "batch", "entry": entries}
        response = self.run(FhirRequest("POST", "", [], {"prefer": "return=minimal"}, batch))
        for (label, resource), entry in zip(items, response.body["entry"], strict=True):
            if entry["response"]["status"][:1] == "2":
                self.summary.loaded += 1
                continue
            reason = _diagnostics(entry)
            if defer and "does not exist on this server" in reason:
                self.deferred.append((label, resource))
            else:
                self._reject(label, reason)

    def _reject(self, label: str, reason: str, count: int = 1) -> None:
        self.summary.rejected += count
        self.summary.reasons.append((label, reason))


def _diagnostics(entry: dict[str, Any]) -> str:
    issues = entry.get("response", {}).get("outcome", {}).get("issue", [])
    return "; ".join(i.get("diagnostics", i.get("code", "")) for i in issues) or entry.get(
        "response", {}
    ).get("status", "")


def _units(path: Path, summary: Summary) -> Iterator[_Unit]:
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            if child.is_file():
                yield from _units(child, summary)
        return
    name = path.name.lower()
    if name.endswith((".tgz", ".tar.gz")):
        with tarfile.open(path, "r:gz") as tar:
            for member in sorted(tar.getmembers(), key=lambda m: m.name):
                handle = tar.extractfile(member) if member.isfile() else None
                if handle is not None:
                    yield from _parse(f"{path.name}:{member.name}", handle.read(), summary)
        return
    if name.endswith((".json", ".ndjson", ".json.gz", ".ndjson.gz", ".jsonl")):
        raw = path.read_bytes()
        yield from _parse(str(path), gzip.decompress(raw) if name.endswith(".gz") else raw, summary)


def _parse(label: str, raw: bytes, summary: Summary) -> Iterator[_Unit]:
    name = label.lower().removesuffix(".gz")
    if name.endswith((".ndjson", ".jsonl")):
        resources = []
        for number, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                resources.append((f"{label}:{number}", orjson.loads(line)))
            except orjson.JSONDecodeError as exc:
                summary.rejected += 1
                summary.reasons.append((f"{label}:{number}", f"not JSON: {exc.msg}"))
        yield _Unit(label, resources=resources)
        return
    if not name.endswith(".json"):
        return
    try:
        content = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        summary.rejected += 1
        summary.reasons.append((label, f"not JSON: {exc.msg}"))
        return
    if (
        isinstance(content, dict)
        and content.get("resourceType") == "Bundle"
        and content.get("type") in ("transaction", "batch")
    ):
        yield _Unit(label, bundle=content)
    elif isinstance(content, dict) and content.get("resourceType") == "Bundle":
        entries = [e.get("resource") for e in content.get("entry") or [] if isinstance(e, dict)]
        yield _Unit(
            label, resources=[(f"{label} entry {i}", r) for i, r in enumerate(entries) if isinstance(r, dict)]
        )
    elif isinstance(content, dict):
        yield _Unit(label, resources=[(label, content)])
    else:
        summary.rejected += 1
        summary.reasons.append((label, "not a FHIR resource (a JSON object)"))


def _print_summary(summary: Summary, console: Console) -> None:
    console.print(f"[bold]{summary.loaded}[/] resources loaded, [bold]{summary.rejected}[/] rejected")
    for label, reason in summary.reasons[:100]:
        # Plain lines, never cut: the label (file:line) is what the operator needs to find the input.
        console.print(f"  rejected {label}: {reason}", markup=False, highlight=False, soft_wrap=True)
    if len(summary.reasons) > 100:
        console.print(f"  ... and {len(summary.reasons) - 100} more")
