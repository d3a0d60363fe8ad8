"""The search benchmark's datasets: built once under a work folder, reused by every run of bench/search.py.

Synthea-shaped and deterministic for a seed: the 21 Synthea patient Bundles cloned round-robin with
every UUID replaced (`_common._clone`) and a fresh identity (family and given names from fixed pools,
birth date shifted up to two years). The Bundles are loaded in-process through the API's own handler
(`socle.api.router.dispatch` of a transaction Bundle: validation, reference rewriting,
`Store.create_many`, every search index, full text and index hook), as `socle load` does, several
Bundles per database transaction. The server assigns the ids, so a manifest next to each database
keeps, per Bundle, the Patient's id, the number of resources and the facts the queries are made of.

Sizes are built in increasing order into one database; at each size the database is analysed and
copied (SQLite file copy; PostgreSQL `CREATE DATABASE ... TEMPLATE`), so the 100k dataset is the
first Bundles of the 1M one.

    .venv/bin/python bench/search_data.py --backend sqlite --resources 100000 1000000
    .venv/bin/python bench/search_data.py --backend postgresql --resources 100000 1000000

Files: `<workdir>/sqlite-<size>.db` (+ `.json` manifest); PostgreSQL databases `h6_<size>` on the
server of `--pg-url` (manifest `<workdir>/postgresql-<size>.json`).
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
from _common import _UUID, PG_URL, _clone, load_line, machine_lines, patient_templates

from socle.api.request import Context, FhirRequest
from socle.api.router import dispatch
from socle.config import get_settings
from socle.store.access import SYSTEM
from socle.store.engine import make_engine
from socle.store.migrate import upgrade
from socle.store.repository import Store

LOINC, SNOMED = "http://loinc.org", "http://snomed.info/sct"
OBS_CODES = ("29463-7", "8867-4", "8302-2", "55284-4", "72514-3")  # weight, heart rate, height, BP, pain
_SYL = ("bar", "cor", "dan", "el", "fon", "gar", "hil", "ker", "lam", "mor", "nel", "or", "pes", "quin")
_END = ("a", "by", "den", "er", "ez", "ini", "kov", "ley", "man", "ot", "sen", "ton", "uk", "wicz")
GIVEN = ("Ada", "Bruno", "Chloé", "Dmitri", "Eva", "Farid", "Grace", "Hugo", "Inès", "Jonas", "Kenji", "Lina")
WORKDIR = Path("/tmp/h6")


@dataclass
class PatientFacts:
    family: str
    given: str
    birth: str
    obs: tuple[str, int] | None  # (LOINC code, year) of the patient's latest preferred Observation
    conditions: tuple[str, ...]  # SNOMED codes


@dataclass
class Manifest:
    backend: str
    size: int  # resources asked
    resources: int  # resources loaded (whole Bundles)
    seed: int
    location: str  # SQLite file or PostgreSQL database name
    ids: list[str]  # per Bundle: the Patient's id (entry 0)
    entries: list[int]  # per Bundle: resources
    facts: list[PatientFacts]
    ingest: list[dict[str, Any]]  # per step: resources, seconds, load average

    def save(self, path: Path) -> None:
        path.write_bytes(orjson.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> Manifest:
        raw = json.loads(path.read_bytes())
        raw["facts"] = [
            PatientFacts(
                f["family"],
                f["given"],
                f["birth"],
                tuple(f["obs"]) if f["obs"] else None,
                tuple(f["conditions"]),
            )
            for f in raw["facts"]
        ]
        return cls(**raw)


def families() -> list[str]:
    """2,744 family names (14 × 14 × 14), shuffled once: no name is a prefix-search hit of too many."""
    names = [f"{a}{b}{c}".capitalize() for a in _SYL for b in _SYL for c in _END]
    random.Random(7).shuffle(names)
    return names


def bundles(seed: int, start: int = 0) -> Iterator[tuple[dict[str, Any], PatientFacts]]:
    """The endless, deterministic stream of patient transaction Bundles and their facts.

    The first `start` Bundles are skipped without being built: their draws from the random
    generator are replayed (`_draws`), so a loader process can begin anywhere in the stream.
    """
    rng = random.Random(seed)
    templates = [t for _, t in patient_templates()]
    draws = [_draws(t) for t in templates]
    pool = families()
    index = 0
    while True:
        if index < start:
            uuids, ranges = draws[index % len(templates)]
            for _ in range(uuids):
                rng.getrandbits(128)
            for bound in ranges:
                rng.randrange(bound)
            index += 1
            continue
        bundle = _clone(templates[index % len(templates)], rng)
        ident = random.Random(seed * 1_000_003 + index)  # own stream per Bundle
        yield bundle, _fresh_identity(bundle, ident, pool)
        index += 1


def _draws(template: bytes) -> tuple[int, list[int]]:
    """What `_common._clone` draws from its generator for this template: one 128-bit number per
    distinct UUID, then `randrange` bounds for the Patient's fresh identifiers, in order."""
    uuids = len({m.group(0).lower() for m in _UUID.finditer(template)})
    ranges: list[int] = []
    for entry in orjson.loads(template)["entry"]:
        body = entry["resource"]
        if body["resourceType"] != "Patient":
            continue
        for identifier in body.get("identifier", []):
            system = identifier.get("system", "")
            if system.endswith("us-ssn"):
                ranges += [100, 10000]
            elif system.startswith("urn:oid:2.16.840.1.113883.4.3"):
                ranges.append(10**6)
            elif system.endswith("passportNumber"):
                ranges.append(10**8)
    return uuids, ranges


