"""`socle clients add/list/remove` and `socle token`, then the token used on a protected API."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient
from typer.testing import CliRunner

from socle.app import create_app
from socle.cli import app
from socle.config import Settings, get_settings
from socle.store.repository import Store


def test_clients_and_operator_token(
    engine: Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = (
        engine.url.render_as_string(hide_password=False) if engine.dialect.name == "sqlite" else database_url
    )
    monkeypatch.setenv("SOCLE_AUTH_MASTER_KEY_FILE", str(tmp_path / "master.key"))
    monkeypatch.setenv("SOCLE_ISSUER", "http://testserver")
    get_settings.cache_clear()
    runner = CliRunner()
    added = runner.invoke(
        app,
        ["clients", "add", "lab", "--backend", "--jwks-url", "http://lab.example/jwks", "--database", url],
    )
    assert added.exit_code == 0, added.output
    assert runner.invoke(app, ["clients", "add", "lab", "--backend", "--database", url]).exit_code == 1
    listed = runner.invoke(app, ["clients", "list", "--database", url])
    assert "lab" in listed.output and "backend" in listed.output
    minted = runner.invoke(
        app, ["token", "--client-id", "lab", "--scope", "system/*.cruds", "--database", url]
    )
    assert minted.exit_code == 0, minted.output
    token = minted.output.strip().splitlines()[-1]
    settings = Settings(
        database_url=url,
        base_url="http://testserver/fhir",
        auth_required=True,
        auth_master_key_file=tmp_path / "master.key",
    )
    store = Store(engine) if engine.dialect.name == "sqlite" else None
    with TestClient(create_app(settings, store=store), raise_server_exceptions=False) as client:
        assert client.get("/fhir/Patient", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert client.get("/fhir/Patient").status_code == 401
    assert runner.invoke(app, ["clients", "remove", "lab", "--database", url]).exit_code == 0
    assert runner.invoke(app, ["clients", "remove", "lab", "--database", url]).exit_code == 1
    get_settings.cache_clear()
