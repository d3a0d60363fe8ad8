"""`socle demo generate`: the synthetic population into a database and/or NDJSON files.

What is written:
- the national registry (`ins_registry`): every generated person, plus the outsiders of the benchmark
  (people INSi knows and the hospital does not);
- the store: one hospital Patient per person (demo_resources.py), ~2 % second records with errors,
  the médecins traitants, and clinical content for the first `clinical` people;
- files (`--out`): `Patient.ndjson`, `Practitioner.ndjson`, `clinical.ndjson`, `ins-registry.ndjson`,
  `match-benchmark.ndjson` (queries with their ground truth) and `duplicates-truth.ndjson`.
The database path goes through `Store.create_many` in batches (one transaction each); the MPI rows
come with it (socle.store.index_hooks), so $match works at once.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy import Engine, text

from socle.referentials.identity import index  # noqa: F401  (registers the MPI index hook)
from socle.referentials.identity.benchmark_set import Query, benchmark_queries, query_to_json
from socle.referentials.identity.demo_resources import (
    ClinicalCloner,
    duplicate_record,
    gp_for,
    gp_practitioner,
    hospital_record,
    patient_id,
)
from socle.referentials.identity.population import Person, generate_people
from socle.referentials.identity.registry import load_registry, registry_row
from socle.store.access import SYSTEM
from socle.store.repository import Store

__all__ = ["DemoSummary", "generate"]

BATCH = 2000


@dataclass
class DemoSummary:
    patients: int = 0
    duplicates: int = 0
    registry: int = 0
    practitioners: int = 0
    clinical: int = 0
    queries: int = 0
    files: list[Path] = field(default_factory=list)
    # Kept for benchmarks: the labelled queries and the (original, second record) id pairs.
    benchmark: list[Query] = field(default_factory=list, repr=False)
    duplicate_truth: list[tuple[str, str]] = field(default_factory=list, repr=False)


def generate(
    *,
    patients: int,
    seed: int,
    engine: Engine | None,
    out: Path | None,
    clinical: int = 100,
    queries: int = 1000,
    professionals: int = 2000,
    demo_oid: bool = True,
    progress: Callable[[str, int], None] | None = None,
) -> DemoSummary:
    summary = DemoSummary()
    people = list(generate_people(patients, seed))
    rng = random.Random(seed ^ 0x5EED)
    bench = benchmark_queries(people, seed, queries) if queries else []
    outsider_people = [q for q in bench if q.truth is None]
    store = Store(engine) if engine is not None else None
    with ExitStack() as stack:
        files: dict[str, IO[bytes]] = {}
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            for name in (
                "Patient",
                "Practitioner",
                "clinical",
                "ins-registry",
                "match-benchmark",
                "duplicates-truth",
            ):
                path = out / f"{name}.ndjson"
                files[name] = stack.enter_context(path.open("wb"))
                summary.files.append(path)

        def emit(name: str, rows: Iterable[dict[str, Any]]) -> None:
            if name in files:
                files[name].write(b"".join(orjson.dumps(r) + b"\n" for r in rows))

        # The registry: everyone, so that $ins-lookup finds the stored people and the outsiders.
        rows = [registry_row(p, demo=demo_oid) for p in people]
        emit("ins-registry", rows)
        if store is not None:
            with store.write() as conn:
                summary.registry = load_registry(conn, people, demo=demo_oid)
        else:
            summary.registry = len(rows)
        del rows
        if progress:
            progress("registry", summary.registry)

        gps = {gp_for(p, professionals).practitioner_id: gp_for(p, professionals) for p in people}
        practitioners = [gp_practitioner(gp) for gp in gps.values()]
        emit("Practitioner", practitioners)
        if store is not None:
            with store.write() as conn:
                existing = store.existing_ids(conn, "Practitioner", [p["id"] for p in practitioners], SYSTEM)
                store.create_many(conn, [p for p in practitioners if p["id"] not in existing])
        summary.practitioners = len(practitioners)

        cloner = ClinicalCloner(seed)
        for start in range(0, len(people), BATCH):
            chunk = people[start : start + BATCH]
            records: list[dict[str, Any]] = []
            truths: list[dict[str, Any]] = []
            for person in chunk:
                records.append(
                    hospital_record(person, seed, rng, professionals=professionals, demo_oid=demo_oid)
                )
                if rng.random() < 0.02:
                    duplicate, errors = duplicate_record(person, seed, rng, professionals=professionals)
                    records.append(duplicate)
                    truths.append(
                        {"a": patient_id(seed, person.index), "b": duplicate["id"], "errors": list(errors)}
                    )
                    summary.duplicate_truth.append((patient_id(seed, person.index), duplicate["id"]))
            clinical_rows = [
                resource
                for person in chunk
                if person.index < clinical
                for resource in cloner.clone(person, f"Patient/{patient_id(seed, person.index)}")
            ]
            emit("Patient", records)
            emit("duplicates-truth", truths)
            emit("clinical", clinical_rows)
            if store is not None:
                with store.write() as conn:
                    store.create_many(conn, records)  # MPI rows written by the store's index hook
                    if clinical_rows:
                        store.create_many(conn, clinical_rows)
            summary.patients += len(chunk)
            summary.duplicates += len(truths)
            summary.clinical += len(clinical_rows)
            if progress:
                progress("patients", len(chunk))
        ids = {p.index: patient_id(seed, p.index) for p in people}
        emit("match-benchmark", (query_to_json(q, ids) for q in bench))
        summary.queries = len(bench)
        summary.benchmark = bench
        if outsider_people and store is not None:
            # Outsiders exist for INSi (the registry) but not for the hospital.
            from socle.referentials.identity.population import generate_people as _gen

            extra = list(_gen(len(outsider_people), seed + 1_000_003, start=10**9))
            with store.write() as conn:
                summary.registry += load_registry(conn, _unique(extra, people), demo=demo_oid)
        if store is not None and store.engine.dialect.name == "postgresql":
            # Planner statistics for the freshly loaded tables (autovacuum would get there later).
            with store.engine.connect() as conn:
                conn.execute(text("ANALYZE resource, mpi_traits, mpi_block, ins_registry"))
                conn.commit()
    return summary


def _unique(extra: list[Person], people: list[Person]) -> list[Person]:
    known = {p.traits.ins for p in people}
    return [p for p in extra if p.traits.ins not in known]
