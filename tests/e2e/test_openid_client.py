"""The npm `openid-client` (v6) as the relying party of a live Socle: discovery, authorization code
with PKCE, the FHIR API with its access token, refresh with rotation and reuse detection, userinfo.

Needs Node.js and `npm ci --prefix tests/e2e/oidc` (run by `make test`); it fails, never skips,
when they are missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import CLIENT_ID, PRO_ID, REDIRECT, Stack, login_over_http

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent / "oidc"
SCRIPT = HERE / "relying_party.mjs"
INSTALL = "npm ci --prefix tests/e2e/oidc --no-audit --no-fund"
SCOPE = "openid fhirUser profile offline_access user/*.rs"


def node() -> str:
    found = shutil.which("node")
    assert found, "Node.js is needed (apt-get install nodejs npm)"
    assert (HERE / "node_modules" / "openid-client").is_dir(), f"run `{INSTALL}` (make test does)"
    return found


def read_message(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=10)
        stderr = process.stderr.read() if process.stderr else ""
        raise AssertionError(f"the relying party exited ({process.returncode}): {stderr}")
    message: dict[str, Any] = json.loads(line)
    assert message.get("step") != "error", message
    return message


def test_openid_client_code_pkce_refresh_userinfo(stack: Stack) -> None:
    env = {
        **os.environ,
        "ISSUER": stack.origin,
        "CLIENT_ID": CLIENT_ID,
        "REDIRECT_URI": REDIRECT,
        "SCOPE": SCOPE,
        "FHIR_BASE": stack.server.url,
    }
    process = subprocess.Popen(
        [node(), str(SCRIPT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        started = read_message(process)
        assert started["step"] == "authorize" and started["issuer"] == stack.origin
        assert started["pkce"] == ["S256"]
        url = started["url"]
        assert url.startswith(f"{stack.origin}/auth/authorize?") and "code_challenge_method=S256" in url

        callback = login_over_http(stack, url, "professional")
        assert process.stdin is not None
        process.stdin.write(callback + "\n")
        process.stdin.close()
        done = read_message(process)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()

    # The ID token, as openid-client validated it (signature, iss, aud, nonce, exp).
    claims = done["id_token"]
    assert claims["iss"] == stack.origin and claims["aud"] == CLIENT_ID
    assert claims["acr"] == "eidas1" and claims["fhirUser"] == "Practitioner/pract-e2e"
    assert claims["SubjectNameID"] == PRO_ID and claims["SubjectRole"] == ["10^1.2.250.1.213.1.1.5.5"]
    assert done["token_type"].lower() == "bearer" and done["scope"] == SCOPE
    assert done["has_refresh_token"] is True
    # The access token opens the FHIR API; without it the API answers 401 with a Bearer challenge.
    assert done["fhir_status"] == 200 and done["fhir_resource_type"] == "Bundle"
    assert done["anonymous_status"] == 401 and done["anonymous_challenge"].startswith("Bearer")
    # Refresh rotated the refresh token; userinfo answered for the same subject.
    assert done["refreshed_rotated"] is True and done["refreshed_access_differs"] is True
    assert done["userinfo"]["sub"] == claims["sub"]
    assert done["userinfo"]["fhirUser"] == "Practitioner/pract-e2e"
    assert done["userinfo"]["SubjectNameID"] == PRO_ID
    # Reusing the rotated refresh token is refused, and revokes the family (the new one too).
    assert done["reuse"] == "invalid_grant" and done["after_reuse"] == "invalid_grant"
    # The family's access tokens are revoked as well.
    assert done["revoked"] == {"status": 401, "challenge": "invalid_token"}
