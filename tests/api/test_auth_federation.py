"""Federation: a second in-process Socle app acts as the upstream OpenID provider (its own database
and keys, issuer http://upstream.test); the real OIDC round trip (discovery, authorization code +
PKCE + nonce, token with client_secret_basic, ID token against its JWKS, userinfo) logs a
professional into the local account found by idNat_PS, on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import Engine
from starlette.testclient import TestClient

from socle.app import create_app
from socle.services.demo_people import PROFESSIONALS, practitioner_resources
from socle.services.enrolment import add_professional
from socle.store.engine import make_engine
from socle.store.migrate import upgrade
from socle.store.repository import Store
from socle.trust.auth import federation
from socle.trust.auth.accounts import create_account
from socle.trust.auth.clients import add_client
from tests.api.test_auth_backend import auth_settings
from tests.api.test_auth_code_flow import REDIRECT, csrf_of

GP, NURSE = PROFESSIONALS[0], PROFESSIONALS[2]
UPSTREAM = "http://upstream.test"
CALLBACK = "http://testserver/auth/federation/callback"
SECRET = pyotp.random_base32()


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    """The upstream provider: accounts for the GP and the nurse (the nurse has no local account)."""
    settings = auth_settings(tmp_path / "up").model_copy(update={"issuer": UPSTREAM, "base_url": None})
    (tmp_path / "up").mkdir()
    engine = make_engine(f"sqlite:///{tmp_path / 'up' / 'upstream.db'}")
    upgrade(engine)
    with engine.begin() as conn:
        secret = add_client(conn, settings, "socle-downstream", kind="confidential", redirect_uris=[CALLBACK])
        for p in (GP, NURSE):
            create_account(
                conn,
                settings,
                kind="professional",
                login=p.idnat,
                password="upstream pass",
                totp_secret=SECRET,
                claims={
                    "identity": {"SubjectNameID": p.idnat, "given_name": p.given, "family_name": p.family}
                },
            )
        create_account(
            conn,
            settings,
            kind="citizen",
            login="claire@example.fr",
            password="upstream pass",
            totp_secret=SECRET,
            claims={"identity": {"email": "claire@example.fr", "given_name": "Claire"}},
        )
    assert secret
    app = create_app(settings, store=Store(engine))
    with TestClient(app, base_url=UPSTREAM, follow_redirects=False, raise_server_exceptions=False) as client:
        federation.use_transport(client._transport)  # httpx2, as Authlib's client
        yield client, secret
        federation.use_transport(None)
    engine.dispose()


@pytest.fixture
def local(engine: Engine, tmp_path: Path, upstream: tuple[TestClient, str]) -> Iterator[TestClient]:
    settings = auth_settings(tmp_path).model_copy(
        update={
            "federation_issuer": UPSTREAM,
            "federation_client_id": "socle-downstream",
            "federation_client_secret": upstream[1],
            "federation_name": "Pro Santé Connect (bac à sable)",
            "federation_scope": "openid profile",
        }
    )
    store = Store(engine)
    with engine.begin() as conn:
        for body in practitioner_resources(GP):
            store.update(conn, body)
        add_professional(store, conn, settings, GP.idnat, password="local pass 123", totp_secret=None)
        add_client(conn, settings, "app", kind="public", redirect_uris=[REDIRECT])
        create_account(
            conn,
            settings,
            kind="citizen",
            login="claire@example.fr",
            password="local pass 123",
            claims={"fhirUser": "Patient/claire", "patient": "claire"},
        )
    with TestClient(
        create_app(settings, store=store), follow_redirects=False, raise_server_exceptions=False
    ) as c:
        yield c


def upstream_login(up: TestClient, url: str, idnat: str, kind: str = "professional") -> str:
    """The person signs in at the provider (password + TOTP); returns where it sends the browser."""
    assert urlparse(url).netloc == "upstream.test"
    up.cookies.clear()  # a new person at the provider's browser
    assert up.get(url).status_code == 303
    csrf = csrf_of(up.get("/auth/login").text)
    up.post(
        "/auth/login",
        data={"csrf": csrf, "kind": kind, "login": idnat, "password": "upstream pass"},
    )
    done = up.post("/auth/login/code", data={"csrf": csrf, "code": pyotp.TOTP(SECRET).now()})
    assert done.status_code == 303, done.text
    return str(done.headers["location"])


def start(local: TestClient, scope: str = "openid%20fhirUser%20user/*.rs") -> str:
    verifier = "f" * 64
    local.get(
        f"/auth/authorize?response_type=code&client_id=app&redirect_uri={REDIRECT}&scope={scope}"
        f"&nonce=local-n&code_challenge={create_s256_code_challenge(verifier)}&code_challenge_method=S256"
    )
    page = local.get("/auth/login")
    assert "Se connecter avec Pro Santé Connect (bac à sable)" in page.text
    go = local.get("/auth/federation/start")
    assert go.status_code == 303
    location = str(go.headers["location"])
    query = parse_qs(urlparse(location).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
    return location


def test_federated_professional_login(local: TestClient, upstream: tuple[TestClient, str]) -> None:
    up, _secret = upstream
    back = upstream_login(up, start(local), GP.idnat)
    assert back.startswith(CALLBACK)
    finished = local.get(back.removeprefix("http://testserver"))
    assert finished.status_code == 303, finished.text
    code = parse_qs(urlparse(finished.headers["location"]).query)["code"][0]
    token: dict[str, Any] = local.post(
        "/auth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": "app",
            "code_verifier": "f" * 64,
        },
    ).json()
    id_token = jwt.decode(token["id_token"], KeySet.import_key_set(local.get("/auth/jwks").json())).claims
    assert id_token["iss"] == "http://testserver"  # Socle's own token, for the local account
    assert id_token["fhirUser"] == f"Practitioner/ps-{GP.idnat}"
    assert id_token["amr"][0] == "fed" and id_token["acr"] == "eidas1"
    # The callback is single use: replaying it fails (the flow is over).
    assert local.get(back.removeprefix("http://testserver")).status_code == 403


def test_unknown_identity_and_forged_state(local: TestClient, upstream: tuple[TestClient, str]) -> None:
    up, _secret = upstream
    back = upstream_login(up, start(local), NURSE.idnat)  # known upstream, no local account
    refused = local.get(back.removeprefix("http://testserver"))
    assert refused.status_code == 403 and "Aucun compte" in refused.text
    back = upstream_login(up, start(local), GP.idnat)
    forged = back.replace("state=", "state=x")
    assert local.get(forged.removeprefix("http://testserver")).status_code == 403


def test_federated_citizen_by_email(local: TestClient, upstream: tuple[TestClient, str]) -> None:
    up, _secret = upstream
    url = start(local, "openid%20profile%20email%20launch/patient%20patient/*.rs")
    url = url.replace("scope=openid+profile", "scope=openid+profile+email")
    back = upstream_login(up, url, "claire@example.fr", kind="citizen")
    finished = local.get(back.removeprefix("http://testserver"))
    assert finished.status_code == 303, finished.text
    code = parse_qs(urlparse(finished.headers["location"]).query)["code"][0]
    token = local.post(
        "/auth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": "app",
            "code_verifier": "f" * 64,
        },
    ).json()
    assert token["patient"] == "claire"
    # A federated session may not manage passkeys (it was not opened with Socle's own factors).
    assert local.get("/auth/passkeys").headers["location"] == "/auth/login?next=/auth/passkeys"
