"""Search benchmark: a fixed mix of FHIR searches at concurrency 8 against a real `socle serve` process.

The datasets are built once by `bench/search_data.py` (Synthea-shaped, deterministic for a seed:
the 21 Synthea patient Bundles cloned round-robin with fresh ids and identities, loaded in-process
through the API's transaction handler, every search index written) and reused by every run: 100k
and 1M resources per backend under `--workdir` (default /tmp/h6), PostgreSQL databases `h6_<size>`.
A size whose dataset is missing is built first (sequentially, long: see search_data.py).

For each size, `socle serve` is started on its database (bearer protection explicitly off:
`SOCLE_AUTH_REQUIRED=false`), and each query type runs for `--seconds` with 8 asyncio httpx
workers, cycling through parameter sets picked from the dataset's facts (real patients, codes,
names, birth dates, seed-chosen); then the same query hand-written in SQL on the raw tables
(`resource`, `idx_*`, hashes from `socle.fhir.hashing`) from 8 threads of this process, one
connection each: the floor. Every query must return entries at least once, or it is reported as
empty; a 400 is reported as unsupported. Each line also gives the server's CPU per request (the CPU
of its process tree over the requests it served): on a busy machine latencies mostly measure the
wait for a core, while the CPU a request costs stays comparable between runs.

    .venv/bin/python bench/search_data.py --backend sqlite --resources 100000 1000000   # once
    .venv/bin/python bench/search.py --backend both --resources 100000 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from _common import FHIR_JSON, PG_URL, OtherLoad, Server, load_line, machine_lines, percentile
from search_data import LOINC, SNOMED, WORKDIR, Manifest, PatientFacts, available, build, database_url
from sqlalchemy import Connection, Engine, bindparam, text

from socle.fhir._index_values import date_range, normalize_string
from socle.fhir.hashing import param_hash, system_value_hash
from socle.store.engine import make_engine

CONCURRENCY = 8
TARGETS = {"obs-patient": 20.0, "patient-name": 50.0}  # p95 ms at 1M
TARGET_RATIO, TARGET_INGEST = 1.5, 1500


# -- the queries --------------------------------------------------------------------------------


@dataclass
class Instance:
    url: str  # relative to the base
    args: dict[str, Any]  # bind values of the floor


@dataclass
class QueryType:
    name: str
    shown: str
    build: Callable[[PatientFacts, str, str], Instance | None]  # (facts, patient id, cohort code)
    floor: Callable[[Connection, dict[str, Any]], int]


def _names(family: str) -> dict[str, Any]:
    value = normalize_string(family)
    return {"name_param": param_hash("Patient", "name"), "name": value, "name_end": value + "\U0010ffff"}


def _obs_args(pid: str, code: str, year: int) -> dict[str, Any]:
    low, high = date_range(f"{year}-01-01")
    return {
        "subject": system_value_hash("Observation", "subject", "Patient", pid),
        "code": system_value_hash("Observation", "code", LOINC, code),
        "date_param": param_hash("Observation", "date"),
        "low": low,
        "high": high,
    }


def b_obs(f: PatientFacts, pid: str, _c: str) -> Instance | None:
    if f.obs is None:
        return None
    code, year = f.obs
    url = f"/Observation?subject=Patient/{pid}&code={LOINC}|{code}&date=ge{year}-01-01"
    return Instance(url, _obs_args(pid, code, year))


def b_name(f: PatientFacts, _p: str, _c: str) -> Instance:
    low, high = date_range(f.birth)
    args = {**_names(f.family), "bd_param": param_hash("Patient", "birthdate"), "low": low, "high": high}
    return Instance(f"/Patient?name={f.family}&birthdate={f.birth}", args)


def b_cohort(_f: PatientFacts, _p: str, code: str) -> Instance:
    args = {"code": system_value_hash("Condition", "code", SNOMED, code)}
    return Instance(f"/Condition?code={SNOMED}|{code}&_count=50", args)


def b_chain(f: PatientFacts, _p: str, _c: str) -> Instance | None:
    if f.obs is None:
        return None
    code = f.obs[0]
    args = {
        **_names(f.family),
        "subject_param": param_hash("Observation", "subject"),
        "code": system_value_hash("Observation", "code", LOINC, code),
    }
    return Instance(f"/Observation?subject.name={f.family}&code={LOINC}|{code}", args)


def b_include(f: PatientFacts, pid: str, c: str) -> Instance | None:
    base = b_obs(f, pid, c)
    if base is None:
        return None
    args = {**base.args, "subject_param": param_hash("Observation", "subject")}
    return Instance(base.url + "&_include=Observation:subject", args)


def b_revinclude(_f: PatientFacts, pid: str, _c: str) -> Instance:
    args = {"pid": pid, "subject_param": param_hash("Observation", "subject")}
    return Instance(f"/Patient?_id={pid}&_revinclude=Observation:subject", args)


def b_has(_f: PatientFacts, _p: str, code: str) -> Instance:
    args = {
        "code": system_value_hash("Condition", "code", SNOMED, code),
        "patient_param": param_hash("Condition", "patient"),
    }
    return Instance(f"/Patient?_has:Condition:patient:code={SNOMED}|{code}&_count=50", args)


def b_everything(_f: PatientFacts, pid: str, _c: str) -> Instance:
    return Instance(f"/Patient/{pid}/$everything", {"pid": pid})


# The floor: matching keys by hand on the index tables, then what the server does with them: an
# accurate total (the server counts on every first page) and a page of 50 by resource_key, with JSON.
# A unary `+` (valid SQL in both databases) keeps SQLite from scanning a secondary index on
# `param_hash` when the row is reached by its primary key (resource_key, seq) anyway.
OBS_MATCH = """SELECT f.resource_key FROM idx_reference f WHERE f.target_hash = :subject
 AND EXISTS (SELECT 1 FROM idx_token t WHERE t.resource_key = f.resource_key AND t.sys_value_hash = :code)
 AND EXISTS (SELECT 1 FROM idx_date d WHERE d.resource_key = f.resource_key AND +d.param_hash = :date_param
   AND (d.high > :high OR (d.low >= :low AND d.high <= :high)))"""
NAME_MATCH = """SELECT s.resource_key FROM idx_string s WHERE s.param_hash = :name_param
 AND s.value_normalized >= :name AND s.value_normalized < :name_end
 AND EXISTS (SELECT 1 FROM idx_date d WHERE d.resource_key = s.resource_key AND +d.param_hash = :bd_param
   AND d.low >= :low AND d.high <= :high)"""
COHORT_MATCH = "SELECT t.resource_key FROM idx_token t WHERE t.sys_value_hash = :code"
CHAIN_MATCH = """SELECT f.resource_key FROM idx_string s
 JOIN resource p ON p.resource_key = s.resource_key AND p.resource_type = 'Patient' AND NOT p.deleted
 JOIN idx_reference f ON f.param_hash = :subject_param AND f.target_type = 'Patient' AND f.target_id = p.id
   AND f.target_url IS NULL
 WHERE s.param_hash = :name_param AND s.value_normalized >= :name AND s.value_normalized < :name_end
 AND EXISTS (SELECT 1 FROM idx_token t WHERE t.resource_key = f.resource_key AND t.sys_value_hash = :code)"""
ID_MATCH = "SELECT resource_key FROM resource WHERE resource_type = 'Patient' AND id = :pid"
HAS_MATCH = """SELECT p.resource_key FROM resource p WHERE p.resource_type = 'Patient' AND p.id IN (
 SELECT f.target_id FROM idx_token t JOIN idx_reference f ON f.resource_key = t.resource_key
 WHERE t.sys_value_hash = :code AND +f.param_hash = :patient_param AND f.target_type = 'Patient'
   AND f.target_url IS NULL)"""
INCLUDED = text(
    """SELECT r.content FROM resource r WHERE r.resource_type = 'Patient' AND NOT r.deleted AND r.id IN (
 SELECT f.target_id FROM idx_reference f WHERE f.resource_key IN :keys AND f.param_hash = :subject_param
   AND f.target_type = 'Patient')"""
).bindparams(bindparam("keys", expanding=True))
REVINCLUDED = text(
    """SELECT r.content FROM idx_reference f JOIN resource r ON r.resource_key = f.resource_key
 WHERE f.param_hash = :subject_param AND f.target_type = 'Patient' AND f.target_id = :pid
   AND f.target_url IS NULL AND NOT r.deleted"""
)
COMPARTMENT = text(
    "SELECT resource_key, content FROM resource WHERE compartment = :pid AND NOT deleted"
    " ORDER BY resource_key LIMIT 50"
)
COMPARTMENT_COUNT = text("SELECT count(*) FROM resource WHERE compartment = :pid AND NOT deleted")
REFERENCED = text(
    """SELECT x.content FROM resource x WHERE x.compartment IS NULL AND NOT x.deleted AND x.resource_key IN (
 SELECT y.resource_key FROM idx_reference f JOIN resource y ON y.resource_type = f.target_type
   AND y.id = f.target_id WHERE f.resource_key IN :keys AND f.target_url IS NULL)"""
).bindparams(bindparam("keys", expanding=True))


def _page(conn: Connection, match: str, args: dict[str, Any]) -> list[Any]:
    """Accurate total, then a page of 50 with content: rows returned (+ the count query's row)."""
    where = f"r.resource_key IN ({match}) AND NOT r.deleted"
    names = {k for k in args if f":{k}" in match}
    binds = {k: args[k] for k in names}
    conn.execute(text(f"SELECT count(*) FROM resource r WHERE {where}"), binds).scalar_one()
    sql = f"SELECT r.resource_key, r.content FROM resource r WHERE {where} ORDER BY r.resource_key LIMIT 50"
    return list(conn.execute(text(sql), binds))


def f_simple(match: str) -> Callable[[Connection, dict[str, Any]], int]:
    return lambda conn, args: len(_page(conn, match, args))


def f_include(conn: Connection, args: dict[str, Any]) -> int:
    rows = _page(conn, OBS_MATCH, args)
    keys = [r[0] for r in rows]
    extra = (
        conn.execute(INCLUDED, {"keys": keys, "subject_param": args["subject_param"]}).all() if keys else []
    )
    return len(rows) + len(extra)


def f_revinclude(conn: Connection, args: dict[str, Any]) -> int:
    rows = _page(conn, ID_MATCH, args)
    return len(rows) + len(conn.execute(REVINCLUDED, args).all())


def f_everything(conn: Connection, args: dict[str, Any]) -> int:
    conn.execute(COMPARTMENT_COUNT, args).scalar_one()
    rows = conn.execute(COMPARTMENT, args).all()
    extra = conn.execute(REFERENCED, {"keys": [r[0] for r in rows]}).all() if rows else []
    return len(rows) + len(extra)


QUERIES = [
    QueryType(
        "obs-patient", "Observation?subject=Patient/…&code=loinc|…&date=ge…", b_obs, f_simple(OBS_MATCH)
    ),
    QueryType("patient-name", "Patient?name=…&birthdate=…", b_name, f_simple(NAME_MATCH)),
    QueryType("condition-cohort", "Condition?code=sct|…&_count=50", b_cohort, f_simple(COHORT_MATCH)),
    QueryType("chain", "Observation?subject.name=…&code=loinc|…", b_chain, f_simple(CHAIN_MATCH)),
    QueryType("include", "obs-patient&_include=Observation:subject", b_include, f_include),
    QueryType("revinclude", "Patient?_id=…&_revinclude=Observation:subject", b_revinclude, f_revinclude),
    QueryType("has", "Patient?_has:Condition:patient:code=sct|…&_count=50", b_has, f_simple(HAS_MATCH)),
    QueryType("everything", "Patient/…/$everything", b_everything, f_everything),
]


def instances(data: Manifest, seed: int, n: int) -> dict[str, list[Instance]]:
    """`n` parameter sets per query type, from `n` seed-chosen patients of the dataset."""
    bundles = len(data.ids)
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(bundles), min(n, bundles)))
    cohort = Counter(c for i in range(bundles) for c in data.facts[i].conditions)
    codes = [c for c, _ in sorted(cohort.items(), key=lambda kv: (-kv[1], kv[0]))[:5]]
    out: dict[str, list[Instance]] = {}
    for q in QUERIES:
        built = [q.build(data.facts[i], data.ids[i], codes[k % len(codes)]) for k, i in enumerate(chosen)]
        out[q.name] = [b for b in built if b is not None]
    return out


