"""The policy behind real bearer tokens: tokens minted by the authorization server, sent over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from socle.app import create_app
from socle.config import Settings
from socle.store.repository import Store
from socle.trust.auth.keys import rotate_keys
from socle.trust.auth.tokens import issue_access_token
from tests.trust.policy_world import endpoint, load, world

ISSUER = "http://testserver"


@pytest.fixture
def app(engine: Engine, tmp_path: Path) -> Iterator[tuple[TestClient, Settings]]:
    settings = Settings(
        database_url="sqlite://",
        base_url=f"{ISSUER}/fhir",
        auth_required=True,
        auth_master_key_file=tmp_path / "master.key",
    )
    load(endpoint(engine), world())
    with engine.begin() as conn:
        rotate_keys(conn, settings)
    with TestClient(create_app(settings, store=Store(engine)), raise_server_exceptions=False) as client:
        yield client, settings


def token(engine: Engine, settings: Settings, **grant: Any) -> dict[str, str]:
    with engine.begin() as conn:
        value, _ = issue_access_token(conn, settings, ISSUER, {"client_id": "portal", **grant})
    return {"Authorization": f"Bearer {value}"}


def test_tokens_carry_the_policy(app: tuple[TestClient, Settings], engine: Engine) -> None:
    client, settings = app
    alice = token(
        engine,
        settings,
        sub="acct-alice",
        kind="citizen",
        scope="openid fhirUser user/*.cruds",
        fhirUser="Patient/alice",
        patient="alice",
    )
    gp = token(
        engine,
        settings,
        sub="ps-gp",
        kind="professional",
        scope="openid user/*.cruds",
        fhirUser="Practitioner/gp",
        practice={"national_id": "8gp", "profession": "10"},
    )
    nurse = token(
        engine,
        settings,
        sub="ps-nurse",
        kind="professional",
        scope="openid user/*.rs",
        fhirUser="Practitioner/nurse",
        practice={"national_id": "8nurse", "profession": "60"},
    )

    def ids(headers: dict[str, str], url: str) -> set[str]:
        response = client.get(f"/fhir/{url}", headers=headers)
        assert response.status_code == 200, response.text
        return {e["resource"]["id"] for e in response.json().get("entry") or []}

    assert ids(alice, "DocumentReference?_count=50") == {"a-consult", "a-rx", "a-summary", "a-masked"}
    assert ids(gp, "DocumentReference?subject=Patient/alice&_count=50") == {
        "a-consult",
        "a-rx",
        "a-summary",
        "a-invisible",
    }
    assert ids(nurse, "DocumentReference?subject=Patient/alice&_count=50") == {
        "a-rx",
        "a-summary",
        "a-invisible",
        "a-masked",
    }
    assert client.get("/fhir/Patient/bob", headers=alice).status_code == 404
    # the nurse's token only reads: the scope check refuses a write before the policy does
    body = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": "Patient/alice"},
    }
    assert client.post("/fhir/Observation", json=body, headers=nurse).status_code == 403
    assert client.post("/fhir/Observation", json=body, headers=alice).status_code == 201
    visitor = token(engine, settings, sub="x", kind="visitor", scope="user/*.rs")
    response = client.get("/fhir/Observation", headers=visitor)
    assert response.status_code == 403 and response.json()["resourceType"] == "OperationOutcome"
