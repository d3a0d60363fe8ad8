"""Directory benchmark: import throughput of a synthetic RPPS extraction, then search latencies.

For each backend: `socle directory import` of the person/activity file (and the FINESS file) in a
child process (wall time, lines/s, peak RSS of that process), the same import again (idempotent:
nothing rewritten), then `socle serve` on the result and the directory searches one at a time over
HTTP (p50/p95/max per query kind, server RSS). Next to the searches, the raw floor: the same
identifier lookup as one SQL statement on the same database.

    .venv/bin/python bench/directory.py --lines 100000 --backend both
    nohup .venv/bin/python bench/directory.py --lines 1000000 --backend both > var/bench-directory.log 2>&1 &
    .venv/bin/python bench/directory.py --lines 1000000 --backend postgresql --searches-only --pg-database URL

The generated files are cached under <data-dir>/directory-<lines>/ (default /tmp/socle-bench, same
seed, same files), the SQLite database next to them. Each import also prints the CPU seconds of the
child (user + system): on a shared machine that is the figure other runs can be compared with.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
from _common import PG_URL, ROOT, SOCLE, Server, load_line, machine_lines, percentile, pg_schema, unique_name
from sqlalchemy import text

sys.path.insert(0, str(ROOT / "src"))
from socle.referentials.directory.extraction import parse_activity  # noqa: E402
from socle.referentials.directory.synthetic import MSSANTE_FILE, write_extraction  # noqa: E402
from socle.store.engine import make_engine  # noqa: E402

LINES_PER_PROFESSIONAL = 1.225  # measured on the generator's output


DATA_DIR = Path("/tmp/socle-bench")


def dataset(lines: int) -> tuple[Path, Path, int]:
    folder = DATA_DIR / f"directory-{lines}"
    people = folder / "PS_LibreAcces_Personne_activite_synthetic.txt"
    finess = folder / "etalab_cs1100507_stock_synthetic.csv"
    if not (people.exists() and finess.exists()):
        t0 = time.perf_counter()
        write_extraction(folder, round(lines / LINES_PER_PROFESSIONAL), seed=20261125)
        print(f"generated in {time.perf_counter() - t0:.0f} s: {folder}", flush=True)
    with open(people, "rb") as handle:
        count = sum(1 for _ in handle) - 1
    return people, finess, count


def run_import(url: str, files: list[Path]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes, output) of one `socle directory import` child process (RSS
    and CPU of its process tree: a large person file is read and mapped by a child of its own).

    The output ends with a line giving the child's CPU seconds (user + system) and the load average.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(SOCLE), "directory", "import", *map(str, files), "--database", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    peak = 0
    cpu: dict[int, float] = {}  # per process of the tree: the import and its reader child
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.2):
            try:
                child = psutil.Process(proc.pid)
                tree = [child, *child.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            rss = 0
            for p in tree:
                try:
                    rss += p.memory_info().rss
                    times = p.cpu_times()
                    cpu[p.pid] = times.user + times.system
                except psutil.NoSuchProcess:
                    continue
            peak = max(peak, rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(out.decode(errors="replace"))
    text_out = (
        out.decode(errors="replace")
        + f"\nCPU {sum(cpu.values()):.0f} s (user + system, sampled; the import process"
        f" {cpu.get(proc.pid, 0.0):.0f} s, its reader child the rest); {load_line('end')}"
    )
    return time.perf_counter() - t0, peak, text_out


def samples(people: Path, n: int) -> dict[str, list[str]]:
    """Values to search for, drawn from the file itself."""
    rng = random.Random(7)
    picked: dict[str, list[str]] = {"family": [], "rpps": [], "postcode": [], "commune": [], "site": []}
    with open(people, encoding="utf-8") as handle:
        next(handle)
        for i, line in enumerate(handle):
            if i % 97:
                continue
            a = parse_activity(line.rstrip("\n"))
            picked["family"].append(a.family)
            if a.id_type == "8":
                picked["rpps"].append(a.identifier)
            if a.postcode:
                picked["postcode"].append(a.postcode)
            if a.commune_code:
                picked["commune"].append(a.commune_code)
            if a.structure_key:
                picked["site"].append(a.structure_key)
    return {k: rng.sample(v, min(n, len(v))) for k, v in picked.items()}


QUERIES: dict[str, Callable[[dict[str, list[str]], int], str]] = {
    "Practitioner?name": lambda s, i: f"Practitioner?name={s['family'][i].lower()}&_count=20",
    "Practitioner?identifier": lambda s, i: (
        f"Practitioner?identifier=https://rpps.esante.gouv.fr|{s['rpps'][i]}"
    ),
    "PractitionerRole?role&specialty": lambda s, i: "PractitionerRole?role=10&specialty=SM54&_count=20",
    # The same two without the accurate total of the first page (the API's default): the page alone.
    "  same, _total=none": lambda s, i: "PractitionerRole?role=10&specialty=SM54&_count=20&_total=none",
    "Practitioner?name, _total=none": lambda s, i: (
        f"Practitioner?name={s['family'][i].lower()}&_count=20&_total=none"
    ),
    "Practitioner?qualification-code": lambda s, i: "Practitioner?qualification-code=SM40&_count=20",
    "Location?address-postalcode": lambda s, i: f"Location?address-postalcode={s['postcode'][i]}&_count=20",
    "Location?address-insee": lambda s, i: f"Location?address-insee={s['commune'][i]}&_count=20",
    "PractitionerRole?organization": lambda s, i: (
        f"PractitionerRole?organization=Organization/{s['site'][i]}"
    ),
    "PractitionerRole?practitioner.identifier": lambda s, i: (
        f"PractitionerRole?practitioner.identifier=https://rpps.esante.gouv.fr|{s['rpps'][i]}"
    ),
    "PractitionerRole/$near 10 km": lambda s, i: (
        f"PractitionerRole/$near?commune={s['commune'][i]}&distance=10&_count=20"
    ),
}


def search_latencies(base: str, values: dict[str, list[str]], n: int) -> None:
    with httpx.Client(base_url=base, timeout=60, headers={"Accept": "application/fhir+json"}) as client:
        for name, build in QUERIES.items():
            times, status, unknown = [], set(), False
            for i in range(n + 5):
                url = build(values, i % len(values["rpps"]))
                t0 = time.perf_counter()
                response = client.get("/" + url)
                elapsed = (time.perf_counter() - t0) * 1000
                status.add(response.status_code)
                if '"not-supported"' in response.text:
                    unknown = True
                if i >= 5:  # warm-up
                    times.append(elapsed)
            note = " (parameter ignored by the server: not supported yet)" if unknown else ""
            print(
                f"  {name:42s} p50 {percentile(times, 50):7.1f} ms  p95 {percentile(times, 95):7.1f} ms  "
                f"max {max(times):7.1f} ms  HTTP {sorted(status)}{note}",
                flush=True,
            )


def raw_floor(url: str, values: dict[str, list[str]], n: int) -> None:
    """The identifier lookup as one SQL statement (index table + resource), no HTTP nor JSON work."""
    from socle.fhir.hashing import system_value_hash

    engine = make_engine(url)
    times = []
    with engine.connect() as conn:
        for rpps in values["rpps"][:n]:
            h = system_value_hash("Practitioner", "identifier", "https://rpps.esante.gouv.fr", rpps)
            t0 = time.perf_counter()
            conn.execute(
                text(
                    "SELECT r.content FROM resource r JOIN idx_token t ON t.resource_key = r.resource_key "
                    "WHERE t.sys_value_hash = :h AND r.resource_type = 'Practitioner'"
                ),
                {"h": h},
            ).all()
            times.append((time.perf_counter() - t0) * 1000)
    engine.dispose()
    print(
        f"  {'raw SQL identifier lookup':42s} p50 {percentile(times, 50):7.1f} ms  "
        f"p95 {percentile(times, 95):7.1f} ms"
    )


def bench(
    backend: str,
    url: str,
    people: Path,
    finess: Path,
    lines: int,
    queries: int,
    searches_only: bool = False,
    mssante: Path | None = None,
) -> None:
    print(f"\n== {backend}", flush=True)
    if searches_only:
        return searches(backend, url, people, queries)
    print(load_line("import start"), flush=True)
    seconds, peak, out = run_import(url, [finess])
    print(f"import FINESS file  {seconds:.1f} s, peak RSS {peak / 2**20:.0f} MiB", flush=True)
    print("  " + out.strip().splitlines()[-1], flush=True)
    seconds, peak, out = run_import(url, [people])
    print(
        f"import person file  {lines} lines in {seconds:.1f} s = {lines / seconds:,.0f} lines/s "
        f"(process wall, startup included), peak RSS {peak / 2**20:.0f} MiB",
        flush=True,
    )
    print("\n".join("  " + line for line in out.strip().splitlines()), flush=True)
    seconds, peak, out = run_import(url, [people])
    print(
        f"re-import (unchanged)  {seconds:.1f} s = {lines / seconds:,.0f} lines/s, "
        f"peak RSS {peak / 2**20:.0f} MiB",
        flush=True,
    )
    print("\n".join("  " + line for line in out.strip().splitlines()), flush=True)
    if mssante is not None and mssante.exists():
        seconds, peak, out = run_import(url, [mssante])
        print(f"import MSSanté file  {seconds:.1f} s, peak RSS {peak / 2**20:.0f} MiB", flush=True)
        print("\n".join("  " + line for line in out.strip().splitlines()), flush=True)
    searches(backend, url, people, queries)


def searches(backend: str, url: str, people: Path, queries: int) -> None:
    print(load_line("searches start"), flush=True)
    values = samples(people, queries)
    with Server(url, log_path=ROOT / "var" / f"bench-directory-{backend}.log") as server:
        server.reset_peak()
        search_latencies(server.base, values, queries)
        print(
            f"  server RSS {server.rss() / 2**20:.0f} MiB "
            f"(peak during searches {server.peak_rss / 2**20:.0f} MiB)"
        )
    raw_floor(url, values, queries)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/socle-bench"), help="files, SQLite db")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--queries", type=int, default=100, help="timed requests per query kind")
    parser.add_argument("--searches-only", action="store_true", help="SQLite: reuse the imported database")
    parser.add_argument("--pg-database", help="PostgreSQL URL of an imported database, with --searches-only")
    args = parser.parse_args()
    global DATA_DIR
    DATA_DIR = args.data_dir
    print("\n".join(machine_lines(PG_URL if args.backend != "sqlite" else None)), flush=True)
    people, finess, lines = dataset(args.lines)
    mssante = people.with_name(MSSANTE_FILE)
    print(
        f"dataset     {lines} person/activity lines, {people.stat().st_size / 2**20:.0f} MiB; "
        f"FINESS {finess.stat().st_size / 2**20:.1f} MiB",
        flush=True,
    )
    if args.backend in ("sqlite", "both"):
        db = DATA_DIR / f"directory-{args.lines}.db"
        for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            if not args.searches_only:
                stale.unlink(missing_ok=True)
        sqlite_url = f"sqlite:///{db}"
        bench("sqlite", sqlite_url, people, finess, lines, args.queries, args.searches_only, mssante)
    if args.backend in ("postgresql", "both") and args.searches_only and args.pg_database:
        bench("postgresql", args.pg_database, people, finess, lines, args.queries, searches_only=True)
    elif args.backend in ("postgresql", "both"):
        with pg_schema(PG_URL, unique_name("bench_directory")) as url:
            bench("postgresql", url, people, finess, lines, args.queries, mssante=mssante)


if __name__ == "__main__":
    main()