# -- measuring ----------------------------------------------------------------------------------


@dataclass
class Figures:
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    nonempty: int = 0
    cpu: float = 0.0  # cores used by the load generator (or the floor's threads)

    def ms(self, p: float) -> float:
        return percentile(self.latencies, p) * 1000

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


def run_http(base: str, items: list[Instance], seconds: float, seed: int) -> Figures:
    fig = Figures()

    async def run() -> None:
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(
            base_url=base, limits=limits, timeout=120, headers={"Accept": FHIR_JSON}
        ) as client:
            end = time.perf_counter() + seconds

            async def worker(n: int) -> None:
                rng = random.Random(seed * 100 + n)
                while time.perf_counter() < end:
                    item = rng.choice(items)
                    t0 = time.perf_counter()
                    response = await client.get(item.url)
                    fig.latencies.append(time.perf_counter() - t0)
                    if response.status_code != 200:
                        fig.errors[f"HTTP {response.status_code}: {response.text[:200]}"] += 1
                    elif b'"entry"' in response.content:
                        fig.nonempty += 1

            await asyncio.gather(*(worker(n) for n in range(CONCURRENCY)))

    cpu0, t0 = time.process_time(), time.perf_counter()
    asyncio.run(run())
    fig.seconds = time.perf_counter() - t0
    fig.cpu = (time.process_time() - cpu0) / fig.seconds
    return fig


