"""Read benchmark: GET /fhir/{type}/{id} of random known ids at concurrency 16 against `socle serve`.

Loads Synthea-shaped transaction Bundles first (over HTTP), then for each `--workers` value and each
load generator runs for `--seconds`: wrk (C, 2 threads, Lua script `bench/wrk_read.lua`) and a
Python httpx asyncio client. Next to it, the raw floor on the same database: `SELECT content FROM
resource WHERE resource_type = ? AND id = ?` from 16 threads (SQLAlchemy, one connection each).

The machine has few cores and the load generator shares them with the server: the client's own CPU
use is printed so that a saturated generator shows.

    apt-get install -y wrk    # Debian package; without it only the httpx generator runs
    .venv/bin/python bench/read.py --backend both --resources 10000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from _common import (
    FHIR_JSON,
    PG_URL,
    OtherLoad,
    Server,
    load_line,
    machine_lines,
    percentile,
    pg_schema,
    post_bundles,
    synthea_dataset,
    unique_name,
    wait_for_quiet,
)
from _profile import Profile, summarise
from sqlalchemy import create_engine, text

from socle.store.engine import normalize_url

HERE = Path(__file__).resolve().parent
CONCURRENCY = 16
TARGET_RATE = 3000


@dataclass
class Sample:
    requests: int
    seconds: float
    p50_ms: float
    p95_ms: float
    errors: int  # non-200 answers and socket errors (floor: ids not found)
    client_cpu: float  # fraction of one core used by the load generator (floor: the threads)
    statuses: dict[str, int] = field(default_factory=dict)  # non-200 answers by status

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def sample(latencies: list[float], seconds: float, client_cpu: float, statuses: dict[str, int]) -> Sample:
    p50, p95 = percentile(latencies, 50) * 1000, percentile(latencies, 95) * 1000
    return Sample(len(latencies), seconds, p50, p95, sum(statuses.values()), client_cpu, statuses)


@dataclass
class Run:
    backend: str
    workers: int | str
    generator: str
    sample: Sample
    server_cpu: float = 0.0  # fraction of one core
    other_cores: float = 0.0  # cores used by other processes on the machine meanwhile


def run_httpx(base: str, ids: list[str], seconds: float, seed: int) -> Sample:
    """CONCURRENCY asyncio tasks sharing one httpx.AsyncClient."""
    latencies: list[float] = []
    statuses: Counter[str] = Counter()

    async def run() -> float:
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(base_url=base, limits=limits, headers={"Accept": FHIR_JSON}) as client:
            end = time.perf_counter() + seconds

            async def worker(n: int) -> None:
                rng = random.Random(seed * 1000 + n)
                while time.perf_counter() < end:
                    t0 = time.perf_counter()
                    response = await client.get(f"/{rng.choice(ids)}")
                    latencies.append(time.perf_counter() - t0)
                    if response.status_code != 200:
                        statuses[str(response.status_code)] += 1

            t0 = time.perf_counter()
            await asyncio.gather(*(worker(n) for n in range(CONCURRENCY)))
            return time.perf_counter() - t0

    cpu0 = time.process_time()
    wall = asyncio.run(run())
    return sample(latencies, wall, (time.process_time() - cpu0) / wall, dict(statuses))


def run_wrk(base: str, ids_file: Path, seconds: float, seed: int) -> Sample:
    """wrk -t2 -c16 with bench/wrk_read.lua."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    script = str(HERE / "wrk_read.lua")
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONCURRENCY}", f"-d{seconds:g}s", "-s", script, base.removesuffix("/fhir")],
        env={"IDS_FILE": str(ids_file), "SEED": str(seed), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    wall = figures["duration_us"] / 1e6
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    statuses: Counter[str] = Counter()
    for status, n in figures["statuses"]:
        statuses[status] += n
    for kind in ("connect", "read", "write", "timeout"):  # wrk's timeout: no answer within 2 s
        if figures[kind]:
            statuses[f"socket {kind}"] = figures[kind]
    return Sample(
        figures["requests"],
        wall,
        figures["p50_us"] / 1000,
        figures["p95_us"] / 1000,
        figures["non_2xx"] + figures["socket_errors"],
        cpu / wall,
        dict(statuses),
    )


def run_floor(url: str, ids: list[str], seconds: float, seed: int) -> Sample:
    """The same lookups straight on the database from CONCURRENCY threads, one connection each."""
    parsed = normalize_url(url)
    sqlite = parsed.get_backend_name() == "sqlite"
    engine = create_engine(
        parsed,
        pool_size=CONCURRENCY,
        max_overflow=0,
        connect_args={"check_same_thread": False} if sqlite else {},
    )
    # On PostgreSQL the server reads JSONB as text (bytes to the client, no parse): so does the floor.
    content = "content" if sqlite else "CAST(content AS TEXT)"
    query = text(f"SELECT {content} FROM resource WHERE resource_type = :type AND id = :id")
    pairs = [tuple(i.split("/", 1)) for i in ids]
    latencies: list[list[float]] = [[] for _ in range(CONCURRENCY)]
    misses = [0] * CONCURRENCY
    barrier = threading.Barrier(CONCURRENCY + 1)
    end = 0.0

    def worker(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        with engine.connect() as conn:
            barrier.wait()
            while time.perf_counter() < end:
                type_, id_ = rng.choice(pairs)
                t0 = time.perf_counter()
                row = conn.execute(query, {"type": type_, "id": id_}).first()
                conn.rollback()  # one transaction per lookup, as the server does
                latencies[n].append(time.perf_counter() - t0)
                if row is None or row[0] is None:
                    misses[n] += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(CONCURRENCY)]
    for thread in threads:
        thread.start()
    end = time.perf_counter() + seconds  # connections are open: the clock starts now
    barrier.wait()
    cpu0, t0 = time.process_time(), time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - t0
    engine.dispose()
    flat = [x for per in latencies for x in per]
    missing = {"not found": sum(misses)} if sum(misses) else {}
    return sample(flat, wall, (time.process_time() - cpu0) / wall, missing)


def bench_backend(backend: str, args: argparse.Namespace, workdir: Path) -> list[Run]:
    runs: list[Run] = []
    with ExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite:///{workdir / 'read.db'}"
        else:
            url = stack.enter_context(pg_schema(args.pg_url, unique_name("bench_read")))
        data = synthea_dataset(args.resources, args.seed)
        ids: list[str] = []
        print(f"\n== {backend}: loading {data.resources} resources ({len(data.bundles)} Bundles) over HTTP")
        for workers in args.workers:
            server = Server(url, workers=workers, log_path=workdir / f"server-{backend}-{workers}.log")
            server.start()
            try:
                if not ids:
                    loaded = post_bundles(server.base, data.bundles, 2)
                    ids = loaded.locations
                    print(f"   loaded in {loaded.seconds:.1f} s, {len(loaded.failures)} failed Bundles")
                    for line in loaded.failures[:3]:
                        print(f"   FAILED {line}")
                    ids_file = workdir / "ids.txt"
                    ids_file.write_text("\n".join(ids) + "\n")
                run_httpx(server.base, ids, 2, args.seed)  # warm-up: every worker, every connection
                if args.wait_quiet:
                    print(f"   {wait_for_quiet(args.wait_quiet)}")
                for generator in args.generators:
                    cpu0, t0 = server.cpu_seconds(), time.perf_counter()
                    with ExitStack() as phase:
                        if args.profile is not None:
                            assert server.process is not None
                            args.profile.mkdir(parents=True, exist_ok=True)
                            raw = args.profile / f"read-{backend}-w{workers}-{generator}.txt"
                            phase.enter_context(Profile(server.process.pid, raw, gil=args.profile_gil))
                        others = phase.enter_context(OtherLoad())
                        if generator == "wrk":
                            measured = run_wrk(server.base, ids_file, args.seconds, args.seed)
                        else:
                            measured = run_httpx(server.base, ids, args.seconds, args.seed)
                    server_cpu = (server.cpu_seconds() - cpu0) / (time.perf_counter() - t0)
                    runs.append(Run(backend, workers, generator, measured, server_cpu, others.cores))
                    print_run(runs[-1])
                    if args.profile is not None:
                        print(f"\n-- py-spy profile of the server during this run ({raw}):")
                        print(summarise(raw) + "\n")
            finally:
                server.stop()
                problems = [line for line in server.log_tail(400).splitlines() if "Error" in line]
                for line in problems[:10]:
                    print(f"      server log: {line}")
        if args.wait_quiet:
            print(f"   {wait_for_quiet(args.wait_quiet)}")
        with OtherLoad() as others:
            floor = run_floor(url, ids, args.seconds, args.seed)
        runs.append(Run(backend, "-", "floor", floor, other_cores=others.cores))
        print_run(runs[-1])
    return runs


def print_run(r: Run) -> None:
    s = r.sample
    what = (
        "raw SELECT floor, 16 threads" if r.generator == "floor" else f"--workers {r.workers}, {r.generator}"
    )
    print(
        f"   {what:<30} {s.rate:8.0f} req/s  p50 {s.p50_ms:6.2f} ms  p95 {s.p95_ms:6.2f} ms"
        f"  errors {s.errors}  server CPU {r.server_cpu * 100:3.0f} %  client CPU {s.client_cpu * 100:3.0f} %"
        f"  others {r.other_cores:.2f} cores"
    )
    if s.statuses:
        print(f"      non-200 answers: {s.statuses}")


def main() -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--resources", type=int, default=10_000, help="loaded first (whole Bundles)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each measurement")
    parser.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    parser.add_argument("--generators", type=lambda s: s.split(","), default=["wrk", "httpx"])
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=300,
        help="wait up to this many seconds for other processes to go under 0.3 cores (0: don't)",
    )
    parser.add_argument("--profile", type=Path, help="py-spy the server into this folder (slows it)")
    parser.add_argument("--profile-gil", action="store_true", help="only samples holding the GIL")
    args = parser.parse_args()
    if "wrk" in args.generators and shutil.which("wrk") is None:
        print("wrk not found (apt-get install -y wrk): using the httpx generator only")
        args.generators = [g for g in args.generators if g != "wrk"]
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]

    print("\n".join(machine_lines(args.pg_url if "postgresql" in backends else None)))
    print(f"dataset     at least {args.resources} Synthea-shaped resources (seed {args.seed}), all types")
    print(
        f"query       GET /fhir/{{type}}/{{id}}, random known id, concurrency {CONCURRENCY},"
        f" {args.seconds:g} s per run after a 2 s warm-up; generators: {', '.join(args.generators)}"
    )
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="socle-bench-") as tmp:
        for backend in backends:
            runs.extend(bench_backend(backend, args, Path(tmp)))
    print(f"\ntarget: ≥ {TARGET_RATE} req/s")
    print("backend     workers  generator  requests    req/s  p50 ms  p95 ms  errors  others")
    for r in runs:
        s = r.sample
        print(
            f"{r.backend:<11} {r.workers!s:>7}  {r.generator:<9} {s.requests:>9} {s.rate:>8.0f}"
            f" {s.p50_ms:>7.2f} {s.p95_ms:>7.2f} {s.errors:>7}  {r.other_cores:>6.2f}"
        )
    print("(others: cores used on average by other processes on the machine during the run)")
    print(load_line("end"))
    return 1 if any(r.sample.errors for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
