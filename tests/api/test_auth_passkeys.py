"""WebAuthn passkeys driven by a software authenticator through the real endpoints, on both backends:
registration from "Mes clés d'accès" after a password + TOTP login, then login with the passkey as
second factor (acr eidas2), and the refusals (replayed challenge, wrong origin, no user verification,
cloned authenticator, CSRF, acr_values above the login)."""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import parse_qs, urlparse

import pyotp
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import KeySet
from starlette.testclient import TestClient

from tests.api._soft_authenticator import UP, SoftAuthenticator
from tests.api.test_auth_code_flow import PRO_ID, REDIRECT, TOTP_SECRET, browser, csrf_of

__all__ = ["browser"]

VERIFIER = "p" * 64
AUTHORIZE = (
    f"/auth/authorize?response_type=code&client_id=app&redirect_uri={REDIRECT}"
    f"&scope=openid%20fhirUser%20user/*.rs&nonce=n&state=s"
    f"&code_challenge={create_s256_code_challenge(VERIFIER)}&code_challenge_method=S256"
)


def portal_login(browser: TestClient) -> str:
    """Password + TOTP without an application; returns the CSRF token of the passkeys page."""
    form = browser.get("/auth/login?next=/auth/passkeys")
    assert form.status_code == 200
    csrf = csrf_of(form.text)
    browser.post(
        "/auth/login",
        data={"csrf": csrf, "kind": "professional", "login": PRO_ID, "password": "correct horse"},
    )
    done = browser.post("/auth/login/code", data={"csrf": csrf, "code": pyotp.TOTP(TOTP_SECRET).now()})
    assert done.status_code == 303 and done.headers["location"] == "/auth/passkeys"
    listing = browser.get("/auth/passkeys")
    assert listing.status_code == 200 and "Aucune clé d'accès" in listing.text
    return csrf_of(listing.text)


def register(browser: TestClient, authenticator: SoftAuthenticator, **kwargs: Any) -> Any:
    csrf = portal_login(browser) if not kwargs.pop("logged_in", False) else kwargs.pop("csrf")
    options = browser.post("/auth/passkeys/options", data={"csrf": csrf})
    assert options.status_code == 200, options.text
    body = options.json()
    assert (
        body["rp"]["id"] == "testserver" and body["authenticatorSelection"]["userVerification"] == "required"
    )
    credential = authenticator.create(body, **kwargs)
    return browser.post("/auth/passkeys", data={"csrf": csrf, "credential": json.dumps(credential)}), csrf


def password_step(browser: TestClient, url: str = AUTHORIZE) -> str:
    browser.cookies.clear()
    assert browser.get(url).status_code == 303
    csrf = csrf_of(browser.get("/auth/login").text)
    second = browser.post(
        "/auth/login",
        data={"csrf": csrf, "kind": "professional", "login": PRO_ID, "password": "correct horse"},
    )
    assert second.status_code == 200 and 'data-passkey="get"' in second.text
    return csrf


def passkey_step(browser: TestClient, csrf: str, authenticator: SoftAuthenticator, **kwargs: Any) -> Any:
    options = browser.post("/auth/login/passkey/options", data={"csrf": csrf})
    assert options.status_code == 200, options.text
    credential = authenticator.get(options.json(), **kwargs)
    return browser.post("/auth/login/passkey", data={"csrf": csrf, "credential": json.dumps(credential)})


def test_register_then_login_with_passkey_gives_eidas2(browser: TestClient) -> None:
    authenticator = SoftAuthenticator("testserver", "http://testserver")
    registered, csrf = register(browser, authenticator, fmt="packed")
    assert registered.status_code == 200 and "Clé d&#39;accès enregistrée" in registered.text
    assert authenticator_id_shown(registered.text, authenticator)
    # The same authenticator cannot be registered twice.
    again, _ = register(browser, authenticator, logged_in=True, csrf=csrf)
    assert again.status_code == 400

    csrf = password_step(browser)
    done = passkey_step(browser, csrf, authenticator)
    assert done.status_code == 303, done.text
    code = parse_qs(urlparse(done.headers["location"]).query)["code"][0]
    token = browser.post(
        "/auth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": "app",
            "code_verifier": VERIFIER,
        },
    ).json()
    keys = KeySet.import_key_set(browser.get("/auth/jwks").json())
    id_token = jwt.decode(token["id_token"], keys).claims
    assert id_token["acr"] == "eidas2" and "hwk" in id_token["amr"] and id_token["nonce"] == "n"
    assert jwt.decode(token["access_token"], keys).claims["acr"] == "eidas2"