def run_floor(engine: Engine, query: QueryType, items: list[Instance], seconds: float, seed: int) -> Figures:
    fig = Figures()
    lock = threading.Lock()

    def worker(n: int) -> None:
        rng = random.Random(seed * 100 + n)
        end = time.perf_counter() + seconds
        with engine.connect() as conn:
            while time.perf_counter() < end:
                item = rng.choice(items)
                t0 = time.perf_counter()
                rows = query.floor(conn, item.args)
                conn.rollback()
                elapsed = time.perf_counter() - t0
                with lock:
                    fig.latencies.append(elapsed)
                    fig.nonempty += rows > 0

    cpu0, t0 = time.process_time(), time.perf_counter()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(CONCURRENCY)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fig.seconds = time.perf_counter() - t0
    fig.cpu = (time.process_time() - cpu0) / fig.seconds
    return fig


def db_bytes(data: Manifest, workdir: Path, pg_url: str) -> int:
    """The database on disk: SQLite file (+ WAL); PostgreSQL `pg_database_size` (tables, indexes, TOAST)."""
    if data.backend == "sqlite":
        path = workdir / data.location
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT pg_database_size(%s)", (data.location,)).fetchone()
    return int(row[0]) if row else 0


@dataclass
class SizeResult:
    backend: str
    size: int
    resources: int
    ingest_rate: float
    bytes_per_resource: float
    server: dict[str, Figures]
    floor: dict[str, Figures]
    unsupported: dict[str, str]