def template_sizes() -> list[int]:
    """Resources per Bundle of each template, in stream order (Bundle i uses template i % len)."""
    return [len(orjson.loads(t)["entry"]) for _, t in patient_templates()]


def _fresh_identity(bundle: dict[str, Any], rng: random.Random, pool: list[str]) -> PatientFacts:
    patient = bundle["entry"][0]["resource"]
    family, given = rng.choice(pool), rng.choice(GIVEN)
    for name in patient.get("name", []):
        name["family"], name["given"] = family, [given]
    year, month, day = (int(p) for p in patient["birthDate"].split("-"))
    year += rng.randint(-2, 2)
    birth = f"{year:04d}-{month:02d}-{min(day, 28):02d}"
    patient["birthDate"] = birth
    latest: dict[str, int] = {}
    conditions = []
    for entry in bundle["entry"]:
        res = entry["resource"]
        coding = (res.get("code") or {}).get("coding") or [{}]
        if res["resourceType"] == "Observation" and coding[0].get("code") in OBS_CODES:
            when = res.get("effectiveDateTime", "")[:4]
            if when.isdigit():
                latest[coding[0]["code"]] = max(latest.get(coding[0]["code"], 0), int(when))
        elif res["resourceType"] == "Condition" and coding[0].get("system") == SNOMED:
            conditions.append(coding[0]["code"])
    obs = next(((c, latest[c]) for c in OBS_CODES if c in latest), None)
    return PatientFacts(family, given, birth, obs, tuple(conditions))


# -- locations ------------------------------------------------------------------------------------


def manifest_path(workdir: Path, backend: str, size: int) -> Path:
    return workdir / f"{backend}-{size}.json"


def pg_database(size: int) -> str:
    return f"h6_{size}"


def pg_url_for(pg_url: str, database: str) -> str:
    base, _, query = pg_url.partition("?")
    base = base.rsplit("/", 1)[0] + "/" + database
    return f"{base}?{query}" if query else base


