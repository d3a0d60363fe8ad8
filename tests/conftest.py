"""Shared fixtures: every store and API test runs on SQLite and on PostgreSQL.

PostgreSQL is the local server (127.0.0.1:5432, trust auth, database `test`) or
`SOCLE_TEST_DATABASE_URL`. If it is unreachable the PostgreSQL tests fail: they never skip.
Each test session works in its own PostgreSQL schema, dropped at the end.
"""

from __future__ import annotations

import os
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, event, text
from starlette.testclient import TestClient

from socle.app import create_app
from socle.config import Settings
from socle.store.engine import make_engine
from socle.store.migrate import upgrade
from socle.store.repository import Store
from socle.trust.auth.clients import add_client, get_client
from socle.trust.auth.grants import token_response
from tests.server import MASTER_KEY, SYSTEM_SCOPE, TEST_CLIENT

PG_URL = os.environ.get("SOCLE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
SHARED = Path(__file__).resolve().parents[2] / "shared"
REPO = Path(__file__).resolve().parents[1]


def pg_engine(schema: str) -> Engine:
    """An engine whose connections all live in `schema` (created if missing)."""
    engine = make_engine(PG_URL, pool_size=4)

    @event.listens_for(engine, "connect")
    def _search_path(dbapi_connection: object, _record: object) -> None:
        cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
        cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        cursor.execute(f'SET search_path TO "{schema}"')
        cursor.close()
        dbapi_connection.commit()  # type: ignore[attr-defined]

    return engine


def drop_schema(schema: str) -> None:
    engine = make_engine(PG_URL, pool_size=1)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine(backend: str, tmp_path: Path) -> Iterator[Engine]:
    """A fresh database at the latest schema revision, on each backend."""
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'socle.db'}")
        upgrade(engine)
        yield engine
        engine.dispose()
        return
    schema = f"test_{uuid.uuid4().hex[:12]}"
    engine = pg_engine(schema)
    upgrade(engine)
    yield engine
    engine.dispose()
    drop_schema(schema)


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database URL for a server process: SQLite file, or a PostgreSQL schema via `options`."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'server.db'}"
        return
    schema = f"test_{uuid.uuid4().hex[:12]}"
    engine = pg_engine(schema)
    with engine.connect():
        pass  # creates the schema
    engine.dispose()
    separator = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{separator}options=-csearch_path%3D{schema}"
    drop_schema(schema)


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    """The ASGI app in-process (httpx under Starlette's TestClient), on each backend.

    The FHIR API is protected (`Settings.auth_required`), so every request carries a real system
    token, minted in this database the way `socle clients add socle-tests --scope system/*.cruds`
    and `socle token --client-id socle-tests --scope system/*.cruds` do (see `system_token`): the
    principal is the platform itself (`kind: system`), as when these tests ran without protection.
    """
    settings = Settings(
        database_url="sqlite://",
        max_body_bytes=2_000_000,
        base_url="http://testserver/fhir",
        auth_master_key=MASTER_KEY,
    )
    token = system_token(engine, settings)
    app = create_app(settings, store=Store(engine))
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(app, raise_server_exceptions=False, headers=headers) as test_client:
        yield test_client


def system_token(engine: Engine, settings: Settings, issuer: str = "http://testserver") -> str:
    """An operator token for the client `socle-tests` (registered here if missing), with the grant
    `socle token` builds for a non-backend client: the commands' own functions, without a Typer
    runner per test. Its secret is never used, so it is hashed at the lowest cost."""
    with engine.begin() as conn:
        if get_client(conn, TEST_CLIENT) is None:
            cheap = settings.model_copy(update={"argon2_time_cost": 1, "argon2_memory_kib": 1024})
            add_client(conn, cheap, TEST_CLIENT, kind="confidential", scope=SYSTEM_SCOPE)
        grant = {"sub": TEST_CLIENT, "client_id": TEST_CLIENT, "scope": SYSTEM_SCOPE, "kind": "system"}
        body = token_response(conn, settings, issuer, grant, family=None, with_id_token=False)
    return str(body["access_token"])


def synthea_bundles() -> list[tuple[str, dict[str, Any]]]:
    """The 23 Synthea transaction bundles vendored under data/synthea (name, bundle)."""
    bundles = []
    with tarfile.open(REPO / "data" / "synthea" / "synthea-r4-25-patients.tgz", "r:gz") as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is not None and member.name.endswith(".json"):
                bundles.append((member.name.rsplit("/", 1)[-1], orjson.loads(handle.read())))
    return bundles
