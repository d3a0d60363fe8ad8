"""Forged, misused and out-of-date bearer tokens against a live server, over real HTTP.

The in-process tests (tests/api/test_auth_backend.py) cover the same refusals through the ASGI
transport; here the attacker is outside: the public JWKS is fetched over HTTP (HS256 "signed" with
the RSA public key taken from it), an ID token obtained by a real login is replayed as an access
token, and the server's answers (401 with an `invalid_token` Bearer challenge, 403 OperationOutcome
with `insufficient_scope`) are read off the wire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import orjson
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from socle.config import Settings
from socle.trust.auth.keys import signing_key
from tests.e2e.conftest import CLIENT_ID, REDIRECT, Stack, login_over_http
from tests.server import MASTER_KEY

pytestmark = pytest.mark.slow


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(claims))}"


def login_tokens(stack: Stack, scope: str) -> dict[str, Any]:
    verifier = "a" * 64
    query = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": scope,
        "state": "s",
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    callback = login_over_http(stack, f"{stack.origin}/auth/authorize?{urlencode(query)}", "professional")
    code = parse_qs(urlparse(callback).query)["code"][0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": CLIENT_ID,
        "code_verifier": verifier,
    }
    response = httpx.post(f"{stack.origin}/auth/token", data=form)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_forged_misused_and_stale_tokens_are_refused_over_http(stack: Stack) -> None:
    fhir = f"{stack.server.url}/Patient"
    good = stack.server.token
    claims = jwt.decode(good, lambda _: _es256(stack).key).claims  # the operator's token, as a template
    now = int(time.time())
    es = _es256(stack)

    def sign(changes: dict[str, Any]) -> str:
        return jwt.encode({"alg": "ES256", "kid": es.kid, "typ": "at+jwt"}, {**claims, **changes}, es.key)

    # What an outsider can do with the public JWKS alone.
    jwks = httpx.get(f"{stack.origin}/auth/jwks").json()["keys"]
    rsa = next(k for k in jwks if k["kty"] == "RSA")
    public_pem = RSAKey.import_key(rsa).as_pem(private=False)
    hs_input = _unsigned({"alg": "HS256", "kid": rsa["kid"], "typ": "at+jwt"}, claims)
    hs_token = f"{hs_input}.{_b64(hmac.new(public_pem, hs_input.encode(), hashlib.sha256).digest())}"
    tokens = login_tokens(stack, "openid fhirUser user/*.rs")

    refused = {
        "alg none": _unsigned({"alg": "none", "typ": "JWT"}, claims) + ".",
        "HS256 signed with the RSA public key": hs_token,
        "signed by a key not in the JWKS": jwt.encode(
            {"alg": "ES256", "kid": es.kid}, claims, ECKey.generate_key("P-256", private=True)
        ),
        "signature of another token": ".".join(good.split(".")[:2] + [sign({"jti": "x"}).split(".")[2]]),
        "wrong audience": sign({"aud": "http://elsewhere.example/fhir"}),
        "wrong issuer": sign({"iss": "http://elsewhere.example"}),
        "expired": sign({"exp": now - 120, "iat": now - 900, "nbf": now - 900}),
        "not yet valid": sign({"nbf": now + 3600}),
        "ID token as an access token": tokens["id_token"],
        "garbage": "not-a-jwt",
    }
    with httpx.Client(timeout=30.0) as http:
        assert http.get(fhir, headers={"Authorization": f"Bearer {good}"}).status_code == 200
        missing = http.get(fhir)
        assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
        assert missing.json()["resourceType"] == "OperationOutcome"
        basic = http.get(fhir, headers={"Authorization": "Basic dXNlcjpwYXNz"})
        assert basic.status_code == 401
        for name, token in refused.items():
            response = http.get(fhir, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401, (name, response.status_code, response.text)
            assert 'error="invalid_token"' in response.headers["www-authenticate"], name
            assert response.json()["resourceType"] == "OperationOutcome", name
        # A valid token whose scopes do not cover the interaction: 403, insufficient_scope.
        user = {"Authorization": f"Bearer {tokens['access_token']}"}
        write = http.post(fhir, json={"resourceType": "Patient"}, headers=user)
        assert write.status_code == 403 and write.json()["resourceType"] == "OperationOutcome"
        assert 'error="insufficient_scope"' in write.headers["www-authenticate"]
        # Public: the CapabilityStatement (advertising SMART) and the SMART configuration.
        metadata = http.get(f"{stack.server.url}/metadata")
        assert metadata.status_code == 200
        security = metadata.json()["rest"][0]["security"]
        assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
        uris = {e["url"]: e["valueUri"] for e in security["extension"][0]["extension"]}
        assert uris["authorize"] == f"{stack.origin}/auth/authorize"
        assert uris["token"] == f"{stack.origin}/auth/token"
        assert http.get(f"{stack.server.url}/.well-known/smart-configuration").status_code == 200


def _es256(stack: Stack) -> Any:
    with stack.engine.begin() as conn:
        return signing_key(conn, Settings(auth_master_key=MASTER_KEY), "ES256")
