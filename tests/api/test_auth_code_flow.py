"""Authorization code + PKCE with Authlib's OAuth client, login pages with TOTP, refresh rotation,
and the negative cases of the browser flow, on both backends."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import Engine
from starlette.testclient import TestClient

from socle.app import create_app
from socle.store.repository import Store
from socle.trust.auth.accounts import add_delegation, create_account, outbox
from socle.trust.auth.clients import add_client
from tests.api.test_auth_backend import auth_settings

REDIRECT = "http://app.example/callback"
TOTP_SECRET = pyotp.random_base32()
PRO_ID = "810001234567"
LOGGED_OUT = "http://app.example/logged-out"


@pytest.fixture
def browser(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    settings = auth_settings(tmp_path)
    with engine.begin() as conn:
        add_client(
            conn,
            settings,
            "app",
            kind="public",
            redirect_uris=[REDIRECT],
            post_logout_redirect_uris=[LOGGED_OUT],
        )
        create_account(
            conn,
            settings,
            kind="professional",
            login=PRO_ID,
            password="correct horse",
            totp_secret=TOTP_SECRET,
            claims={
                "fhirUser": "Practitioner/pract-1",
                "practice": {
                    "national_id": PRO_ID,
                    "profession": "10",
                    "specialty": "SM54",
                    "structure": "org-1",
                },
                "identity": {
                    "SubjectNameID": PRO_ID,
                    "given_name": "Anne",
                    "family_name": "Martin",
                    "SubjectRole": ["10^1.2.250.1.213.1.1.5.5"],
                },
            },
        )
        mother = create_account(
            conn,
            settings,
            kind="citizen",
            login="claire@example.fr",
            password="citizen pass",
            claims={"fhirUser": "Patient/claire", "patient": "claire", "identity": {"given_name": "Claire"}},
        )
        add_delegation(
            conn, mother.account_id, "leo", "guardian", "patient/*.cruds launch/patient openid fhirUser"
        )
    app = create_app(settings, store=Store(engine))
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        yield client


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def login_professional(browser: TestClient, authorize_url: str, code: str | None = None) -> str:
    """Drive the login pages; return the URL the browser is finally sent to."""
    response = browser.get(authorize_url)
    assert response.status_code == 303 and response.headers["location"] == "/auth/login"
    form = browser.get("/auth/login")
    assert form.status_code == 200 and "Professionnel de santé" in form.text
    csrf = csrf_of(form.text)
    second = browser.post(
        "/auth/login",
        data={"csrf": csrf, "kind": "professional", "login": PRO_ID, "password": "correct horse"},
    )
    assert second.status_code == 200, second.text
    done = browser.post(
        "/auth/login/code", data={"csrf": csrf, "code": code or pyotp.TOTP(TOTP_SECRET).now()}
    )
    assert done.status_code == 303, done.text
    return done.headers["location"]


def oauth_client(browser: TestClient) -> OAuth2Client:
    return OAuth2Client(
        client_id="app",
        redirect_uri=REDIRECT,
        scope="openid fhirUser profile offline_access user/*.rs",
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
        transport=browser._transport,
        base_url="http://testserver",
    )


def test_authlib_code_pkce_refresh_and_reuse(browser: TestClient) -> None:
    client = oauth_client(browser)
    verifier = "v" * 64
    url, state = client.create_authorization_url(
        "http://testserver/auth/authorize", code_verifier=verifier, nonce="n1"
    )
    final = login_professional(browser, url)
    assert final.startswith(REDIRECT)
    token: dict[str, Any] = client.fetch_token(
        "http://testserver/auth/token", authorization_response=final, code_verifier=verifier, state=state
    )
    assert token["scope"] == "openid fhirUser profile offline_access user/*.rs"
    keys = browser.get("/auth/jwks").json()
    from joserfc import jwt
    from joserfc.jwk import KeySet

    id_token = jwt.decode(token["id_token"], KeySet.import_key_set(keys)).claims
    assert id_token["aud"] == "app" and id_token["nonce"] == "n1" and id_token["acr"] == "eidas1"
    assert id_token["fhirUser"] == "Practitioner/pract-1" and id_token["SubjectNameID"] == PRO_ID
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    assert browser.get("/fhir/Patient", headers=headers).status_code == 200
    assert browser.post("/fhir/Patient", json={"resourceType": "Patient"}, headers=headers).status_code == 403
    info = browser.get("/auth/userinfo", headers=headers).json()
    assert info["SubjectRole"] == ["10^1.2.250.1.213.1.1.5.5"] and info["fhirUser"] == "Practitioner/pract-1"

    first_refresh = token["refresh_token"]
    renewed = client.refresh_token("http://testserver/auth/token", refresh_token=first_refresh)
    assert renewed["refresh_token"] != first_refresh
    again = browser.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": first_refresh, "client_id": "app"},
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    # Reuse revoked the whole family, the renewed refresh token included.
    later = browser.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": renewed["refresh_token"], "client_id": "app"},
    )
    assert later.status_code == 400


def test_reused_code_and_pkce_downgrade_are_refused(browser: TestClient) -> None:
    verifier = "w" * 64
    challenge = create_s256_code_challenge(verifier)
    base = (
        f"/auth/authorize?response_type=code&client_id=app&redirect_uri={REDIRECT}&scope=openid%20user/*.rs"
    )
    assert "error=invalid_request" in browser.get(base).headers["location"]  # public client without PKCE
    plain = browser.get(f"{base}&code_challenge={verifier}&code_challenge_method=plain")
    assert "error=invalid_request" in plain.headers["location"]
    final = login_professional(
        browser, f"{base}&code_challenge={challenge}&code_challenge_method=S256&state=s"
    )
    code = parse_qs(urlparse(final).query)["code"][0]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "client_id": "app"}
    assert browser.post("/auth/token", data=form).status_code == 400  # no verifier: downgrade refused
    # That attempt consumed the code; a second code (the session is reused, no new login) succeeds.
    again = browser.get(f"{base}&code_challenge={challenge}&code_challenge_method=S256&state=t")
    code2 = parse_qs(urlparse(again.headers["location"]).query)["code"][0]
    ok = browser.post("/auth/token", data={**form, "code": code2, "code_verifier": verifier})
    assert ok.status_code == 200
    reused = browser.post("/auth/token", data={**form, "code": code2, "code_verifier": verifier})
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    revoked = browser.get("/fhir/Patient", headers={"Authorization": f"Bearer {ok.json()['access_token']}"})
    import time

    time.sleep(2.1)
    revoked = browser.get("/fhir/Patient", headers={"Authorization": f"Bearer {ok.json()['access_token']}"})
    assert revoked.status_code == 401


def test_open_redirect_and_unknown_client_are_not_redirected(browser: TestClient) -> None:
    for redirect in (
        "http://evil.example/callback",
        f"{REDIRECT}/../evil",
        f"{REDIRECT}?x=1",
        "//evil.example",
    ):
        response = browser.get(f"/auth/authorize?response_type=code&client_id=app&redirect_uri={redirect}")
        assert response.status_code == 400 and "location" not in response.headers
    response = browser.get(f"/auth/authorize?response_type=code&client_id=nobody&redirect_uri={REDIRECT}")
    assert response.status_code == 400


def test_csrf_wrong_totp_and_lockout(browser: TestClient) -> None:
    challenge = create_s256_code_challenge("x" * 64)
    browser.get(
        f"/auth/authorize?response_type=code&client_id=app&redirect_uri={REDIRECT}&scope=openid"
        f"&code_challenge={challenge}&code_challenge_method=S256"
    )
    csrf = csrf_of(browser.get("/auth/login").text)
    forged = browser.post(
        "/auth/login",
        data={"csrf": "forged", "kind": "professional", "login": PRO_ID, "password": "correct horse"},
    )
    assert forged.status_code == 403
    for _ in range(5):
        wrong = browser.post(
            "/auth/login", data={"csrf": csrf, "kind": "professional", "login": PRO_ID, "password": "guess"}
        )
        assert wrong.status_code == 401 and "incorrect" in wrong.text
    browser.post(
        "/auth/login", data={"csrf": csrf, "kind": "professional", "login": PRO_ID, "password": "guess"}
    )
    locked = browser.post(
        "/auth/login",
        data={"csrf": csrf, "kind": "professional", "login": PRO_ID, "password": "correct horse"},
    )
    assert locked.status_code == 429  # even the right password waits for the lock to end


def test_citizen_code_by_outbox_and_guardian_delegation(browser: TestClient, engine: Engine) -> None:
    verifier = "c" * 64
    challenge = create_s256_code_challenge(verifier)
    browser.get(
        f"/auth/authorize?response_type=code&client_id=app&redirect_uri={REDIRECT}"
        f"&scope=openid%20fhirUser%20launch/patient%20patient/*.rs%20patient/*.cruds"
        f"&code_challenge={challenge}&code_challenge_method=S256"
    )
    csrf = csrf_of(browser.get("/auth/login").text)
    sent = browser.post(
        "/auth/login",
        data={"csrf": csrf, "kind": "citizen", "login": "claire@example.fr", "password": "citizen pass"},
    )
    assert sent.status_code == 200
    with engine.connect() as conn:
        message = outbox(conn, "claire@example.fr")[-1]["body"]
    code = re.search(r"\b(\d{6})\b", message)
    assert code
    choose = browser.post("/auth/login/code", data={"csrf": csrf, "code": code.group(1)})
    assert choose.status_code == 200 and "Pour qui agissez-vous" in choose.text
    delegation = re.findall(r'name="for" value="([^"]+)"', choose.text)[1]
    done = browser.post("/auth/login/for", data={"csrf": csrf, "for": delegation})
    auth_code = parse_qs(urlparse(done.headers["location"]).query)["code"][0]
    token = browser.post(
        "/auth/token",
        data={
            "grant_type": "authorization_code",
            "code": auth_code,
            "redirect_uri": REDIRECT,
            "client_id": "app",
            "code_verifier": verifier,
        },
    ).json()
    assert token["patient"] == "leo"
    introspected = browser.post("/auth/introspect", data={"token": token["access_token"], "client_id": "app"})
    assert introspected.status_code == 401  # a public client may not introspect
    from joserfc import jwt
    from joserfc.jwk import KeySet

    claims = jwt.decode(token["access_token"], KeySet.import_key_set(browser.get("/auth/jwks").json())).claims
    assert claims["act"]["fhirUser"] == "Patient/claire" and claims["relationship"] == "guardian"
    assert claims["kind"] == "citizen"


def test_rp_initiated_logout(browser: TestClient) -> None:
    """OIDC RP-Initiated Logout 1.0: advertised, ends the session, returns only to a registered URI."""
    config = browser.get("/.well-known/openid-configuration").json()
    assert config["end_session_endpoint"] == "http://testserver/auth/logout"
    verifier = "o" * 64
    authorize = (
        f"/auth/authorize?response_type=code&client_id=app&redirect_uri={REDIRECT}&scope=openid"
        f"&code_challenge={create_s256_code_challenge(verifier)}&code_challenge_method=S256"
    )
    final = login_professional(browser, authorize)
    code = parse_qs(urlparse(final).query)["code"][0]
    id_token = browser.post(
        "/auth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": "app",
            "code_verifier": verifier,
        },
    ).json()["id_token"]
    # Not registered for logout (even the login redirect URI): logged out, but no redirect.
    for wanted in (REDIRECT, "http://evil.example/"):
        shown = browser.get(
            "/auth/logout", params={"id_token_hint": id_token, "post_logout_redirect_uri": wanted}
        )
        assert shown.status_code == 200 and "location" not in shown.headers
    # A forged hint is not believed either.
    forged = id_token[:-4] + ("AAAA" if not id_token.endswith("AAAA") else "BBBB")
    shown = browser.get(
        "/auth/logout", params={"id_token_hint": forged, "post_logout_redirect_uri": LOGGED_OUT}
    )
    assert "location" not in shown.headers
    # The session is back (a new login, with the next TOTP code: the first one is spent), then
    # logout with a good hint returns with the state.
    login_professional(browser, authorize, code=pyotp.TOTP(TOTP_SECRET).at(time.time() + 30))
    out = browser.get(
        "/auth/logout",
        params={"id_token_hint": id_token, "post_logout_redirect_uri": LOGGED_OUT, "state": "bye"},
    )
    assert out.status_code == 303 and out.headers["location"] == f"{LOGGED_OUT}?state=bye"
    assert "socle_session" in out.headers["set-cookie"] and "Max-Age=0" in out.headers["set-cookie"]
    # The session is gone: the next authorization asks for a login again.
    assert browser.get(authorize).headers["location"] == "/auth/login"
