"""Validation time per resource type over every Synthea resource (`socle.fhir.validation`).

Run: `.venv/bin/python bench/validate.py [--repeat N]`. Prints the machine, the dataset, the one-off
cost of compiling the model, then per resource type the mean, p50 and p95 of `validate_resource` in µs,
next to the time `orjson.loads` takes to parse the same resource, so the validator's cost reads against
the unavoidable cost of getting the dict in the first place.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tarfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

from socle.fhir.package import data_dir, package_resources
from socle.fhir.structure import compiled_schema
from socle.fhir.validation import validate_resource

SYNTHEA = data_dir() / "synthea" / "synthea-r4-25-patients.tgz"


def load_resources(path: Path) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = []
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is not None and member.name.endswith(".json"):
                resources.extend(entry["resource"] for entry in orjson.loads(handle.read())["entry"])
    return resources


def percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="passes over the dataset (default 5)")
    args = parser.parse_args()

    start = time.perf_counter()
    next(package_resources("StructureDefinition"))
    read = time.perf_counter() - start
    start = time.perf_counter()
    compiled_schema()
    compile_ = time.perf_counter() - start

    resources = load_resources(SYNTHEA)
    encoded = [orjson.dumps(r) for r in resources]
    python = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, {platform.system()}, {python}")
    print(f"dataset: {SYNTHEA.name}, {len(resources)} resources, {args.repeat} passes")
    print(f"package read: {read * 1000:.0f} ms, model compile: {compile_ * 1000:.0f} ms (once per process)")

    validate_us: dict[str, list[float]] = defaultdict(list)
    parse_us: dict[str, list[float]] = defaultdict(list)
    clock = time.perf_counter_ns
    for _ in range(args.repeat):
        for resource, raw in zip(resources, encoded, strict=True):
            rt = resource["resourceType"]
            t0 = clock()
            orjson.loads(raw)
            t1 = clock()
            validate_resource(resource)
            t2 = clock()
            parse_us[rt].append((t1 - t0) / 1000)
            validate_us[rt].append((t2 - t1) / 1000)

    header = f"{'resource type':<22}{'count':>6}{'mean µs':>10}{'p50 µs':>9}{'p95 µs':>9}{'parse p50':>11}"
    print(header)
    print("-" * len(header))
    everything: list[float] = []
    for rt in sorted(validate_us, key=lambda t: -len(validate_us[t])):
        times = sorted(validate_us[rt])
        everything.extend(times)
        print(
            f"{rt:<22}{len(times) // args.repeat:>6}{statistics.fmean(times):>10.1f}"
            f"{percentile(times, 0.5):>9.1f}{percentile(times, 0.95):>9.1f}"
            f"{statistics.median(parse_us[rt]):>11.1f}"
        )
    everything.sort()
    print(
        f"{'all':<22}{len(everything) // args.repeat:>6}{statistics.fmean(everything):>10.1f}"
        f"{percentile(everything, 0.5):>9.1f}{percentile(everything, 0.95):>9.1f}"
    )


if __name__ == "__main__":
    main()
