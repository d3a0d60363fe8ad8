"""Shared pieces of the benchmarks: machine facts, a real server process, Synthea clones, databases.

Nothing here asserts on timings: the scripts print figures, the reader compares them.
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import re
import signal
import socket
import sqlite3
import subprocess
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil  # type: ignore[import-untyped]
import psycopg

ROOT = Path(__file__).resolve().parent.parent
SOCLE = ROOT / ".venv" / "bin" / "socle"
SYNTHEA = ROOT / "data" / "synthea" / "synthea-r4-25-patients.tgz"
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
FHIR_JSON = "application/fhir+json"

_UUID = re.compile(rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


# -- machine and figures ------------------------------------------------------------------------


def machine_lines(pg_url: str | None = None) -> list[str]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_gb = psutil.virtual_memory().total / 2**30
    lines = [
        f"date        {date.today().isoformat()}",
        f"machine     {os.cpu_count()} cores ({model}), {mem_gb:.0f} GiB RAM, {platform.platform()}",
        f"python      {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
        load_line("start"),
    ]
    if pg_url:
        with psycopg.connect(pg_url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        lines.append(f"postgresql  {row[0] if row else '?'} at {pg_url}")
    return lines


def load_line(when: str) -> str:
    """The machine's load average: other work on these few cores skews every figure."""
    one, five, _ = os.getloadavg()
    return f"load avg    {one:.2f} (1 min), {five:.2f} (5 min) at {when}"


class OtherLoad:
    """CPU used by processes other than this benchmark, its children and PostgreSQL during a phase.

    The machine is shared (tests, type checkers...): on two cores any such load skews the figures,
    so each phase prints how many cores the rest of the machine took on average.
    """

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.seconds = 0.0  # CPU seconds used by other processes
        self.wall = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _snapshot() -> dict[int, tuple[float, bool]]:
        me = psutil.Process()
        ours = {me.pid} | {p.pid for p in me.children(recursive=True)}
        snapshot = {}
        for proc in psutil.process_iter(["username", "cpu_times"]):
            times = proc.info["cpu_times"]
            if times is not None:
                mine = proc.pid in ours or proc.info["username"] == "postgres"
                snapshot[proc.pid] = (times.user + times.system, mine)
        return snapshot

    def _run(self) -> None:
        previous = self._snapshot()
        while not self._stop.wait(self.interval):
            current = self._snapshot()
            for pid, (cpu, mine) in current.items():
                if not mine:
                    self.seconds += cpu - previous[pid][0] if pid in previous else cpu
            previous = current

    def __enter__(self) -> OtherLoad:
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.wall = time.perf_counter() - self._t0

    @property
    def cores(self) -> float:
        return self.seconds / self.wall if self.wall else 0.0


def wait_for_quiet(timeout: float, max_cores: float = 0.3, window: float = 3.0) -> str:
    """Wait (at most `timeout` s) until other processes use under `max_cores` over `window` s."""
    t0 = time.perf_counter()
    while True:
        with OtherLoad() as others:
            time.sleep(window)
        waited = time.perf_counter() - t0
        if others.cores < max_cores:
            return f"machine quiet (others {others.cores:.2f} cores) after {waited:.0f} s"
        if waited >= timeout:
            return (
                f"machine still busy after {waited:.0f} s (others {others.cores:.2f} cores): measuring anyway"
            )


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of unsorted values; 0 for an empty list."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the server process -------------------------------------------------------------------------


@dataclass
class Server:
    """`socle serve` in its own process group, with RSS sampled over the process tree."""

    database_url: str
    workers: int = 1
    log_path: Path | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    peak_rss: int = 0  # bytes, summed over the server process and its children
    _stop_sampling: threading.Event = field(default_factory=threading.Event)
    _sampler: threading.Thread | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    def start(self, timeout: float = 120) -> None:
        log = open(self.log_path or os.devnull, "ab")  # noqa: SIM115 (kept open for the process' life)
        self.process = subprocess.Popen(
            [
                str(SOCLE),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--database",
                self.database_url,
                "--workers",
                str(self.workers),
            ],
            stdout=log,
            stderr=log,
            start_new_session=True,
            # The benchmarks measure the FHIR server, not bearer checks: protection off explicitly,
            # whatever the default (bench/auth.py measures the token's cost).
            env={**os.environ, "SOCLE_AUTH_REQUIRED": "false"},
        )
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                response = httpx.get(f"{self.base}/metadata", timeout=5)
                if response.status_code == 200:
                    break
                last = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code >= 500:  # up but broken: no point waiting
                    self.stop()
                    raise RuntimeError(f"GET /fhir/metadata answered {last}\n{self.log_tail()}")
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError(f"server not ready after {timeout}s ({last}):\n{self.log_tail()}")
        self._stop_sampling.clear()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def tree(self) -> list[psutil.Process]:
        assert self.process is not None
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss(self) -> int:
        total = 0
        for proc in self.tree():
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the server process tree."""
        total = 0.0
        for proc in self.tree():
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: the root with one worker, else its python children."""
        procs = self.tree()
        if self.workers == 1:
            return [procs[0].pid] if procs else []
        return [p.pid for p in procs[1:] if "resource_tracker" not in " ".join(p.cmdline())]

    def reset_peak(self) -> None:
        self.peak_rss = self.rss()

    def _sample(self) -> None:
        while not self._stop_sampling.wait(0.1):
            self.peak_rss = max(self.peak_rss, self.rss())

    def stop(self) -> None:
        self._stop_sampling.set()
        if self._sampler is not None:
            self._sampler.join()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- databases ----------------------------------------------------------------------------------


