"""Concurrent writers on one resource against a real server process (R4 §3.1.0.4.1 managing conflicts).

Optimistic locking is only as good as the database statement behind it: a read-then-write done in
two steps lets two clients that both read version v both "win". These tests race real HTTP clients,
released together by a barrier, and then check the stored history: one version per successful
write, no version number handed out twice, no change lost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest

from tests.server import LiveServer

pytestmark = pytest.mark.slow

FHIR = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
ROUNDS = 50
BARRIER_TIMEOUT = 60.0
T = TypeVar("T")


def client(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={**FHIR, **server.headers}, timeout=60.0)


def run_threads(count: int, work: Callable[[int, threading.Barrier], T]) -> list[T]:
    """Run `work(index, barrier)` in `count` threads; the first failure breaks the barrier for all."""
    barrier = threading.Barrier(count, timeout=BARRIER_TIMEOUT)

    def guarded(index: int) -> T:
        try:
            return work(index, barrier)
        except BaseException:
            barrier.abort()
            raise

    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(guarded, i) for i in range(count)]
        return [f.result() for f in futures]


def version_of(response: httpx.Response) -> int:
    etag = response.headers["ETag"]
    assert etag.startswith('W/"') and etag.endswith('"'), etag
    return int(etag[3:-1])


def assert_outcome(response: httpx.Response) -> None:
    assert response.headers["content-type"].startswith("application/fhir+json"), response.headers
    assert response.json()["resourceType"] == "OperationOutcome", response.text


def history_versions(http: httpx.Client, reference: str) -> list[int]:
    response = http.get(f"{reference}/_history", params={"_count": 1000})
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert not [link for link in bundle.get("link", []) if link["relation"] == "next"], (
        "history did not fit one page"
    )
    return sorted(int(entry["resource"]["meta"]["versionId"]) for entry in bundle.get("entry", []))


@dataclass
class Attempt:
    read_version: int
    status: int
    family: str
    written_version: int | None


def test_if_match_race_has_exactly_one_winner_per_round(server: LiveServer) -> None:
    """Both clients read version v and PUT with If-Match W/"v" at once: one 200, one 412, each round."""
    with client(server) as http:
        created = http.post("Patient", json={"resourceType": "Patient", "name": [{"family": "Start"}]})
        assert created.status_code == 201, created.text
        reference = f"Patient/{created.json()['id']}"

    def contender(index: int, barrier: threading.Barrier) -> list[Attempt]:
        attempts: list[Attempt] = []
        with client(server) as http:
            for round_ in range(ROUNDS):
                barrier.wait()  # the previous round is over for both clients
                current = http.get(reference)
                assert current.status_code == 200, current.text
                body, version = current.json(), version_of(current)
                family = f"round-{round_}-client-{index}"
                body["name"].append({"family": family})
                barrier.wait()  # both have read version v: now race
                response = http.put(reference, json=body, headers={"If-Match": f'W/"{version}"'})
                if response.status_code == 412:
                    assert_outcome(response)
                written = version_of(response) if response.status_code == 200 else None
                attempts.append(Attempt(version, response.status_code, family, written))
        return attempts

    first, second = run_threads(2, contender)

    winners: list[str] = []
    for round_, (a, b) in enumerate(zip(first, second, strict=True)):
        assert a.read_version == b.read_version == round_ + 1
        assert sorted((a.status, b.status)) == [200, 412], f"round {round_}: {a} / {b}"
        winner = a if a.status == 200 else b
        assert winner.written_version == round_ + 2
        winners.append(winner.family)

    with client(server) as http:
        final = http.get(reference)
        assert final.status_code == 200
        assert version_of(final) == ROUNDS + 1
        assert [n["family"] for n in final.json()["name"]] == ["Start", *winners], (
            "an accepted update was lost"
        )
        assert history_versions(http, reference) == list(range(1, ROUNDS + 2))


def test_counter_with_if_match_retries_loses_no_increment(server: LiveServer) -> None:
    """N clients increment one counter by read-modify-write, retrying on 412: the total is exact."""
    threads, increments = 4, 10
    with client(server) as http:
        created = http.post(
            "Observation",
            json={
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "counter"},
                "valueInteger": 0,
            },
        )
        assert created.status_code == 201, created.text
        reference = f"Observation/{created.json()['id']}"

    def incrementer(_index: int, barrier: threading.Barrier) -> tuple[int, int]:
        successes = conflicts = 0
        with client(server) as http:
            barrier.wait()
            for _ in range(increments):
                for _attempt in range(500):  # bounded: 4 contenders cannot starve one for this long
                    current = http.get(reference)
                    assert current.status_code == 200, current.text
                    body: dict[str, Any] = current.json()
                    body["valueInteger"] += 1
                    response = http.put(reference, json=body, headers={"If-Match": current.headers["ETag"]})
                    if response.status_code == 200:
                        successes += 1
                        break
                    assert response.status_code == 412, response.text
                    assert_outcome(response)
                    conflicts += 1
                else:
                    raise AssertionError("an increment was starved by 500 consecutive conflicts")
        return successes, conflicts

    results = run_threads(threads, incrementer)
    assert sum(s for s, _ in results) == threads * increments
    # Without a single 412 the clients never overlapped, and the test would have shown nothing.
    assert sum(c for _, c in results) > 0, "the clients never raced"

    with client(server) as http:
        final = http.get(reference)
        assert final.json()["valueInteger"] == threads * increments, "an increment was lost"
        assert version_of(final) == threads * increments + 1
        assert history_versions(http, reference) == list(range(1, threads * increments + 2))


def test_unconditional_updates_all_apply_with_distinct_versions(server: LiveServer) -> None:
    """Without If-Match the last writer wins, but every PUT gets its own version: none overwrites another."""
    threads, rounds = 4, 10
    with client(server) as http:
        created = http.post("Patient", json={"resourceType": "Patient", "gender": "unknown"})
        assert created.status_code == 201, created.text
        id = created.json()["id"]
        reference = f"Patient/{id}"

    def writer(index: int, barrier: threading.Barrier) -> list[tuple[int, str]]:
        written: list[tuple[int, str]] = []
        with client(server) as http:
            for round_ in range(rounds):
                family = f"round-{round_}-writer-{index}"
                barrier.wait()
                response = http.put(
                    reference, json={"resourceType": "Patient", "id": id, "name": [{"family": family}]}
                )
                assert response.status_code == 200, response.text
                written.append((version_of(response), family))
        return written

    everything = [w for per_thread in run_threads(threads, writer) for w in per_thread]
    versions = sorted(v for v, _ in everything)
    assert versions == list(range(2, threads * rounds + 2)), "two updates were given the same version"

    with client(server) as http:
        assert history_versions(http, reference) == list(range(1, threads * rounds + 2))
        # Each version in the history holds exactly the body its writer sent.
        for version, family in everything:
            old = http.get(f"{reference}/_history/{version}")
            assert old.status_code == 200, old.text
            assert old.json()["name"] == [{"family": family}]
        final = http.get(reference)
        assert final.json()["name"] == [{"family": dict(everything)[max(versions)]}]
