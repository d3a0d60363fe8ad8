"""Audit-chain cost: ingest with audit on vs off, and one read with audit on vs off (target ≤ 1.2x).

The same Synthea-shaped transaction Bundles are POSTed to a real `socle serve` process started with
`SOCLE_AUDIT=true` and then `false` (fresh database each time; the order alternates over `--rounds`
so drift on the shared machine does not favour one side); then single-client `GET Patient/{id}`
latencies on each server. In the same run, the raw floor of the audit write: the same AuditEvent
rows inserted with a bare executemany into a bare table (no chain, no lock), next to `chain.append`
in-process, and the speed of `verify` over the chain the ingest wrote.

    .venv/bin/python bench/audit.py --backend both --resources 10000
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
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
from sqlalchemy import func, select, text

from socle.config import Settings
from socle.store.audit_tables import audit_event
from socle.store.engine import make_engine
from socle.store.migrate import upgrade
from socle.store.repository import Store
from socle.trust.audit import chain
from socle.trust.audit.events import Access, Touched, build_events
from socle.trust.audit.verify import verify
from socle.trust.principal import SYSTEM_PRINCIPAL

TARGET_RATIO = 1.2


@dataclass
class Run:
    audit: bool
    seconds: float
    rate: float
    read_p50_ms: float
    read_p95_ms: float
    events: int
    event_bytes: int
    failures: int
    others: float
    load: str


def one_run(
    backend: str, audit: bool, data: Dataset, warmup: Dataset, args: argparse.Namespace, tmp: Path
) -> Run:
    os.environ["SOCLE_AUDIT"] = "true" if audit else "false"
    os.environ["SOCLE_AUTH_REQUIRED"] = "false"  # this measures the audit, not bearer tokens
    os.environ["SOCLE_AUTH_MASTER_KEY_FILE"] = str(tmp / "master.key")
    with ExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite:///{tmp / f'audit-{audit}-{time.monotonic_ns()}.db'}"
        else:
            url = stack.enter_context(pg_schema(args.pg_url, unique_name("bench_audit")))
        server = Server(url, log_path=tmp / f"server-{backend}-{audit}.log")
        server.start()
        try:
            post_bundles(server.base, warmup.bundles, 1)
            if args.wait_quiet:
                wait_for_quiet(args.wait_quiet)
            load = load_line("ingest")
            with OtherLoad() as others:
                result = post_bundles(server.base, data.bundles, args.clients)
            patients = [loc for loc in result.locations if loc.startswith("Patient/")]
            rng = random.Random(7)
            latencies = []
            with httpx.Client(base_url=server.base, headers={"Accept": "application/fhir+json"}) as client:
                for _ in range(args.reads):
                    t0 = time.perf_counter()
                    response = client.get(f"/{rng.choice(patients)}")
                    latencies.append(time.perf_counter() - t0)
                    assert response.status_code == 200, response.text
        finally:
            server.stop()
        engine = make_engine(url)
        with engine.connect() as conn:
            events = int(conn.execute(select(func.count()).select_from(audit_event)).scalar_one())
            size = int(
                conn.execute(
                    select(func.coalesce(func.sum(func.length(audit_event.c.content)), 0))
                ).scalar_one()
            )
        engine.dispose()
    return Run(
        audit,
        result.seconds,
        data.resources / result.seconds,
        percentile(latencies, 50) * 1000,
        percentile(latencies, 95) * 1000,
        events,
        size,
        len(result.failures),
        others.cores,
        load,
    )


def floor(backend: str, args: argparse.Namespace, tmp: Path, n: int = 2000) -> None:
    """chain.append vs a bare executemany of the same rows, and verify, in-process."""
    settings = Settings(auth_master_key_file=tmp / "master.key", audit_checkpoint_every=1000)
    with ExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite:///{tmp / 'floor.db'}"
        else:
            url = stack.enter_context(pg_schema(args.pg_url, unique_name("bench_audit_floor")))
        engine = make_engine(url)
        upgrade(engine)
        store = Store(engine)
        touched = [Touched(f"Observation/o{i}", "pat-1", "C", 1) for i in range(40)]
        events = [
            build_events(Access("transaction", "C", touched), SYSTEM_PRINCIPAL, site="x", now=1 + i)[0]
            for i in range(n)
        ]
        t0 = time.perf_counter()
        for event in events:
            with store.write() as conn:
                chain.append(conn, settings, [event])
        append_s = time.perf_counter() - t0
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select(audit_event).order_by(audit_event.c.seq))]
        blob = "BLOB" if backend == "sqlite" else "BYTEA"
        with engine.begin() as conn:
            conn.execute(
                text(f"CREATE TABLE audit_floor (seq BIGINT PRIMARY KEY, id VARCHAR(64), content {blob})")
            )
        insert = text("INSERT INTO audit_floor (seq, id, content) VALUES (:seq, :id, :content)")
        t0 = time.perf_counter()
        for row in rows:
            with store.write() as conn:
                conn.execute(insert, [{"seq": row["seq"], "id": row["id"], "content": row["content"]}])
        floor_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with engine.connect() as conn:
            report = verify(conn, settings)
        verify_s = time.perf_counter() - t0
        engine.dispose()
    print(
        f"  append   {append_s / n * 1e6:7.0f} µs/event (chain.append, one write transaction each, "
        f"{len(events[0]['entity'])} entities/event)  vs raw INSERT {floor_s / n * 1e6:7.0f} µs/row "
        f"-> {append_s / floor_s:.2f}x   [{load_line('floor')}]"
    )
    print(
        f"  verify   {n / verify_s:7.0f} events/s ({'ok' if report.ok else 'FAILED'}, "
        f"{report.checkpoints_valid} checkpoints)   [{load_line('verify')}]"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--resources", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--reads", type=int, default=300, help="single-client GET Patient/{id} per server")
    parser.add_argument("--rounds", type=int, default=2, help="on/off pairs per backend (order alternates)")
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--wait-quiet", type=float, default=60)
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print("\n".join(machine_lines(args.pg_url if "postgresql" in backends else None)))
    data = synthea_dataset(args.resources)
    warmup = synthea_dataset(1, 99)
    print(
        f"dataset     {data.resources} resources in {len(data.bundles)} transaction Bundles,"
        f" {args.clients} clients"
    )
    failed = False
    with tempfile.TemporaryDirectory(prefix="socle-bench-audit-") as tmp_name:
        tmp = Path(tmp_name)
        for backend in backends:
            print(f"\n== {backend}")
            runs: list[Run] = []
            for round_ in range(args.rounds):
                for audit in (False, True) if round_ % 2 == 0 else (True, False):
                    run = one_run(backend, audit, data, warmup, args, tmp)
                    runs.append(run)
                    failed |= run.failures > 0
                    print(
                        f"  audit {'on ' if audit else 'off'}  {run.seconds:7.2f} s"
                        f"  {run.rate:7.0f} resources/s"
                        f"   read p50 {run.read_p50_ms:5.1f} ms p95 {run.read_p95_ms:5.1f} ms"
                        f"   {run.events} events ({run.event_bytes / max(run.events, 1) / 1024:.1f} KiB avg)"
                        f"   failures {run.failures}  others {run.others:.2f} cores  [{run.load}]"
                    )
            on = [r for r in runs if r.audit]
            off = [r for r in runs if not r.audit]
            ratio = statistics.median(r.seconds for r in on) / statistics.median(r.seconds for r in off)
            read_ratio = statistics.median(r.read_p50_ms for r in on) / statistics.median(
                r.read_p50_ms for r in off
            )
            verdict = "met" if ratio <= TARGET_RATIO else "missed"
            print(
                f"  ingest on/off {ratio:.2f}x (median of {args.rounds};"
                f" target ≤ {TARGET_RATIO}x: {verdict});"
                f" read p50 on/off {read_ratio:.2f}x"
            )
            floor(backend, args, tmp)
    print(load_line("end"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