def authenticator_id_shown(html: str, authenticator: SoftAuthenticator) -> bool:
    from tests.api._soft_authenticator import b64url

    return b64url(authenticator.credential_id)[:16] in html


def test_registration_refusals(browser: TestClient) -> None:
    authenticator = SoftAuthenticator("testserver", "http://testserver")
    csrf = portal_login(browser)
    options = browser.post("/auth/passkeys/options", data={"csrf": csrf}).json()
    good = authenticator.create(options)
    forged = browser.post("/auth/passkeys", data={"csrf": "forged", "credential": json.dumps(good)})
    assert forged.status_code == 403
    assert browser.post("/auth/passkeys/options", data={"csrf": "forged"}).status_code == 403
    # Wrong origin (a phishing site relaying the challenge).
    options = browser.post("/auth/passkeys/options", data={"csrf": csrf}).json()
    phished = authenticator.create(options, origin="http://evil.example")
    refused = browser.post("/auth/passkeys", data={"csrf": csrf, "credential": json.dumps(phished)})
    assert refused.status_code == 400 and "refusée" in refused.text
    # No user verification (UV flag off): refused, the strong path needs PIN or biometrics.
    options = browser.post("/auth/passkeys/options", data={"csrf": csrf}).json()
    weak = authenticator.create(options, flags=UP)
    assert (
        browser.post("/auth/passkeys", data={"csrf": csrf, "credential": json.dumps(weak)}).status_code == 400
    )
    # A challenge answers once: the first good response registers, its replay is refused.
    options = browser.post("/auth/passkeys/options", data={"csrf": csrf}).json()
    good = authenticator.create(options)
    assert (
        browser.post("/auth/passkeys", data={"csrf": csrf, "credential": json.dumps(good)}).status_code == 200
    )
    replay = browser.post("/auth/passkeys", data={"csrf": csrf, "credential": json.dumps(good)})
    assert replay.status_code == 400 and "déjà utilisé" in replay.text
    # Without a session the page sends to the login.
    browser.cookies.clear()
    assert browser.get("/auth/passkeys").headers["location"] == "/auth/login?next=/auth/passkeys"
    assert browser.get("/auth/login?next=https://evil.example").status_code == 400


def test_login_refusals_clone_and_acr_values(browser: TestClient) -> None:
    authenticator = SoftAuthenticator("testserver", "http://testserver")
    registered, _ = register(browser, authenticator)
    assert registered.status_code == 200
    csrf = password_step(browser)
    other = SoftAuthenticator("testserver", "http://testserver")  # a key never registered
    assert passkey_step(browser, csrf, other).status_code == 401
    assert passkey_step(browser, csrf, authenticator, origin="http://evil.example").status_code == 401
    assert passkey_step(browser, csrf, authenticator, flags=UP).status_code == 401
    assert passkey_step(browser, csrf, authenticator, count=5).status_code == 303  # counter now 5
    # A clone replays an older counter: refused.
    csrf = password_step(browser)
    assert passkey_step(browser, csrf, authenticator, count=3).status_code == 401
    # The application asks for eidas2: TOTP is not enough, the passkey is.
    strong = AUTHORIZE + "&acr_values=eidas2"
    csrf = password_step(browser, strong)
    fresh = pyotp.TOTP(TOTP_SECRET).at(time.time() + 30)  # the current code was spent by `register`
    totp = browser.post("/auth/login/code", data={"csrf": csrf, "code": fresh})
    assert totp.status_code == 403 and "plus forte" in totp.text
    csrf = password_step(browser, strong)
    assert passkey_step(browser, csrf, authenticator, count=6).status_code == 303
    assert re.search(r"code=", browser.get(strong).headers["location"])  # the eidas2 session is reused