def run_backend(backend: str, sizes: list[str], args: argparse.Namespace) -> list[SizeResult]:
    results: list[SizeResult] = []
    built = sorted(int(m.stem.split("-")[1]) for m in args.workdir.glob(f"{backend}-*.json"))
    for size in sorted({built[-1] if s == "max" and built else int(s) for s in sizes}):
        data = available(args.workdir, backend, size)
        if data is None:
            print(f"\n-- {backend}, {size}: no dataset in {args.workdir}, building it (search_data.py)")
            build(backend, [size], args.seed, 8, args.workdir, args.pg_url)
            data = available(args.workdir, backend, size)
            assert data is not None
        url = database_url(data, args.workdir, args.pg_url)
        rates = [step["rate"] for step in data.ingest]
        print(
            f"\n-- {backend}, {data.resources} resources in {len(data.ids)} patient Bundles ({data.location};"
            f" built at {', '.join(f'{r:.0f}' for r in rates)} resources/s per step) ({load_line('now')})"
        )
        with ExitStack() as stack:
            server = Server(url, workers=args.workers, log_path=args.workdir / f"server-{backend}-{size}.log")
            stack.enter_context(server)
            engine = make_engine(url, pool_size=CONCURRENCY)
            stack.callback(engine.dispose)
            size_per = db_bytes(data, args.workdir, args.pg_url) / data.resources
            items = instances(data, args.seed, args.params)
            result = SizeResult(backend, size, data.resources, rates[-1], size_per, {}, {}, {})
            for q in QUERIES:
                if args.only and q.name not in args.only:
                    continue
                result.server[q.name], result.floor[q.name] = measure(q, items[q.name], server, engine, args)
                errors = result.server[q.name].errors
                if any(e.startswith("HTTP 400") or e.startswith("HTTP 501") for e in errors):
                    result.unsupported[q.name] = next(iter(errors))
            results.append(result)
            report(result)
    return results


