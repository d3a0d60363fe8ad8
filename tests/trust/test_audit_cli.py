"""`socle audit verify | checkpoint | jwks` on a real database URL (both backends)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from socle.cli import app
from socle.config import Settings, get_settings
from socle.store.audit_tables import audit_event
from socle.store.engine import make_engine
from socle.store.migrate import upgrade
from socle.store.repository import Store
from socle.trust.audit import chain
from socle.trust.audit.events import Access, Touched, build_events
from socle.trust.principal import SYSTEM_PRINCIPAL
from tests.server import MASTER_KEY

runner = CliRunner()


@pytest.fixture
def audited(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A database with 7 chained events (checkpoint every 5), and the master key in the environment."""
    monkeypatch.setenv("SOCLE_AUTH_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("SOCLE_AUDIT_CHECKPOINT_EVERY", "5")
    get_settings.cache_clear()
    engine = make_engine(database_url)
    upgrade(engine)
    store = Store(engine)
    settings = Settings(auth_master_key=MASTER_KEY, audit_checkpoint_every=5)
    for i in range(7):
        access = Access("read", "R", [Touched(f"Patient/p{i}", f"p{i}", "R")])
        with store.write() as conn:
            chain.append(conn, settings, build_events(access, SYSTEM_PRINCIPAL, site="x", now=1 + i))
    engine.dispose()
    yield database_url
    get_settings.cache_clear()


def test_verify_an_intact_chain(audited: str) -> None:
    result = runner.invoke(app, ["audit", "verify", "--database", audited])
    assert result.exit_code == 0, result.output
    assert "7 events, head seq 7" in result.output
    assert "1/1 checkpoints valid, last at seq 5" in result.output
    assert "audit chain intact" in result.output


def test_verify_says_where_and_fails(audited: str) -> None:
    engine = make_engine(audited)
    with engine.begin() as conn:
        conn.execute(update(audit_event).where(audit_event.c.seq == 3).values(outcome="8"))
    engine.dispose()
    result = runner.invoke(app, ["audit", "verify", "--database", audited])
    assert result.exit_code == 1, result.output
    assert "modified: seq 3 (id " in result.output
    assert "column outcome" in result.output
    assert "tampered with" in result.output


def test_checkpoint_and_pinned_keys(audited: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["audit", "checkpoint", "--database", audited])
    assert result.exit_code == 0, result.output
    assert "Checkpoint signed at seq 7" in result.output
    exported = runner.invoke(app, ["audit", "jwks", "--database", audited])
    assert exported.exit_code == 0
    keys = orjson.loads(exported.stdout)
    assert keys["keys"][0]["kty"] == "EC" and "d" not in keys["keys"][0]
    pinned = tmp_path / "audit.jwks"
    pinned.write_bytes(orjson.dumps(keys))
    result = runner.invoke(app, ["audit", "verify", "--database", audited, "--jwks", str(pinned)])
    assert result.exit_code == 0, result.output
    assert "2/2 checkpoints valid, last at seq 7" in result.output
    stranger = tmp_path / "stranger.jwks"
    stranger.write_bytes(orjson.dumps({"keys": [{**keys["keys"][0], "kid": "other"}]}))
    result = runner.invoke(app, ["audit", "verify", "--database", audited, "--jwks", str(stranger)])
    assert result.exit_code == 1
    assert "unknown key" in result.output


def test_load_is_audited_in_the_write_transaction(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every resource `socle load` writes is named by an AuditEvent of the loader, chain intact;
    a rejected resource leaves none."""
    monkeypatch.setenv("SOCLE_AUTH_MASTER_KEY", MASTER_KEY)
    get_settings.cache_clear()
    patient = {"resourceType": "Patient", "id": "p1", "name": [{"family": "Durand"}]}
    observation = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"text": "poids"},
        "subject": {"reference": "Patient/p1"},
    }
    bad = {"resourceType": "Observation", "id": "o2", "status": "nonsense", "code": {"text": "x"}}
    data = tmp_path / "data.ndjson"
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in (patient, observation, bad)) + b"\n")
    result = runner.invoke(app, ["load", str(data), "--database", database_url])
    assert "2 resources loaded, 1 rejected" in result.output, result.output
    engine = make_engine(database_url)
    with engine.connect() as conn:
        rows = list(
            conn.execute(select(audit_event.c.compartment, audit_event.c.agent, audit_event.c.entity))
        )
    engine.dispose()
    assert rows and {r.agent for r in rows} == {"urn:socle:principal|socle-load"}
    named = " ".join(r.entity for r in rows)
    assert "Patient/p1" in named and "Observation/o1" in named and "Observation/o2" not in named
    assert {r.compartment for r in rows} == {"p1"}
    verified = runner.invoke(app, ["audit", "verify", "--database", database_url])
    assert verified.exit_code == 0, verified.output
    get_settings.cache_clear()
