"""SMART Backend Services and the protected FHIR API, on both backends."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import Engine, insert
from starlette.testclient import TestClient

from socle.app import create_app
from socle.config import Settings
from socle.store.repository import Store
from socle.trust.auth.clients import add_client
from socle.trust.auth.errors import InvalidToken
from socle.trust.auth.keys import rotate_keys, signing_key
from socle.trust.auth.schema import auth_revoked
from socle.trust.auth.tokens import TokenVerifier, fhir_audience, issue_access_token

TOKEN_URL = "http://testserver/auth/token"


def auth_settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url="sqlite://",
        base_url="http://testserver/fhir",
        auth_required=True,
        auth_master_key_file=tmp_path / "master.key",
        argon2_time_cost=1,
        argon2_memory_kib=1024,
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return auth_settings(tmp_path)


@pytest.fixture
def lab_key() -> ECKey:
    return ECKey.generate_key("P-384", private=True, parameters={"kid": "lab-1"})


@pytest.fixture
def auth_client(engine: Engine, settings: Settings, lab_key: ECKey) -> Iterator[TestClient]:
    jwks = {"keys": [{**lab_key.as_dict(private=False), "kid": "lab-1", "alg": "ES384"}]}
    with engine.begin() as conn:
        add_client(
            conn,
            settings,
            "lab",
            kind="backend",
            jwks=jwks,
            scope="system/Observation.cruds system/Patient.rs",
        )
    app = create_app(settings, store=Store(engine))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def assertion(
    key: Any, *, aud: str = TOKEN_URL, iss: str = "lab", exp: int | None = None, alg: str = "ES384"
) -> str:
    now = int(time.time())
    claims = {"iss": iss, "sub": iss, "aud": aud, "exp": exp or now + 120, "jti": uuid.uuid4().hex}
    return jwt.encode({"alg": alg, "kid": "lab-1"}, claims, key, algorithms=[alg])


def backend_token(client: TestClient, key: Any, scope: str = "system/Observation.cruds") -> dict[str, Any]:
    response = client.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion(key),
        },
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_backend_token_reads_and_writes_within_scope(auth_client: TestClient, lab_key: ECKey) -> None:
    token = backend_token(
        auth_client, lab_key, "system/Observation.cruds system/Patient.rs system/Encounter.rs"
    )
    assert token["scope"] == "system/Observation.cruds system/Patient.rs"  # Encounter: not registered
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "glucose"}}
    created = auth_client.post("/fhir/Observation", json=obs, headers=headers)
    assert created.status_code == 201
    assert auth_client.get("/fhir/Observation", headers=headers).json()["total"] == 1
    denied = auth_client.post("/fhir/Patient", json={"resourceType": "Patient"}, headers=headers)
    assert denied.status_code == 403
    assert denied.json()["resourceType"] == "OperationOutcome"
    assert auth_client.get("/fhir/Encounter", headers=headers).status_code == 403


def test_fhir_without_token_is_401_but_metadata_is_public(auth_client: TestClient) -> None:
    assert auth_client.get("/fhir/metadata").status_code == 200
    assert auth_client.get("/fhir/.well-known/smart-configuration").status_code == 200
    response = auth_client.get("/fhir/Patient")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["resourceType"] == "OperationOutcome"


def test_replayed_or_misaddressed_assertion_is_refused(auth_client: TestClient, lab_key: ECKey) -> None:
    form = {
        "grant_type": "client_credentials",
        "scope": "system/Observation.rs",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion(lab_key),
    }
    assert auth_client.post("/auth/token", data=form).status_code == 200
    assert auth_client.post("/auth/token", data=form).status_code == 401  # same jti
    wrong_aud = {**form, "client_assertion": assertion(lab_key, aud="http://elsewhere/token")}
    assert auth_client.post("/auth/token", data=wrong_aud).status_code == 401
    other = ECKey.generate_key("P-384", private=True)
    assert (
        auth_client.post("/auth/token", data={**form, "client_assertion": assertion(other)}).status_code
        == 401
    )


def _forge(claims: dict[str, Any], header: dict[str, Any], key: Any) -> str:
    return jwt.encode(header, claims, key)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_forged_and_out_of_date_tokens_are_refused(
    auth_client: TestClient, lab_key: ECKey, engine: Engine, settings: Settings
) -> None:
    good = backend_token(auth_client, lab_key)["access_token"]
    assert (
        auth_client.get("/fhir/Observation", headers={"Authorization": f"Bearer {good}"}).status_code == 200
    )
    payload = jwt.decode(good, lambda _: signing_public(engine, settings)).claims
    now = int(time.time())
    with engine.begin() as conn:
        es = signing_key(conn, settings, "ES256")
        rs = signing_key(conn, settings, "RS256")

    def sign(claims: dict[str, Any], alg: str = "ES256") -> str:
        key = es if alg == "ES256" else rs
        return _forge(claims, {"alg": alg, "kid": key.kid}, key.key)

    none_header = _b64(b'{"alg":"none","typ":"JWT"}')
    none_token = f"{none_header}.{_b64(orjson_dumps(payload))}."
    public_pem = rs.key.as_pem(private=False)
    # joserfc refuses to build this key at all, so the attacker's token is made by hand.
    signing_input = f"{_b64(orjson_dumps({'alg': 'HS256', 'kid': rs.kid}))}.{_b64(orjson_dumps(payload))}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    hs_token = f"{signing_input}.{_b64(mac)}"
    bad = {
        "alg none": none_token,
        "HS256 with public key": hs_token,
        "wrong audience": sign({**payload, "aud": "http://other/fhir"}),
        "wrong issuer": sign({**payload, "iss": "http://evil"}),
        "expired": sign({**payload, "exp": now - 3600, "iat": now - 4000, "nbf": now - 4000}),
        "not yet valid": sign({**payload, "nbf": now + 3600}),
        "foreign key": jwt.encode(
            {"alg": "ES256", "kid": es.kid}, payload, ECKey.generate_key("P-256", private=True)
        ),
    }
    for name, token in bad.items():
        response = auth_client.get("/fhir/Observation", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, name
        assert 'error="invalid_token"' in response.headers["www-authenticate"], name
    # An RS256 token from Socle's own RSA key is accepted (both algorithms are valid).
    assert (
        auth_client.get(
            "/fhir/Observation", headers={"Authorization": f"Bearer {sign(payload, 'RS256')}"}
        ).status_code
        == 200
    )


def signing_public(engine: Engine, settings: Settings) -> Any:
    with engine.begin() as conn:
        return signing_key(conn, settings, "ES256").key


def orjson_dumps(value: Any) -> bytes:
    import orjson

    return orjson.dumps(value)


def test_key_rotation_keeps_old_tokens_valid(
    auth_client: TestClient, lab_key: ECKey, engine: Engine, settings: Settings
) -> None:
    old = backend_token(auth_client, lab_key)["access_token"]
    old_kids = {k["kid"] for k in auth_client.get("/auth/jwks").json()["keys"]}
    with engine.begin() as conn:
        rotate_keys(conn, settings)
    jwks = auth_client.get("/auth/jwks").json()["keys"]
    kids = {k["kid"] for k in jwks}
    assert old_kids < kids and len(kids) == 4
    assert {k["alg"] for k in jwks} == {"ES256", "RS256"}
    assert all("d" not in k for k in jwks)  # public halves only
    new = backend_token(auth_client, lab_key)["access_token"]
    for token in (old, new):
        assert (
            auth_client.get("/fhir/Observation", headers={"Authorization": f"Bearer {token}"}).status_code
            == 200
        )
    # Once the retired keys are past their expiry, a second rotation drops them.
    with engine.begin() as conn:
        rotate_keys(conn, settings, now=int(time.time()) + 10 * 3600)
    later = {k["kid"] for k in auth_client.get("/auth/jwks").json()["keys"]}
    assert not (old_kids & later)


def test_revoked_and_introspected_access_token(
    auth_client: TestClient, lab_key: ECKey, engine: Engine
) -> None:
    token = backend_token(auth_client, lab_key)["access_token"]

    def client_auth() -> dict[str, str]:
        return {
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion(lab_key),
        }

    active = auth_client.post("/auth/introspect", data={"token": token, **client_auth()}).json()
    assert active["active"] is True and active["client_id"] == "lab"
    assert auth_client.post("/auth/revoke", data={"token": token, **client_auth()}).status_code == 200
    assert auth_client.post("/auth/introspect", data={"token": token, **client_auth()}).json() == {
        "active": False
    }
    time.sleep(2.1)  # the bearer check caches revocations for at most 2 s
    response = auth_client.get("/fhir/Observation", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def test_discovery_documents(auth_client: TestClient) -> None:
    oidc = auth_client.get("/.well-known/openid-configuration").json()
    assert oidc["issuer"] == "http://testserver"
    assert oidc["token_endpoint"] == TOKEN_URL
    assert oidc["code_challenge_methods_supported"] == ["S256"]
    smart = auth_client.get("/fhir/.well-known/smart-configuration").json()
    assert "permission-v2" in smart["capabilities"] and smart["token_endpoint"] == TOKEN_URL


def test_a_token_verified_once_is_still_checked_for_expiry_revocation_and_key_removal(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TokenVerifier keeps the claims of a token whose signature it checked; what changes with time
    is checked again on every request."""
    issuer = "http://testserver/fhir"
    grant = {"sub": "lab", "client_id": "lab", "scope": "system/*.rs", "kind": "backend"}
    verifier = TokenVerifier()
    monkeypatch.setattr(TokenVerifier, "REVOKED_TTL", 0.0)  # see each revocation at once

    def verify(token: str) -> dict[str, Any]:
        return verifier.verify(engine.connect, token, issuer, fhir_audience(issuer))

    with engine.begin() as conn:
        token, claims = issue_access_token(conn, settings, issuer, grant)
        revoked, revoked_claims = issue_access_token(conn, settings, issuer, grant)
    decoded = []
    decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: decoded.append(1) or decode(*a, **k))
    assert verify(token)["jti"] == claims["jti"]
    assert verify(token)["jti"] == claims["jti"]  # the kept claims: no second signature check
    assert len(decoded) == 1
    assert verify(revoked)["jti"] == revoked_claims["jti"]
    with engine.begin() as conn:
        conn.execute(insert(auth_revoked).values(jti=revoked_claims["jti"], expires_at=claims["exp"]))
    with pytest.raises(InvalidToken, match="revoked"):
        verify(revoked)
    # Past its expiry (and the leeway), the kept token is refused.
    later = time.time() + settings.access_token_ttl + 120
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(InvalidToken, match="expired"):
        verify(token)
    monkeypatch.undo()
    # Its key dropped from the JWKS (two rotations, the second past the retired keys' expiry).
    assert verify(token)["jti"] == claims["jti"]
    with engine.begin() as conn:
        rotate_keys(conn, settings)
        rotate_keys(conn, settings, now=int(time.time()) + 10 * 3600)
    monkeypatch.setattr(TokenVerifier, "KEY_TTL", 0.0)
    with pytest.raises(InvalidToken):
        verify(token)