def measure(
    q: QueryType, items: list[Instance], server: Server, engine: Engine, args: argparse.Namespace
) -> tuple[Figures, Figures]:
    for item in items[:3]:  # warm-up, untimed
        httpx.get(server.base + item.url, headers={"Accept": FHIR_JSON}, timeout=120)
    cpu0 = server.cpu_seconds()
    with OtherLoad() as others:
        http = run_http(server.base, items, args.seconds, args.seed)
    server_cores = (server.cpu_seconds() - cpu0) / http.seconds
    floor = run_floor(engine, q, items, args.floor_seconds, args.seed)
    print(
        f"   {q.name:<17} server p50/p95/p99 {http.ms(50):6.1f} {http.ms(95):6.1f} {http.ms(99):6.1f} ms"
        f" {http.rate:6.1f}/s | floor {floor.ms(50):5.1f} {floor.ms(95):5.1f} {floor.ms(99):5.1f} ms"
        f" {floor.rate:6.0f}/s | non-empty {http.nonempty}/{len(http.latencies)}, floor"
        f" {floor.nonempty}/{len(floor.latencies)} | cores: server {server_cores:.2f}, client {http.cpu:.2f},"
        f" others {others.cores:.2f} | server CPU {server_cores / http.rate * 1000 if http.rate else 0:.2f}"
        " ms/request"
    )
    for error, n in http.errors.most_common(2):
        print(f"      {n} x {error}")
    return http, floor


def report(r: SizeResult) -> None:
    print(
        f"== {r.backend} {r.resources} resources: ingest {r.ingest_rate:.0f} resources/s,"
        f" database {r.bytes_per_resource / 1024:.2f} KiB/resource"
    )


def summary(results: list[SizeResult]) -> None:
    print(
        "\nbackend     resources  query             p50 ms  p95 ms  p99 ms    req/s"
        "  floor p50/p95 ms  ratio p95"
    )
    previous: dict[tuple[str, str], float] = {}
    for r in results:
        for q in QUERIES:
            if q.name not in r.server:
                continue
            s, f = r.server[q.name], r.floor[q.name]
            prev = previous.get((r.backend, q.name))
            ratio = f"{s.ms(95) / prev:.2f}" if prev else "-"
            mark = " UNSUPPORTED" if q.name in r.unsupported else ("" if s.nonempty else " EMPTY")
            print(
                f"{r.backend:<11} {r.resources:>9}  {q.name:<17} {s.ms(50):6.1f}  {s.ms(95):6.1f}"
                f"  {s.ms(99):6.1f}"
                f"  {s.rate:7.1f}  {f.ms(50):7.1f}/{f.ms(95):<7.1f}  {ratio:>9}{mark}"
            )
            previous[(r.backend, q.name)] = s.ms(95)
        print(
            f"{r.backend:<11} {r.resources:>9}  dataset built at {r.ingest_rate:.0f} resources/s in-process"
            f" (its last step; the ingest target ≥ {TARGET_INGEST}/s is measured by bench/ingest.py),"
            f" {r.bytes_per_resource / 1024:.2f} KiB/resource on disk"
        )
    print(
        "(ratio p95: this size's p95 over the previous size's, target ≤ 1.5 for 1M/100k;"
        f" p95 targets at 1M: obs-patient ≤ {TARGETS['obs-patient']:.0f} ms, patient-name ≤"
        f" {TARGETS['patient-name']:.0f} ms)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument(
        "--resources",
        nargs="+",
        default=["100000", "1000000"],
        help="dataset sizes; `max`: the largest dataset built for the backend",
    )
    parser.add_argument("--seconds", type=float, default=10, help="per query type, through the server")
    parser.add_argument("--floor-seconds", type=float, default=4, help="per query type, the SQL floor")
    parser.add_argument("--params", type=int, default=200, help="parameter sets (patients) per query type")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--workdir", type=Path, default=WORKDIR, help="where the datasets are kept")
    parser.add_argument("--only", nargs="+", choices=[q.name for q in QUERIES], help="these query types only")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print("\n".join(machine_lines(args.pg_url if "postgresql" in backends else None)))
    print(
        f"run         sizes {args.resources}; concurrency {CONCURRENCY}; {args.seconds:.0f} s per query type"
        f" through `socle serve --workers {args.workers}` (SOCLE_AUTH_REQUIRED=false),"
        f" {args.floor_seconds:.0f} s for its SQL floor; {args.params} parameter sets, seed {args.seed}"
    )
    results: list[SizeResult] = []
    for backend in backends:
        results += run_backend(backend, args.resources, args)
    summary(results)
    print(load_line("end"))
    unsupported = {q for r in results for q in r.unsupported}
    if unsupported:
        print(f"unsupported: {sorted(unsupported)}")
    empty = {name for r in results for name, fig in r.server.items() if not fig.nonempty}
    if empty:
        print(f"never returned an entry: {sorted(empty)}")
    return 1 if empty or unsupported else 0


if __name__ == "__main__":
    sys.exit(main())