def vacuum(url: str) -> None:
    """VACUUM (ANALYZE) a snapshot: a database copied from a template starts with no activity counts,
    so autovacuum leaves it alone, its visibility map stays unset and index-only scans visit the heap
    (seen at 1M: "Heap Fetches" on every index probe of a `_has` page), unlike a live database."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")


def database_url(manifest: Manifest, workdir: Path, pg_url: str) -> str:
    if manifest.backend == "sqlite":
        return f"sqlite:///{workdir / manifest.location}"
    return pg_url_for(pg_url, manifest.location)


def available(workdir: Path, backend: str, size: int) -> Manifest | None:
    path = manifest_path(workdir, backend, size)
    return Manifest.load(path) if path.exists() else None


# -- building -------------------------------------------------------------------------------------


def build(backend: str, sizes: list[int], seed: int, per_txn: int, workdir: Path, pg_url: str) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    if backend == "sqlite":
        building = workdir / "sqlite-building.db"
        for p in workdir.glob("sqlite-building.db*"):
            p.unlink()
        url = f"sqlite:///{building}"
    else:
        building_db = "h6_building"
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {building_db}")
            conn.execute(f"CREATE DATABASE {building_db}")
        url = pg_url_for(pg_url, building_db)
    engine = make_engine(url)
    upgrade(engine)
    store = Store(engine)
    settings = get_settings()
    stream = bundles(seed)
    ids: list[str] = []
    entries: list[int] = []
    facts: list[PatientFacts] = []
    steps: list[dict[str, Any]] = []
    loaded = 0
    for size in sorted(sizes):
        t0, start = time.perf_counter(), loaded
        last_report = t0
        while loaded < size:
            with store.write() as conn:
                ctx = Context(store, conn, SYSTEM, settings, "urn:socle:bench")
                for _ in range(per_txn):
                    if loaded >= size:
                        break
                    bundle, fact = next(stream)
                    response = dispatch(
                        FhirRequest("POST", "", headers={"prefer": "return=minimal"}, body=bundle), ctx
                    )
                    first = response.body["entry"][0]["response"]
                    if not str(first.get("status", "")).startswith("201"):
                        raise RuntimeError(f"Bundle {len(ids)}: {response.body['entry'][0]}")
                    location = first["location"].split("/")
                    ids.append(location[location.index("_history") - 1])
                    entries.append(len(bundle["entry"]))
                    facts.append(fact)
                    loaded += len(bundle["entry"])
            now = time.perf_counter()
            if now - last_report > 30:
                last_report = now
                rate = (loaded - start) / (now - t0)
                print(f"   {backend}: {loaded} resources, {rate:.0f}/s ({load_line('now')})", flush=True)
        seconds = time.perf_counter() - t0
        step = {
            "resources": loaded - start,
            "seconds": seconds,
            "rate": (loaded - start) / seconds,
            "load": load_line("end of step"),
        }
        steps.append(step)
        print(
            f"== {backend} {size}: {loaded} resources, step {step['rate']:.0f} resources/s ({step['load']})",
            flush=True,
        )
        store.analyze()
        if backend == "sqlite":
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            target = f"sqlite-{size}.db"
            for p in workdir.glob(f"{target}*"):
                p.unlink()
            with sqlite3.connect(building) as src, sqlite3.connect(workdir / target) as dst:
                src.backup(dst)
            location = target
        else:
            engine.dispose()
            location = pg_database(size)
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {location}")
                conn.execute(f"CREATE DATABASE {location} TEMPLATE h6_building")
            vacuum(pg_url_for(pg_url, location))
            engine = make_engine(url)
            store = Store(engine)
        manifest = Manifest(backend, size, loaded, seed, location, ids, entries, facts, steps)
        manifest.save(manifest_path(workdir, backend, size))
        print(f"   saved {location} and {manifest_path(workdir, backend, size)}", flush=True)
    engine.dispose()
    if backend == "sqlite":
        for p in workdir.glob("sqlite-building.db*"):
            p.unlink()
    else:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS h6_building")


def _worker(args: tuple[int, int, int, int, int, int, str]) -> list[tuple[int, str, int, PatientFacts]]:
    """Load this worker's share (every `workers`-th group of `per_txn` Bundles) of Bundles [first, last]."""
    seed, first, last, per_txn, workers, worker, url = args
    engine = make_engine(url)
    store, settings = Store(engine), get_settings()
    out: list[tuple[int, str, int, PatientFacts]] = []
    stream = bundles(seed, first)
    group: list[tuple[int, dict[str, Any], PatientFacts]] = []

    def flush() -> None:
        with store.write() as conn:
            ctx = Context(store, conn, SYSTEM, settings, "urn:socle:bench")
            for index, bundle, fact in group:
                request = FhirRequest("POST", "", headers={"prefer": "return=minimal"}, body=bundle)
                first_entry = dispatch(request, ctx).body["entry"][0]["response"]
                if not str(first_entry.get("status", "")).startswith("201"):
                    raise RuntimeError(f"Bundle {index}: {first_entry}")
                location = first_entry["location"].split("/")
                out.append((index, location[location.index("_history") - 1], len(bundle["entry"]), fact))
        group.clear()

    for index in range(first, last + 1):
        bundle, fact = next(stream)
        if ((index - first) // per_txn) % workers == worker:
            group.append((index, bundle, fact))
            if len(group) == per_txn:
                flush()
    if group:
        flush()
    engine.dispose()
    return out


def extend_parallel(
    size_from: int, size_to: int, seed: int, per_txn: int, workers: int, workdir: Path, pg_url: str
) -> None:
    """PostgreSQL only: grow the `size_from` dataset to `size_to` with several loader processes.

    The Bundles are the same as a sequential build's (each worker walks the whole deterministic
    stream and loads its share); only the order of the resource keys differs.
    """
    import concurrent.futures
    import multiprocessing

    base = Manifest.load(manifest_path(workdir, "postgresql", size_from))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS h6_building")
        conn.execute(f"CREATE DATABASE h6_building TEMPLATE {base.location}")
    url = pg_url_for(pg_url, "h6_building")
    total, last = base.resources, len(base.ids) - 1
    sizes = template_sizes()
    index = len(base.ids)
    while total < size_to:
        total += sizes[index % len(sizes)]
        last = index
        index += 1
    t0 = time.perf_counter()
    jobs = [(seed, len(base.ids), last, per_txn, workers, w, url) for w in range(workers)]
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        parts = [row for rows in pool.map(_worker, jobs) for row in rows]
    seconds = time.perf_counter() - t0
    parts.sort(key=lambda r: r[0])
    assert [r[0] for r in parts] == list(range(len(base.ids), last + 1)), "missing Bundles"
    added = sum(r[2] for r in parts)
    step = {
        "resources": added,
        "seconds": seconds,
        "rate": added / seconds,
        "load": load_line("end of step"),
        "workers": workers,
    }
    print(
        f"== postgresql {size_to}: {base.resources + added} resources, step {step['rate']:.0f} resources/s"
        f" with {workers} processes ({step['load']})",
        flush=True,
    )
    engine = make_engine(url)
    Store(engine).analyze()
    engine.dispose()
    location = pg_database(size_to)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {location}")
        conn.execute(f"ALTER DATABASE h6_building RENAME TO {location}")
    manifest = Manifest(
        "postgresql",
        size_to,
        base.resources + added,
        seed,
        location,
        base.ids + [r[1] for r in parts],
        base.entries + [r[2] for r in parts],
        base.facts + [r[3] for r in parts],
        [*base.ingest, step],
    )
    manifest.save(manifest_path(workdir, "postgresql", size_to))
    print(f"   saved {location} and {manifest_path(workdir, 'postgresql', size_to)}", flush=True)


def stream_facts(seed: int, count: int) -> list[PatientFacts]:
    """The facts of the first `count` Bundles without building them: what the queries use does not
    depend on the clone (codes and dates are the template's), except the identity (own stream)."""
    templates = [orjson.loads(t) for _, t in patient_templates()]
    pool = families()
    per_template = [_fresh_identity(orjson.loads(orjson.dumps(t)), random.Random(0), pool) for t in templates]
    out = []
    for index in range(count):
        template = templates[index % len(templates)]
        patient = orjson.loads(orjson.dumps(template["entry"][0]["resource"]))
        ident = _fresh_identity(
            {"entry": [{"resource": patient}]}, random.Random(seed * 1_000_003 + index), pool
        )
        known = per_template[index % len(templates)]
        out.append(PatientFacts(ident.family, ident.given, ident.birth, known.obs, known.conditions))
    return out


def snapshot_sqlite(seed: int, workdir: Path) -> None:
    """Copy the SQLite database being built (a consistent snapshot, taken while the build goes on)
    as a dataset of the size it has reached, with its manifest rebuilt from the database: a
    sequential build commits whole Bundles in stream order, one Patient each."""
    building = workdir / "sqlite-building.db"
    partial = workdir / "sqlite-snapshot.db"
    for p in workdir.glob("sqlite-snapshot.db*"):
        p.unlink()
    t0 = time.perf_counter()
    with sqlite3.connect(building, timeout=600) as src, sqlite3.connect(partial) as dst:
        src.backup(dst)
    with sqlite3.connect(partial) as conn:
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM resource WHERE resource_type = 'Patient' ORDER BY resource_key"
            )
        ]
        resources = conn.execute("SELECT count(*) FROM resource").fetchone()[0]
    sizes = template_sizes()
    entries = [sizes[i % len(sizes)] for i in range(len(ids))]
    if sum(entries) != resources:
        raise RuntimeError(f"{resources} resources but {len(ids)} Bundles make {sum(entries)}")
    location = f"sqlite-{resources}.db"
    partial.rename(workdir / location)
    engine = make_engine(f"sqlite:///{workdir / location}")
    upgrade(engine)
    Store(engine).analyze()
    engine.dispose()
    step = {"resources": resources, "seconds": 0.0, "rate": 0.0, "load": load_line("snapshot")}
    previous = sorted(workdir.glob("sqlite-*.json"))
    if previous:
        step = Manifest.load(previous[-1]).ingest[-1]
    manifest = Manifest(
        "sqlite", resources, resources, seed, location, ids, entries, stream_facts(seed, len(ids)), [step]
    )
    manifest.save(manifest_path(workdir, "sqlite", resources))
    print(
        f"   snapshot {location} ({resources} resources, {len(ids)} Bundles)"
        f" in {time.perf_counter() - t0:.0f} s"
    )


