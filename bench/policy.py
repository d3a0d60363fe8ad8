"""Access-policy overhead: the same search mix as the system, a professional and a citizen.

In-process (`FhirEndpoint._execute`, the request path below HTTP, so the figures are the policy's and
the store's, not the server's): a Synthea-shaped database of `--resources` resources, where a médecin
traitant (profession 10) is the GP of every 5th patient and a nurse (profession 60) was granted
access (Consent) by every 5th patient too. Each principal runs the same mix on the same patient
(its own record for the citizen): a patient read, a compartment-scoped Observation search, a
cross-patient Observation code search, a Condition search with `_include`, `Patient/$everything`,
system history of one type. Rounds interleave the principals; p50/p95 per principal, the ratio to
the system principal, and in the same run the raw SQL floor of the compartment search.

    .venv/bin/python bench/policy.py --resources 20000 [--backend postgresql]

DocumentReferences are left out of the Synthea bundles: the shared-record rule (a qualified INS for
the subject) refuses them for Synthea's patients, who have no INS.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from _common import PG_URL, load_line, machine_lines, percentile, pg_schema, synthea_dataset, unique_name
from sqlalchemy import Engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from socle.api.http import FhirEndpoint  # noqa: E402
from socle.api.request import FhirRequest  # noqa: E402
from socle.config import Settings  # noqa: E402
from socle.store.engine import make_engine  # noqa: E402
from socle.store.migrate import upgrade  # noqa: E402
from socle.store.repository import Store  # noqa: E402
from socle.trust.auth.scopes import ScopeSet  # noqa: E402
from socle.trust.principal import SYSTEM_PRINCIPAL, Practice, Principal  # noqa: E402

BASE = "http://bench/fhir"
ALL = ScopeSet.parse("user/*.cruds")


def run(ep: FhirEndpoint, principal: Principal, method: str, url: str, body: Any = None) -> tuple[int, Any]:
    req = FhirRequest.from_url(method, url, {"content-type": "application/fhir+json"}, body)
    response = ep._execute(req, BASE, principal)
    return response.status, response.body


def prepare(ep: FhirEndpoint, resources: int) -> list[str]:
    """Load the dataset; returns the ids of the patients (every 5th has gp and nurse relations)."""
    data = synthea_dataset(resources)
    patients: list[str] = []
    run(
        ep,
        SYSTEM_PRINCIPAL,
        "PUT",
        "Practitioner/bench-gp",
        {"resourceType": "Practitioner", "id": "bench-gp"},
    )
    run(
        ep,
        SYSTEM_PRINCIPAL,
        "PUT",
        "Practitioner/bench-nurse",
        {"resourceType": "Practitioner", "id": "bench-nurse"},
    )
    loaded = 0
    for n, raw in enumerate(data.bundles):
        bundle = orjson.loads(raw)
        bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "DocumentReference"]
        patient = bundle["entry"][0]["resource"]
        if n % 5 == 0:
            patient["generalPractitioner"] = [{"reference": "Practitioner/bench-gp"}]
        status, out = run(ep, SYSTEM_PRINCIPAL, "POST", "", bundle)
        assert status == 200, out
        body = orjson.loads(out if isinstance(out, bytes) else orjson.dumps(out))
        pid = body["entry"][0]["response"]["location"].split("/")[1]
        patients.append(pid)
        loaded += len(bundle["entry"])
        if n % 5 == 0:
            consent = {
                "resourceType": "Consent",
                "status": "active",
                "scope": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                            "code": "patient-privacy",
                        }
                    ]
                },
                "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                "patient": {"reference": f"Patient/{pid}"},
                "policyRule": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
                    ]
                },
                "provision": {
                    "type": "permit",
                    "actor": [
                        {"role": {"text": "IRCP"}, "reference": {"reference": "Practitioner/bench-nurse"}}
                    ],
                },
            }
            run(ep, SYSTEM_PRINCIPAL, "POST", "Consent", consent)
    print(f"loaded      {loaded} resources, {len(patients)} patients")
    return patients


def mix(patient: str) -> list[str]:
    return [
        f"Patient/{patient}",
        f"Observation?subject=Patient/{patient}&_count=50",
        "Observation?code=http://loinc.org|8302-2&_count=50",
        f"Condition?subject=Patient/{patient}&_include=Condition:encounter&_count=50",
        f"Patient/{patient}/$everything?_count=50",
        "Encounter/_history?_count=50",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--resources", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--db", default="/tmp/h1/policy.db")
    parser.add_argument(
        "--audit", action="store_true", help="keep the audit chain on (off: the policy alone)"
    )
    args = parser.parse_args()
    for line in machine_lines(PG_URL if args.backend == "postgresql" else None):
        print(line)
    settings = Settings(database_url="sqlite://", base_url=BASE, audit=args.audit)
    print(f"audit       {'on' if args.audit else 'off (policy alone)'}")
    if args.backend == "sqlite":
        Path(args.db).unlink(missing_ok=True)
        engine: Engine = make_engine(f"sqlite:///{args.db}")
        return measure(engine, settings, args)
    with pg_schema(PG_URL, unique_name("bench_policy")) as url:  # search_path in the URL
        engine = make_engine(url, pool_size=2)
        return measure(engine, settings, args)


def measure(engine: Engine, settings: Settings, args: argparse.Namespace) -> int:
    upgrade(engine)
    store = Store(engine)
    ep = FhirEndpoint(store, settings)
    started = time.perf_counter()
    patients = prepare(ep, args.resources)
    store.analyze()
    print(f"load time   {time.perf_counter() - started:.1f} s; {load_line('after load')}")
    patient = patients[0]  # gp's and nurse's patient
    principals = {
        "system": SYSTEM_PRINCIPAL,
        "professional (médecin traitant)": Principal(
            "professional",
            "gp",
            ALL,
            fhir_user="Practitioner/bench-gp",
            practice=Practice("8bench-gp", profession="10"),
        ),
        "professional (nurse, granted)": Principal(
            "professional",
            "nurse",
            ALL,
            fhir_user="Practitioner/bench-nurse",
            practice=Practice("8bench-nurse", profession="60"),
        ),
        "citizen": Principal("citizen", "c", ALL, fhir_user=f"Patient/{patient}", patient=patient),
    }
    urls = mix(patient)
    times: dict[str, list[float]] = {name: [] for name in principals}
    cpu: dict[str, list[float]] = {name: [] for name in principals}  # this process's CPU, ms
    per_url: dict[tuple[str, str], list[float]] = {}
    rng = random.Random(7)
    for name, p in principals.items():  # warm-up
        for url in urls:
            status, _ = run(ep, p, "GET", url)
            assert status == 200, (name, url, status)
    for _ in range(args.rounds):
        order = list(principals)
        rng.shuffle(order)
        for name in order:
            for url in urls:
                t0, c0 = time.perf_counter(), time.process_time()
                run(ep, principals[name], "GET", url)
                elapsed = (time.perf_counter() - t0) * 1000
                times[name].append(elapsed)
                cpu[name].append((time.process_time() - c0) * 1000)
                per_url.setdefault((name, url), []).append(elapsed)
    floor: list[float] = []
    with engine.connect() as conn:
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            conn.execute(
                text(
                    "SELECT content FROM resource WHERE compartment = :p AND resource_type = 'Observation' "
                    "AND NOT deleted ORDER BY resource_key LIMIT 51"
                ),
                {"p": patient},
            ).all()
            floor.append((time.perf_counter() - t0) * 1000)
    print(load_line("end"))
    base95 = percentile(times["system"], 95)
    base50 = percentile(times["system"], 50)
    cpu_base = sum(cpu["system"])
    print(
        f"\n{'principal':34} {'p50 ms':>8} {'p95 ms':>8} {'p50 ratio':>10} {'p95 ratio':>10}"
        f" {'CPU ms/req':>11} {'CPU ratio':>10}"
    )
    for name, values in times.items():
        p50, p95 = percentile(values, 50), percentile(values, 95)
        mean_cpu = sum(cpu[name]) / len(cpu[name])
        print(
            f"{name:34} {p50:8.2f} {p95:8.2f} {p50 / base50:10.2f} {p95 / base95:10.2f}"
            f" {mean_cpu:11.2f} {sum(cpu[name]) / cpu_base:10.2f}"
        )
    print(f"{'raw SQL compartment floor':34} {percentile(floor, 50):8.2f} {percentile(floor, 95):8.2f}")
    print("\nper query p95 ms (system / médecin traitant / nurse / citizen):")
    for url in urls:
        row = [percentile(per_url[(n, url)], 95) for n in principals]
        print(f"  {url[:70]:70} " + " / ".join(f"{v:.2f}" for v in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
