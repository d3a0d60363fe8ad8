"""Ingest benchmark: Synthea-shaped transaction Bundles POSTed to a real `socle serve` process.

Prints resources/s, per-Bundle latency p50/p95 and the server's peak RSS (process tree, sampled
every 100 ms), next to the raw floor: the same resources' JSON inserted straight into the same kind
of database (a bare `resource_floor(resource_key, resource_type, id, content)` table, no index
beyond the key, no validation) with SQLAlchemy executemany, one transaction per Bundle.

    .venv/bin/python bench/ingest.py --backend both --resources 20000
    .venv/bin/python bench/ingest.py --backend sqlite --resources 100000   # the RSS target
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from _common import (
    PG_URL,
    Dataset,
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
from sqlalchemy import Engine, text

from socle.store.engine import make_engine

TARGET_RATE = {"sqlite": 3000, "postgresql": 2000}
TARGET_RATIO = 8.0
TARGET_RSS_MB = 300


@dataclass
class Figures:
    backend: str
    seconds: float
    rate: float
    p50_ms: float
    p95_ms: float
    rss_mb: float
    server_cpu_s: float
    stored: int
    failures: list[str]
    other_cores: float
    floor_seconds: float
    floor_rate: float

    @property
    def ratio(self) -> float:
        return self.floor_rate / self.rate if self.rate else float("inf")


def count_resources(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM resource WHERE NOT deleted")).scalar_one())
    finally:
        engine.dispose()


def run_floor(url: str, data: Dataset) -> float:
    """Seconds to insert every resource of `data` into a bare table, one executemany per Bundle."""
    engine: Engine = make_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS resource_floor"))
            key = "INTEGER PRIMARY KEY" if sqlite else "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
            content = "BLOB" if sqlite else "JSONB"
            conn.execute(
                text(
                    f"CREATE TABLE resource_floor (resource_key {key}, resource_type VARCHAR(64) NOT NULL,"
                    f" id VARCHAR(64) NOT NULL, content {content})"
                )
            )
        value = ":content" if sqlite else "CAST(:content AS JSONB)"
        insert = text(f"INSERT INTO resource_floor (resource_type, id, content) VALUES (:type, :id, {value})")
        batches = [
            [{"type": t, "id": i, "content": c if sqlite else c.decode()} for t, i, c in rows]
            for rows in data.rows
        ]
        t0 = time.perf_counter()
        for batch in batches:
            with engine.begin() as conn:
                conn.execute(insert, batch)
        seconds = time.perf_counter() - t0
        with engine.begin() as conn:
            stored = int(conn.execute(text("SELECT count(*) FROM resource_floor")).scalar_one())
            conn.execute(text("DROP TABLE resource_floor"))
        if stored != data.resources:
            print(f"  floor stored {stored} rows, expected {data.resources}")
        return seconds
    finally:
        engine.dispose()


def run_backend(
    backend: str, data: Dataset, warmup: Dataset, args: argparse.Namespace, workdir: Path
) -> Figures:
    print(f"\n-- {backend}")
    with ExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite:///{workdir / 'ingest.db'}"
            floor_url = f"sqlite:///{workdir / 'floor.db'}"
        else:
            url = stack.enter_context(pg_schema(args.pg_url, unique_name("bench_ingest")))
            floor_url = stack.enter_context(pg_schema(args.pg_url, unique_name("bench_floor")))
        server = Server(url, workers=args.workers, log_path=workdir / f"server-{backend}.log")
        server.start()
        try:
            warm = post_bundles(server.base, warmup.bundles, 1)  # first-request loading, not timed
            if args.wait_quiet:
                print(f"   {wait_for_quiet(args.wait_quiet)}")
            cpu0 = server.cpu_seconds()
            with ExitStack() as profiling:
                if args.profile is not None:
                    assert server.process is not None
                    args.profile.mkdir(parents=True, exist_ok=True)
                    raw = args.profile / f"ingest-{backend}.txt"
                    profiling.enter_context(Profile(server.process.pid, raw, gil=args.profile_gil))
                others = profiling.enter_context(OtherLoad())
                result = post_bundles(server.base, data.bundles, args.clients)
            cpu = server.cpu_seconds() - cpu0
            rss = server.peak_rss
        finally:
            server.stop()
        stored = count_resources(url) - warmup.resources
        if args.profile is not None:
            print(f"\n-- py-spy profile of the server during the {backend} ingest ({raw}):")
            print(summarise(raw))
        if args.wait_quiet:
            print(f"   {wait_for_quiet(args.wait_quiet)}")
        floor_seconds = run_floor(floor_url, data)
    return Figures(
        backend=backend,
        seconds=result.seconds,
        rate=data.resources / result.seconds,
        p50_ms=percentile(result.latencies, 50) * 1000,
        p95_ms=percentile(result.latencies, 95) * 1000,
        rss_mb=rss / 2**20,
        server_cpu_s=cpu,
        stored=stored,
        failures=warm.failures + result.failures,
        other_cores=others.cores,
        floor_seconds=floor_seconds,
        floor_rate=data.resources / floor_seconds,
    )


def report(f: Figures, data: Dataset, args: argparse.Namespace) -> None:
    print(f"\n== {f.backend}: {data.resources} resources in {len(data.bundles)} transaction Bundles")
    print(
        f"  server   {f.seconds:8.2f} s  {f.rate:8.0f} resources/s   Bundle latency p50 {f.p50_ms:.0f} ms,"
        f" p95 {f.p95_ms:.0f} ms   ({args.clients} clients, --workers {args.workers})"
    )
    print(
        f"           server CPU {f.server_cpu_s:.1f} s ({f.server_cpu_s / f.seconds * 100:.0f} % of one core,"
        f" {f.server_cpu_s / data.resources * 1e6:.0f} µs/resource); peak RSS {f.rss_mb:.0f} MB"
        f" (process tree); stored {f.stored}"
    )
    print(f"           other processes on the machine used {f.other_cores:.2f} cores on average meanwhile")
    print(
        f"  floor    {f.floor_seconds:8.2f} s  {f.floor_rate:8.0f} resources/s"
        "   (executemany, one transaction per Bundle, 1 thread)"
    )
    print(f"  ratio    server is {f.ratio:.1f}x slower than the floor")
    rate_target = TARGET_RATE[f.backend]
    met = {True: "met", False: "missed"}
    print(
        f"  targets  ≥ {rate_target} resources/s: {met[f.rate >= rate_target]};"
        f" within {TARGET_RATIO:.0f}x of the floor: {met[f.ratio <= TARGET_RATIO]};"
        f" RSS ≤ {TARGET_RSS_MB} MB (judged at 100,000 resources): {met[f.rss_mb <= TARGET_RSS_MB]}"
    )
    if f.stored != data.resources:
        print(f"  MISMATCH: {f.stored} resources in the database, {data.resources} posted")
    for line in f.failures[:5]:
        print(f"  FAILED {line}")
    if len(f.failures) > 5:
        print(f"  ... {len(f.failures) - 5} more failed Bundles")


def main() -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--resources", type=int, default=20_000, help="at least this many (whole Bundles)")
    parser.add_argument("--clients", type=int, default=2, help="concurrent HTTP clients")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
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
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]

    print("\n".join(machine_lines(args.pg_url if "postgresql" in backends else None)))
    t0 = time.perf_counter()
    data = synthea_dataset(args.resources, args.seed)
    warmup = synthea_dataset(1, args.seed + 1)
    print(
        f"dataset     {data.resources} resources in {len(data.bundles)} transaction Bundles"
        f" ({data.size_bytes / 2**20:.0f} MiB JSON), cloned from the {data.templates} Synthea patient Bundles"
        f" (seed {args.seed}; built in {time.perf_counter() - t0:.1f} s, not timed)"
    )
    print(
        f"query       POST /fhir (transaction, Prefer: return=minimal), {args.clients} concurrent"
        f" httpx clients; one warm-up Bundle ({warmup.resources} resources) first, not timed"
    )
    figures = []
    with tempfile.TemporaryDirectory(prefix="socle-bench-") as tmp:
        for backend in backends:
            figures.append(run_backend(backend, data, warmup, args, Path(tmp)))
            report(figures[-1], data, args)
    print("\nbackend     resources  resources/s  p50 ms  p95 ms  RSS MB  floor r/s  floor/server  others")
    for f in figures:
        print(
            f"{f.backend:<11} {data.resources:>9}  {f.rate:>11.0f}  {f.p50_ms:>6.0f}  {f.p95_ms:>6.0f}"
            f"  {f.rss_mb:>6.0f}  {f.floor_rate:>9.0f}  {f.ratio:>11.1f}x  {f.other_cores:>6.2f}"
        )
    print("(others: cores used on average by other processes on the machine during the timed run)")
    print(load_line("end"))
    return 1 if any(f.failures or f.stored != data.resources for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