def snapshot_postgresql(seed: int, workdir: Path, pg_url: str) -> None:
    """Make a dataset of what a stopped parallel build (`--extend-from`) has loaded so far.

    Its loader processes interleave groups of Bundles, so the database holds a subset of the
    stream, not a prefix: each stored Patient is matched to its Bundle by its identity (family,
    given name, birth date), which the stream fixes; the few ambiguous identities are left out of
    the query parameters (their resources stay in the database)."""
    t0 = time.perf_counter()
    url = pg_url_for(pg_url, "h6_building")
    with psycopg.connect(url) as conn:
        resources = int(conn.execute("SELECT count(*) FROM resource").fetchone()[0])  # type: ignore[index]
        rows = conn.execute(
            "SELECT id, content->'name'->0->>'family', content->'name'->0->'given'->>0, content->>'birthDate'"
            " FROM resource WHERE resource_type = 'Patient'"
        ).fetchall()
    sizes = template_sizes()
    count, total = 0, 0
    while total < resources * 3:  # a bound on the Bundles the build may have reached
        total += sizes[count % len(sizes)]
        count += 1
    facts = stream_facts(seed, count)
    where: dict[tuple[str, str, str], list[int]] = {}
    for index, fact in enumerate(facts):
        where.setdefault((fact.family, fact.given, fact.birth), []).append(index)
    found: list[tuple[int, str]] = []
    ambiguous = 0
    for id, family, given, birth in rows:
        matches = where.get((family, given, birth), [])
        if len(matches) == 1:
            found.append((matches[0], id))
        else:
            ambiguous += 1
    found.sort()
    engine = make_engine(url)
    Store(engine).analyze()
    engine.dispose()
    location = pg_database(resources)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {location}")
        conn.execute(f"ALTER DATABASE h6_building RENAME TO {location}")
    previous = Manifest.load(sorted(workdir.glob("postgresql-*.json"))[-1])
    manifest = Manifest(
        "postgresql",
        resources,
        resources,
        seed,
        location,
        [id for _, id in found],
        [sizes[i % len(sizes)] for i, _ in found],
        [facts[i] for i, _ in found],
        previous.ingest,
    )
    manifest.save(manifest_path(workdir, "postgresql", resources))
    print(
        f"   snapshot {location}: {resources} resources, {len(rows)} Patients, {len(found)} matched to"
        f" their Bundle ({ambiguous} ambiguous) in {time.perf_counter() - t0:.0f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], required=True)
    parser.add_argument("--resources", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--bundles-per-transaction", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument(
        "--extend-from",
        type=int,
        help="PostgreSQL: grow this built size to the largest --resources, in parallel",
    )
    parser.add_argument("--processes", type=int, default=3, help="loader processes of --extend-from")
    parser.add_argument(
        "--snapshot",
        action="store_true",
        help="make a dataset of the database being built (SQLite: a live copy; PostgreSQL: once stopped)",
    )
    args = parser.parse_args()
    print("\n".join(machine_lines(args.pg_url if args.backend == "postgresql" else None)), flush=True)
    if args.snapshot and args.backend == "sqlite":
        snapshot_sqlite(args.seed, args.workdir)
        return 0
    if args.snapshot:
        snapshot_postgresql(args.seed, args.workdir, args.pg_url)
        return 0
    if args.extend_from:
        extend_parallel(
            args.extend_from,
            max(args.resources),
            args.seed,
            args.bundles_per_transaction,
            args.processes,
            args.workdir,
            args.pg_url,
        )
        print(load_line("end"))
        return 0
    build(args.backend, args.resources, args.seed, args.bundles_per_transaction, args.workdir, args.pg_url)
    print(load_line("end"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