@contextmanager
def pg_schema(pg_url: str, name: str) -> Iterator[str]:
    """A fresh PostgreSQL schema, dropped at the end; yields a URL whose search_path is that schema."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{name}"')
    separator = "&" if "?" in pg_url else "?"
    try:
        yield f"{pg_url}{separator}options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def unique_name(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{random.randrange(16**6):06x}"


# -- Synthea-shaped data ------------------------------------------------------------------------


def patient_templates() -> list[tuple[str, bytes]]:
    """The patient transaction Bundles of the Synthea archive (the hospital and practitioner
    bundles are left out), as compact JSON, sorted by file name."""
    templates = []
    with tarfile.open(SYNTHEA) as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            handle = archive.extractfile(member)
            if handle is None:
                continue
            bundle = orjson.loads(handle.read())
            if bundle["entry"][0]["resource"]["resourceType"] == "Patient":
                templates.append((member.name, orjson.dumps(bundle)))
    return templates


@dataclass
class Dataset:
    bundles: list[bytes]  # transaction Bundles as sent
    rows: list[list[tuple[str, str, bytes]]]  # per bundle: (type, id, resource JSON) for the floor
    resources: int
    templates: int

    @property
    def size_bytes(self) -> int:
        return sum(len(b) for b in self.bundles)


def _fresh_uuid(rng: random.Random) -> bytes:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4)).encode()


def _clone(template: bytes, rng: random.Random) -> dict[str, Any]:
    """Every UUID (fullUrls, ids, urn:uuid references, identifiers made of ids) replaced consistently;
    the Patient's other identifiers (SSN, driver's licence, passport) made fresh too."""
    mapping: dict[bytes, bytes] = {}

    def replace(match: re.Match[bytes]) -> bytes:
        old = match.group(0).lower()
        if old not in mapping:
            mapping[old] = _fresh_uuid(rng)
        return mapping[old]

    bundle: dict[str, Any] = orjson.loads(_UUID.sub(replace, template))
    for entry in bundle["entry"]:
        body = entry["resource"]
        if body["resourceType"] != "Patient":
            continue
        for identifier in body.get("identifier", []):
            system = identifier.get("system", "")
            if system.endswith("us-ssn"):
                identifier["value"] = f"999-{rng.randrange(100):02d}-{rng.randrange(10000):04d}"
            elif system.startswith("urn:oid:2.16.840.1.113883.4.3"):
                identifier["value"] = f"S99{rng.randrange(10**6):06d}"
            elif system.endswith("passportNumber"):
                identifier["value"] = f"X{rng.randrange(10**8):08d}X"
    return bundle


def synthea_dataset(resources: int, seed: int = 20261125) -> Dataset:
    """Clones of the patient Bundles, round-robin, until at least `resources` resources (whole Bundles)."""
    rng = random.Random(seed)
    templates = patient_templates()
    bundles: list[bytes] = []
    rows: list[list[tuple[str, str, bytes]]] = []
    count = 0
    index = 0
    while count < resources:
        bundle = _clone(templates[index % len(templates)][1], rng)
        index += 1
        bundles.append(orjson.dumps(bundle))
        rows.append(
            [
                (e["resource"]["resourceType"], e["resource"]["id"], orjson.dumps(e["resource"]))
                for e in bundle["entry"]
            ]
        )
        count += len(bundle["entry"])
    return Dataset(bundles, rows, count, len(templates))


# -- posting Bundles ----------------------------------------------------------------------------


@dataclass
class PostResult:
    latencies: list[float]  # seconds, per Bundle
    failures: list[str]  # one line per Bundle that did not come back 200 with every entry 201
    locations: list[str]  # "Type/id" of every created resource
    seconds: float


def post_bundles(base: str, bundles: Sequence[bytes], clients: int) -> PostResult:
    """POST every Bundle to the base URL with `clients` concurrent connections (httpx, asyncio)."""
    latencies: list[float] = []
    answers: list[tuple[int, int, bytes]] = []  # (bundle index, status, body)

    async def run() -> float:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON, "Prefer": "return=minimal"}
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=600, headers=headers) as client:
            pending = iter(range(len(bundles)))

            async def worker() -> None:
                for index in pending:
                    t0 = time.perf_counter()
                    response = await client.post("", content=bundles[index])
                    latencies.append(time.perf_counter() - t0)
                    answers.append((index, response.status_code, response.content))

            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(clients)))
            return time.perf_counter() - t0

    seconds = asyncio.run(run())
    failures: list[str] = []
    locations: list[str] = []
    for index, status, body in sorted(answers):
        if status != 200:
            failures.append(f"bundle {index}: HTTP {status}: {body[:300]!r}")
            continue
        for entry in orjson.loads(body).get("entry", []):
            response = entry.get("response", {})
            if not str(response.get("status", "")).startswith("201"):
                failures.append(f"bundle {index}: entry status {response.get('status')!r}")
                break
            # "Type/id/_history/1", relative or absolute: keep the two segments before _history.
            parts = str(response.get("location", "")).split("/")
            cut = parts.index("_history") if "_history" in parts else len(parts)
            locations.append("/".join(parts[cut - 2 : cut]))
    return PostResult(latencies, failures, locations, seconds)
