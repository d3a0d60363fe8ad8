"""Master patient index benchmark: `$match` quality and latency, `$ins-lookup` latency, duplicates.

For each backend and population size: `socle demo generate` (in-process: the INS registry, one
hospital Patient per person, ~2 % second records with errors, no clinical content) into a fresh
database, then
- precision and recall of `$match` on the labelled benchmark queries (benchmark_set.py: 20 % exact,
  55 % one error, 25 % two; 10 % of queries look for someone not stored, half of them homonyms):
  precision of the `certain` grade, recall of certain+probable, and the precision of probable;
- latency of one `$match`, three ways: the candidate SQL alone (the database floor), the service
  (`mpi.match`: SQL + scoring), and the whole HTTP request through the ASGI app in-process;
- latency of one `$ins-lookup` over HTTP (in-process), on random registry identities;
- duplicate detection (`socle mpi duplicates`) over the whole store: throughput and recall against
  the generated second records.
The 1M/100k ratio of the p95 latencies is printed when both sizes run.

    .venv/bin/python bench/mpi.py --backend both --patients 10000 100000
    .venv/bin/python bench/mpi.py --fit --patients 100000 --queries 20000   # re-estimate model.py
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from _common import PG_URL, load_line, machine_lines, percentile, pg_schema, unique_name

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from socle.referentials.identity import model  # noqa: E402
from socle.referentials.identity.benchmark_set import Query, benchmark_queries  # noqa: E402
from socle.referentials.identity.blocking import index_keys, query_keys  # noqa: E402
from socle.referentials.identity.comparison import compare, record_from_traits  # noqa: E402
from socle.referentials.identity.population import generate_people  # noqa: E402
from socle.referentials.identity.traits import Traits  # noqa: E402


def patient_json(traits: Traits) -> dict[str, Any]:
    """A $match input as a client would send it: the traits typed at a desk."""
    patient: dict[str, Any] = {"resourceType": "Patient"}
    name: dict[str, Any] = {"use": "official"}
    if traits.birth_name:
        name["family"] = traits.birth_name
    if traits.given_names:
        name["given"] = list(traits.given_names)
    patient["name"] = [name]
    if traits.used_name:
        patient["name"].append({"use": "usual", "family": traits.used_name})
    if traits.birth_date:
        patient["birthDate"] = traits.birth_date.to_fhir()
    if traits.sex:
        patient["gender"] = traits.sex
    if traits.birthplace:
        patient["extension"] = [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
                "valueAddress": {
                    "extension": [
                        {
                            "url": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code",
                            "valueCoding": {"code": traits.birthplace},
                        }
                    ]
                },
            }
        ]
    return patient


def evaluate(results: Sequence[tuple[Query, str | None, list[tuple[str | None, str]]]]) -> dict[str, Any]:
    """Precision of certain, recall of certain+probable, precision of probable, by query."""
    certain_ok = certain_bad = probable_ok = probable_bad = 0
    positives = found = 0
    missed: collections.Counter[tuple[str, ...]] = collections.Counter()
    for query, truth, graded in results:
        got = False
        for pid, grade in graded:
            if grade == "certain":
                certain_ok += pid == truth
                certain_bad += pid != truth
            elif grade == "probable":
                probable_ok += pid == truth
                probable_bad += pid != truth
            got = got or (pid == truth and grade in ("certain", "probable"))
        if truth is not None:
            positives += 1
            found += got
            if not got:
                missed[query.errors] += 1
    return {
        "certain_precision": certain_ok / max(1, certain_ok + certain_bad),
        "certain": (certain_ok, certain_bad),
        "probable_precision": probable_ok / max(1, probable_ok + probable_bad),
        "probable": (probable_ok, probable_bad),
        "recall": found / max(1, positives),
        "positives": positives,
        "missed": missed.most_common(6),
    }


def run_size(
    url: str,
    backend: str,
    patients: int,
    queries: int,
    seed: int,
    http_samples: int,
    *,
    reuse: bool = False,
    reindex: bool = False,
    duplicates: bool = True,
) -> dict[str, Any]:
    from sqlalchemy import select
    from starlette.testclient import TestClient

    from socle.app import create_app
    from socle.config import Settings
    from socle.referentials.identity import index, mpi
    from socle.referentials.identity.demo import generate
    from socle.referentials.identity.registry_schema import ins_registry, mpi_traits
    from socle.store.access import SYSTEM
    from socle.store.engine import make_engine
    from socle.store.migrate import upgrade
    from socle.store.repository import Store

    engine = make_engine(url)
    upgrade(engine)
    t0 = time.perf_counter()
    if reuse:
        # The database was loaded by an earlier run with the same seed: only rebuild the labels (the
        # generator is deterministic) and, when asked, the MPI rows for the current blocking keys.
        summary = generate(patients=patients, seed=seed, engine=None, out=None, clinical=0, queries=queries)
        if reindex:
            with engine.begin() as conn:
                indexed = index.rebuild(conn)
            print(f"  MPI index rebuilt: {indexed} Patients in {time.perf_counter() - t0:.0f} s", flush=True)
        load_seconds = 0.0
    else:
        summary = generate(patients=patients, seed=seed, engine=engine, out=None, clinical=0, queries=queries)
        load_seconds = time.perf_counter() - t0
        print(
            f"  loaded {summary.patients} people + {summary.duplicates} second records, "
            f"{summary.registry} registry identities in {load_seconds:.0f} s "
            f"({(summary.patients + summary.duplicates) / load_seconds:.0f} Patients/s)",
            flush=True,
        )
    print(f"  {load_line('end of load')}", flush=True)
    from socle.referentials.identity.demo_resources import patient_id

    service: list[float] = []
    floor: list[float] = []
    sizes: list[int] = []
    results = []
    with engine.connect() as conn, conn.begin():
        for q in summary.benchmark:
            record = record_from_traits(q.traits)
            t = time.perf_counter()
            found_candidates = index.candidates(conn, record, SYSTEM)
            floor.append(time.perf_counter() - t)
            sizes.append(len(found_candidates))
            t = time.perf_counter()
            found = mpi.match(conn, SYSTEM, q.traits, count=10)
            service.append(time.perf_counter() - t)
            ids: dict[int, str | None] = {
                int(row[0]): row[1]
                for row in conn.execute(
                    select(mpi_traits.c.resource_key, mpi_traits.c.compartment).where(
                        mpi_traits.c.resource_key.in_([s.key for s in found])
                    )
                )
            }
            truth = None if q.truth is None else patient_id(seed, q.truth)
            results.append((q, truth, [(ids.get(s.key), s.grade) for s in found]))
        registry_rows = conn.execute(select(ins_registry).limit(5000)).all()
    quality = evaluate(results)

    # The FHIR route's own cost, without bearer checks (bench/README.md, "Bearer protection").
    app = create_app(Settings(database_url="sqlite://", auth_required=False), store=Store(engine))
    http: list[float] = []
    lookups: list[float] = []
    rng = random.Random(seed)
    with TestClient(app) as client:
        for q in rng.sample(summary.benchmark, min(http_samples, len(summary.benchmark))):
            patient = patient_json(q.traits)
            if "birthDate" not in patient:
                continue
            body = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": patient}]}
            t = time.perf_counter()
            response = client.post("/fhir/Patient/$match", json=body)
            http.append(time.perf_counter() - t)
            assert response.status_code == 200, response.text
        for row in rng.sample(registry_rows, min(http_samples, len(registry_rows))):
            params = [
                {"name": "family", "valueString": row.birth_name},
                {"name": "given", "valueString": row.given_names.split()[0]},
                {"name": "birthdate", "valueDate": row.birth_date},
                {"name": "gender", "valueCode": "male" if row.sex == "M" else "female"},
            ]
            t = time.perf_counter()
            response = client.post(
                "/fhir/Patient/$ins-lookup", json={"resourceType": "Parameters", "parameter": params}
            )
            lookups.append(time.perf_counter() - t)
            assert response.status_code == 200, response.text

    print(f"  {load_line('end of $match/$ins-lookup')}", flush=True)
    t = time.perf_counter()
    candidate_pairs = 0

    def count_pairs(_patients: int, pairs: int) -> None:
        nonlocal candidate_pairs
        candidate_pairs += pairs

    pairs = []
    if duplicates:
        with engine.connect() as conn, conn.begin():
            pairs = list(mpi.find_duplicates(conn, SYSTEM, min_grade="probable", progress=count_pairs))
    dup_seconds = time.perf_counter() - t
    generated = {frozenset(p) for p in summary.duplicate_truth}
    reported = {frozenset((p.id_a, p.id_b)) for p in pairs}
    engine.dispose()
    ms = 1000.0
    return {
        "backend": backend,
        "patients": patients,
        "stored": summary.patients + summary.duplicates,
        "load_seconds": load_seconds,
        "quality": quality,
        "candidates_mean": sum(sizes) / max(1, len(sizes)),
        "candidates_p95": percentile([float(n) for n in sizes], 95),
        "candidates_max": max(sizes, default=0),
        "floor_p50": percentile(floor, 50) * ms,
        "floor_p95": percentile(floor, 95) * ms,
        "service_p50": percentile(service, 50) * ms,
        "service_p95": percentile(service, 95) * ms,
        "http_p50": percentile(http, 50) * ms,
        "http_p95": percentile(http, 95) * ms,
        "http_p99": percentile(http, 99) * ms,
        "lookup_p50": percentile(lookups, 50) * ms,
        "lookup_p95": percentile(lookups, 95) * ms,
        "duplicates": duplicates,
        "dup_seconds": dup_seconds,
        "dup_rate": (summary.patients + summary.duplicates) / dup_seconds if dup_seconds else 0.0,
        "dup_candidate_pairs": candidate_pairs,
        "dup_reported": len(reported),
        "dup_recall": len(reported & generated) / max(1, len(generated)),
        "dup_truth": len(generated),
        "dup_precision": len(reported & generated) / max(1, len(reported)),
    }


def report(r: dict[str, Any]) -> None:
    q = r["quality"]
    print(f"  $match quality on {q['positives']} positive queries (+ negatives):")
    print(
        f"    certain   precision {q['certain_precision']:.5f} "
        f"({q['certain'][0]} right, {q['certain'][1]} wrong)"
    )
    print(
        f"    probable  precision {q['probable_precision']:.4f} "
        f"({q['probable'][0]} right, {q['probable'][1]} wrong)"
    )
    print(f"    certain+probable recall {q['recall']:.4f}; most missed: {q['missed']}")
    print(
        f"  candidates per query: mean {r['candidates_mean']:.1f}, p95 {r['candidates_p95']:.0f}, "
        f"max {r['candidates_max']}"
    )
    print(
        f"  $match latency ms      p50 / p95: candidate SQL {r['floor_p50']:.2f} / {r['floor_p95']:.2f}, "
        f"service {r['service_p50']:.2f} / {r['service_p95']:.2f}, "
        f"HTTP in-process {r['http_p50']:.2f} / {r['http_p95']:.2f} (p99 {r['http_p99']:.2f})"
    )
    print(
        f"  $ins-lookup latency ms p50 / p95: HTTP in-process {r['lookup_p50']:.2f} / {r['lookup_p95']:.2f}"
    )
    if not r["duplicates"]:
        print("  duplicates: skipped (--no-duplicates)")
    else:
        print(
            f"  duplicates: {r['stored']} Patients in {r['dup_seconds']:.1f} s "
            f"({r['dup_rate']:.0f} Patients/s, "
            f"{r['dup_candidate_pairs']} candidate pairs), {r['dup_reported']} pairs >= probable, "
            f"recall {r['dup_recall']:.3f} of {r['dup_truth']} generated duplicates, "
            f"precision {r['dup_precision']:.3f}"
        )
    print(f"  {load_line('end of size')}", flush=True)


def fit(patients: int, queries: int, seed: int, random_pairs: int) -> None:
    """Re-estimate model.WEIGHTS: m from labelled true pairs, u from random pairs (in memory)."""
    people = list(generate_people(patients, seed))
    records = [record_from_traits(p.traits, p.index) for p in people]
    blocks: dict[str, list[int]] = collections.defaultdict(list)
    for r in records:
        assert r.key is not None
        for k in index_keys(r):
            blocks[k].append(r.key)
    matches = []
    for q in benchmark_queries(people, seed, queries):
        if q.truth is None:
            continue
        record = record_from_traits(q.traits)
        candidates = {c for k in query_keys(record) for c in blocks.get(k, ())}
        if q.truth in candidates:
            matches.append(compare(record, records[q.truth]))
    rng = random.Random(seed + 5)
    randoms = (
        compare(records[rng.randrange(patients)], records[rng.randrange(patients)])
        for _ in range(random_pairs)
    )
    weights = model.fit_weights(matches, randoms)
    weights["ins"] = dict(model.WEIGHTS["ins"])
    print(json.dumps(weights, indent=1))


def blocks(patients: int, queries: int, seed: int) -> None:
    """Candidates per `$match` query and quality with the current blocking keys, in memory (no SQL,
    no second records): `index_keys`/`query_keys`, then `compare` and `model.score` as `mpi.match`."""
    people = list(generate_people(patients, seed))
    records = [record_from_traits(p.traits, p.index) for p in people]
    block_index: dict[str, list[int]] = collections.defaultdict(list)
    for r in records:
        assert r.key is not None
        for k in index_keys(r):
            block_index[k].append(r.key)
    stored_keys = sum(len(v) for v in block_index.values())
    sizes: list[float] = []
    results = []
    for q in benchmark_queries(people, seed, queries):
        record = record_from_traits(q.traits)
        found = {c for k in query_keys(record) for c in block_index.get(k, ())}
        sizes.append(float(len(found)))
        scored = model.score([(c, compare(record, records[c])) for c in found])
        graded = [(str(s.key), s.grade) for s in scored if s.grade != "certainly-not"]
        results.append((q, None if q.truth is None else str(q.truth), graded))
    quality = evaluate(results)
    print(
        f"[memory] {patients} identities, {stored_keys / patients:.2f} keys per identity: candidates per "
        f"query mean {sum(sizes) / len(sizes):.1f}, p95 {percentile(sizes, 95):.0f}, "
        f"p99 {percentile(sizes, 99):.0f}, max {max(sizes):.0f}; certain precision "
        f"{quality['certain_precision']:.5f} {quality['certain']}, c+p recall {quality['recall']:.4f}, "
        f"probable precision {quality['probable_precision']:.3f}",
        flush=True,
    )


def common_sounds(patients: int, seed: int) -> None:
    """Print the body of referentials/identity/common_sounds.py: the name sounds borne by at least
    THRESHOLD of a synthetic population."""
    from socle.referentials.identity.blocking import surname_sounds
    from socle.referentials.identity.common_sounds import THRESHOLD
    from socle.referentials.identity.names import phonetic

    surnames: collections.Counter[str] = collections.Counter()
    givens: collections.Counter[str] = collections.Counter()
    for person in generate_people(patients, seed):
        record = record_from_traits(person.traits)
        surnames.update(surname_sounds(record))
        if record.given:
            givens[phonetic(record.given[0])] += 1
    for name, counts in (("COMMON_SURNAME_SOUNDS", surnames), ("COMMON_GIVEN_SOUNDS", givens)):
        common = " ".join(sorted(k for k, n in counts.items() if k and n / patients >= THRESHOLD))
        lines = "\n".join(f'        "{line} "' for line in textwrap.wrap(common, width=92))
        print(f"{name} = frozenset(\n    (\n{lines}\n    ).split()\n)\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--patients", type=int, nargs="+", default=[10_000])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--http-samples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="Folder for SQLite files (default: a temp dir)."
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="SQLite: keep the database files in --workdir and reuse one loaded by an earlier run "
        "(same --patients and --seed) instead of loading again.",
    )
    parser.add_argument(
        "--reindex", action="store_true", help="With --reuse: rebuild the MPI rows first (new blocking keys)."
    )
    parser.add_argument("--no-duplicates", action="store_true", help="Skip the duplicate detection pass.")
    parser.add_argument("--fit", action="store_true", help="Print re-estimated model weights and stop.")
    parser.add_argument("--random-pairs", type=int, default=3_000_000)
    parser.add_argument(
        "--blocks",
        action="store_true",
        help="Candidates per query and quality in memory (no database), for each --patients, then stop.",
    )
    parser.add_argument(
        "--common-sounds",
        action="store_true",
        help="Print the lists of referentials/identity/common_sounds.py for --patients, then stop.",
    )
    args = parser.parse_args()
    if args.fit:
        fit(args.patients[0], args.queries, args.seed, args.random_pairs)
        return
    if args.blocks:
        for line in machine_lines():
            print(line)
        for size in args.patients:
            blocks(size, args.queries, args.seed)
        return
    if args.common_sounds:
        common_sounds(args.patients[0], args.seed)
        return
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    for line in machine_lines(PG_URL if "postgresql" in backends else None):
        print(line)
    by_backend: dict[str, dict[int, dict[str, Any]]] = collections.defaultdict(dict)
    for backend in backends:
        for size in args.patients:
            print(
                f"\n[{backend}] {size} identities, {args.queries} benchmark queries, seed {args.seed}",
                flush=True,
            )
            with ExitStack() as stack:
                if backend == "sqlite":
                    folder = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
                    path = folder / f"mpi-{size}-seed{args.seed}.db"
                    reuse = args.reuse and path.exists()
                    if not reuse:
                        for suffix in ("", "-wal", "-shm"):
                            Path(f"{path}{suffix}").unlink(missing_ok=True)
                    url = f"sqlite:///{path}"
                else:
                    reuse = False
                    url = stack.enter_context(pg_schema(PG_URL, unique_name("bench_mpi")))
                result = run_size(
                    url,
                    backend,
                    size,
                    args.queries,
                    args.seed,
                    args.http_samples,
                    reuse=reuse,
                    reindex=args.reindex,
                    duplicates=not args.no_duplicates,
                )
            report(result)
            by_backend[backend][size] = result
    for backend, sizes in by_backend.items():
        if len(sizes) > 1:
            small, large = min(sizes), max(sizes)
            for key in ("service_p95", "http_p95", "lookup_p95"):
                ratio = sizes[large][key] / sizes[small][key] if sizes[small][key] else float("nan")
                print(f"[{backend}] {key} {large}/{small} ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
