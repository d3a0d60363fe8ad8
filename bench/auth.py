"""Token validation overhead per FHIR request, and password checks per second at the chosen argon2 cost.

Same run, same database (SQLite, temporary): `GET /fhir/Patient/p1` through the app without
authentication, then with `auth_required` and a bearer token; the p95 difference is the overhead.
The verifier is also timed alone (signature + claims, keys and revocations cached).
Run: .venv/bin/python bench/auth.py
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

from starlette.testclient import TestClient

from socle.app import create_app
from socle.config import Settings
from socle.store.engine import make_engine
from socle.store.migrate import upgrade
from socle.store.repository import Store
from socle.trust.auth.clients import add_client
from socle.trust.auth.grants import token_response
from socle.trust.auth.passwords import hash_password, verify_password
from socle.trust.auth.tokens import TokenVerifier, fhir_audience

N = 2000


def p(values: list[float], q: float) -> float:
    return sorted(values)[int(q * (len(values) - 1))] * 1000


def timed(client: TestClient, headers: dict[str, str]) -> list[float]:
    times = []
    for _ in range(N):
        start = time.perf_counter()
        response = client.get("/fhir/Patient/p1", headers=headers)
        times.append(time.perf_counter() - start)
        assert response.status_code == 200, response.text
    return times


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    engine = make_engine(f"sqlite:///{tmp / 'bench.db'}")
    upgrade(engine)
    base = {
        "database_url": "sqlite://",
        "base_url": "http://testserver/fhir",
        "auth_master_key_file": tmp / "k",
    }
    settings = Settings(**base, auth_required=True)  # type: ignore[arg-type]
    with engine.begin() as conn:
        add_client(conn, settings, "bench", kind="backend", jwks={"keys": []})
        token = token_response(
            conn,
            settings,
            "http://testserver",
            {"sub": "bench", "client_id": "bench", "scope": "system/*.cruds", "kind": "app"},
            family=None,
            with_id_token=False,
        )["access_token"]
    store = Store(engine)
    open_app = create_app(Settings(**base, auth_required=False), store=store)  # type: ignore[arg-type]
    closed_app = create_app(settings, store=store)
    with TestClient(open_app) as open_client, TestClient(closed_app) as closed_client:
        open_client.put("/fhir/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
        auth = {"Authorization": f"Bearer {token}"}
        timed(open_client, {}), timed(closed_client, auth)  # warm-up
        rounds = [(timed(open_client, {}), timed(closed_client, auth)) for _ in range(3)]
    plain = [t for r in rounds for t in r[0]]
    bearer = [t for r in rounds for t in r[1]]
    verifier = TokenVerifier()
    audience = fhir_audience("http://testserver")
    verifier.verify(store.read, token, "http://testserver", audience)
    alone = []
    for _ in range(N):
        start = time.perf_counter()
        verifier.verify(store.read, token, "http://testserver", audience)
        alone.append(time.perf_counter() - start)
    print(f"machine: {platform.machine()} cpus={os.cpu_count()} python {platform.python_version()}")
    print(
        f"GET /fhir/Patient/p1 x{len(plain)}: "
        f"no auth p50 {p(plain, 0.5):.3f} ms p95 {p(plain, 0.95):.3f} ms; "
        f"bearer ES256 p50 {p(bearer, 0.5):.3f} ms p95 {p(bearer, 0.95):.3f} ms"
    )
    print(
        f"overhead: p50 {p(bearer, 0.5) - p(plain, 0.5):.3f} ms, "
        f"p95 {p(bearer, 0.95) - p(plain, 0.95):.3f} ms"
    )
    print(f"verifier alone x{N}: p50 {p(alone, 0.5):.3f} ms p95 {p(alone, 0.95):.3f} ms")
    stored = hash_password(settings, "correct horse battery")
    start = time.perf_counter()
    checks = 20
    for _ in range(checks):
        assert verify_password(settings, stored, "correct horse battery")
    seconds = time.perf_counter() - start
    print(
        f"argon2id t={settings.argon2_time_cost} m={settings.argon2_memory_kib} KiB p=1: "
        f"{checks / seconds:.1f} password checks/s per core ({seconds / checks * 1000:.1f} ms each)"
    )


if __name__ == "__main__":
    main()
