"""SMART EHR launch (a context created by the professional's side, bound to a client, single use,
expiring) and the professional's standalone `launch/patient` picker, on both backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import Engine, text
from starlette.testclient import TestClient
from typer.testing import CliRunner

from socle.cli import app as cli
from socle.config import get_settings
from socle.store.repository import Store
from socle.trust.auth.clients import add_client
from socle.trust.auth.launch import create_launch
from tests.api.test_auth_backend import auth_settings
from tests.api.test_auth_code_flow import REDIRECT, browser, csrf_of, login_professional
from tests.conftest import PG_URL

__all__ = ["browser"]

VERIFIER = "l" * 64
PKCE = f"code_challenge={create_s256_code_challenge(VERIFIER)}&code_challenge_method=S256"


def authorize_url(scope: str, launch: str | None = None, client: str = "app") -> str:
    url = (
        f"/auth/authorize?response_type=code&client_id={client}&redirect_uri={REDIRECT}"
        f"&scope={scope.replace(' ', '%20')}&state=st&aud=http://testserver/fhir&{PKCE}"
    )
    return url + (f"&launch={launch}" if launch else "")


def redeem(browser: TestClient, location: str) -> dict[str, Any]:
    query = parse_qs(urlparse(location).query)
    assert "code" in query, location
    response = browser.post(
        "/auth/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": REDIRECT,
            "client_id": "app",
            "code_verifier": VERIFIER,
        },
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def records(engine: Engine) -> None:
    store = Store(engine)
    with engine.begin() as conn:
        store.update(conn, {"resourceType": "Patient", "id": "p1", "name": [{"family": "Lefebvre"}]})
        store.update(conn, {"resourceType": "Patient", "id": "p2", "name": [{"family": "Moreau"}]})
        store.update(
            conn,
            {
                "resourceType": "Encounter",
                "id": "e1",
                "status": "in-progress",
                "class": {"code": "AMB"},
                "subject": {"reference": "Patient/p1"},
            },
        )


def test_ehr_launch_from_professional_session(browser: TestClient, records: None) -> None:
    body = {"client_id": "app", "patient": "p1", "encounter": "e1"}
    assert browser.post("/auth/launch", json=body).status_code == 401  # no session yet
    login_professional(browser, authorize_url("openid user/*.rs"))  # opens the session
    assert browser.post("/auth/launch", data=body).status_code == 415  # a form: possible CSRF
    assert browser.post("/auth/launch", json={**body, "patient": "nobody"}).status_code == 400
    assert browser.post("/auth/launch", json={**body, "client_id": "nope"}).status_code == 400
    wrong_encounter = browser.post("/auth/launch", json={**body, "patient": "p2"})
    assert wrong_encounter.status_code == 400  # e1 is p1's encounter
    created = browser.post("/auth/launch", json=body)
    assert created.status_code == 201, created.text
    launch = created.json()["launch"]
    assert created.json()["iss"] == "http://testserver/fhir"

    first = browser.get(authorize_url("openid launch patient/*.rs", launch))
    token = redeem(browser, first.headers["location"])
    assert token["patient"] == "p1" and token["encounter"] == "e1"
    assert "launch" in token["scope"].split()
    keys = KeySet.import_key_set(browser.get("/auth/jwks").json())
    claims = jwt.decode(token["access_token"], keys).claims
    assert claims["patient"] == "p1" and claims["kind"] == "professional"  # the policy reads these

    # Single use: the same launch value again is refused, back to the client with an error.
    again = browser.get(authorize_url("openid launch patient/*.rs", launch))
    assert "error=invalid_request" in again.headers["location"] and "state=st" in again.headers["location"]
    # The launch parameter without the launch scope is refused too.
    other = browser.post("/auth/launch", json={"client_id": "app", "patient": "p2"}).json()["launch"]
    assert (
        "error=invalid_scope" in browser.get(authorize_url("openid patient/*.rs", other)).headers["location"]
    )


def test_launch_bound_to_client_and_expiring(
    browser: TestClient, engine: Engine, records: None, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        add_client(conn, auth_settings(tmp_path), "other", kind="public", redirect_uris=[REDIRECT])
        for_other = create_launch(conn, client_id="other", patient="p1", created_by="test")
        expired = create_launch(conn, client_id="app", patient="p1", created_by="test", ttl=-1)
    login_professional(browser, authorize_url("openid user/*.rs"))
    for launch in (for_other, expired, "made-up"):
        refused = browser.get(authorize_url("openid launch patient/*.rs", launch))
        assert "error=invalid_request" in refused.headers["location"]
    # Without a launch value the `launch` scope is dropped, nothing is put in context.
    plain = redeem(browser, browser.get(authorize_url("openid launch user/*.rs")).headers["location"])
    assert "patient" not in plain and "launch" not in plain["scope"].split()


def test_standalone_patient_picker(browser: TestClient, records: None) -> None:
    login_professional(browser, authorize_url("openid user/*.rs"))
    picker = browser.get(authorize_url("openid launch/patient patient/*.rs"))
    assert picker.status_code == 200 and "Identifiant du patient" in picker.text
    csrf = csrf_of(picker.text)
    unknown = browser.post("/auth/login/patient", data={"csrf": csrf, "patient": "nobody"})
    assert unknown.status_code == 404 and 'aria-invalid="true"' in unknown.text
    assert browser.post("/auth/login/patient", data={"csrf": "forged", "patient": "p2"}).status_code == 403
    chosen = browser.post("/auth/login/patient", data={"csrf": csrf, "patient": "p2"})
    assert chosen.status_code == 303
    assert redeem(browser, chosen.headers["location"])["patient"] == "p2"


def cli_url(engine: Engine) -> str:
    """A URL on the same database as the test engine (its own schema on PostgreSQL)."""
    if engine.dialect.name == "sqlite":
        return engine.url.render_as_string(hide_password=False)
    with engine.connect() as conn:
        schema = conn.execute(text("select current_schema()")).scalar()
    separator = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{separator}options=-csearch_path%3D{schema}"


def test_operator_launch_command(browser: TestClient, engine: Engine, records: None) -> None:
    url = cli_url(engine)
    get_settings.cache_clear()
    runner = CliRunner()
    base = ["launch", "create", "--client-id", "app", "--database", url]
    assert runner.invoke(cli, [*base, "--patient", "nobody"]).exit_code == 1
    assert runner.invoke(cli, [*base, "--patient", "p1", "--client-id", "ghost"]).exit_code == 1
    made = runner.invoke(cli, [*base, "--patient", "p1", "--encounter", "e1"])
    assert made.exit_code == 0, made.output
    launch = made.output.strip().splitlines()[-1]
    final = login_professional(browser, authorize_url("openid launch patient/*.rs", launch))
    token = redeem(browser, final)
    assert token["patient"] == "p1" and token["encounter"] == "e1"
