"""A real browser on the login pages: headless Chromium (Debian's `/usr/bin/chromium`) driven by
Playwright for Python.

A professional logs in with idNat_PS + password + TOTP (pyotp computes the code), a citizen with
e-mail + password + the one-time code read from the outbox; both land back on the application's
redirect URI with a code that the token endpoint exchanges. Every page is checked to be French,
styled by the locally served DSFR, and to pass an accessibility smoke test (one h1, a label for every
field, `lang`). Playwright's own browser download is never used: `make test` installs Debian's
chromium (`apt-get install -y chromium`); without it these tests fail, they do not skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import pyotp
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from playwright.sync_api import Browser, Page, Route, sync_playwright

from tests.e2e.conftest import (
    CITIZEN,
    CITIZEN_PASSWORD,
    CLIENT_ID,
    PRO_ID,
    PRO_PASSWORD,
    REDIRECT,
    Stack,
)

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
BLUE_FRANCE = "rgb(0, 0, 145)"  # DSFR primary button background (#000091)
APP_PAGE = "<!doctype html><html lang='en'><title>app</title><p>callback reached</p></html>"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `apt-get install -y chromium` (make test does it)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


class Visit:
    """A browser tab on Socle, recording what it loaded and where the application got called back."""

    def __init__(self, browser: Browser) -> None:
        self.context = browser.new_context(locale="fr-FR")
        self.page: Page = self.context.new_page()
        self.failed: list[str] = []
        self.stylesheets: list[tuple[str, int]] = []
        self.callbacks: list[str] = []
        self.page.on("requestfailed", self._failed)
        self.page.on("response", self._response)
        # The application is not running: the browser's arrival at its redirect URI is the end.
        self.page.route(f"{REDIRECT}**", self._app)

    def _response(self, response: Any) -> None:
        if response.request.resource_type == "stylesheet":
            self.stylesheets.append((response.url, response.status))
        elif response.status >= 400 and "/static/" in response.url:
            self.failed.append(f"{response.status} {response.url}")

    def _failed(self, request: Any) -> None:
        if not request.url.startswith(REDIRECT):  # the stand-in application is not under test
            self.failed.append(request.url)

    def _app(self, route: Route) -> None:
        self.callbacks.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body=APP_PAGE)

    def close(self) -> None:
        self.context.close()


def check_page(page: Page, title: str) -> None:
    """French, DSFR-styled, and the accessibility basics (one h1, every field labelled)."""
    page.wait_for_load_state("load")  # after a form post, the stylesheet may still be on its way
    assert page.evaluate("document.documentElement.lang") == "fr", title
    facts = page.evaluate(
        """() => {
          const fields = [...document.querySelectorAll('input, select, textarea')]
            .filter(e => e.type !== 'hidden');
          const unlabelled = fields.filter(e => !(e.labels && e.labels.length)
              && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
            .map(e => e.id || e.name);
          const sheet = [...document.styleSheets].find(s => (s.href || '').endsWith('/dsfr.min.css'));
          const button = document.querySelector('.fr-btn');
          return {
            h1: document.querySelectorAll('h1').length,
            unlabelled,
            fields: fields.length,
            dsfrRules: sheet ? sheet.cssRules.length : 0,
            button: button ? getComputedStyle(button).backgroundColor : null,
            main: document.querySelectorAll('main').length,
          };
        }"""
    )
    assert facts["h1"] == 1, (title, facts)
    assert facts["main"] == 1, (title, facts)
    assert facts["unlabelled"] == [], (title, facts)
    assert facts["fields"] >= 1, (title, facts)
    assert facts["dsfrRules"] > 1000, (title, facts)  # the stylesheet loaded and parsed
    assert facts["button"] == BLUE_FRANCE, (title, facts)  # and its rules apply


def authorize_url(stack: Stack, scope: str, verifier: str) -> str:
    query = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": scope,
        "state": "etat-1",
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
        "aud": stack.server.url,
    }
    return f"{stack.origin}/auth/authorize?{urlencode(query)}"


def exchange(stack: Stack, callback: str, verifier: str) -> dict[str, Any]:
    query = parse_qs(urlparse(callback).query)
    assert query["state"] == ["etat-1"] and query["iss"] == [stack.origin]
    response = httpx.post(
        f"{stack.origin}/auth/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": REDIRECT,
            "client_id": CLIENT_ID,
            "code_verifier": verifier,
        },
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def finish(visit: Visit, stack: Stack) -> str:
    visit.page.wait_for_url(f"{REDIRECT}**")
    assert visit.page.locator("p").inner_text() == "callback reached"
    assert len(visit.callbacks) == 1 and visit.callbacks[0].startswith(f"{REDIRECT}?")
    assert visit.failed == [], visit.failed
    dsfr = [(url, status) for url, status in visit.stylesheets if url.endswith("/dsfr.min.css")]
    assert dsfr and all(url.startswith(stack.origin) and status in (200, 304) for url, status in dsfr), dsfr
    return visit.callbacks[0]


def test_chromium_professional_login_with_totp(stack: Stack, browser: Browser) -> None:
    visit = Visit(browser)
    verifier = "p" * 64
    try:
        page = visit.page
        page.goto(authorize_url(stack, "openid fhirUser profile user/*.rs", verifier))
        assert urlparse(page.url).path == "/auth/login"
        check_page(page, "login")
        assert page.get_by_role("heading", name="Professionnel de santé").is_visible()
        page.fill("#idnat", PRO_ID)
        page.fill("#pro-password", PRO_PASSWORD)
        page.click("#pro-submit")
        page.wait_for_selector("#code")
        check_page(page, "second factor")
        page.fill("#code", pyotp.TOTP(stack.totp_secret).now())
        page.click("#code-submit")
        callback = finish(visit, stack)
    finally:
        visit.close()
    token = exchange(stack, callback, verifier)
    assert token["scope"] == "openid fhirUser profile user/*.rs" and "id_token" in token
    fhir = httpx.get(
        f"{stack.server.url}/Patient", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert fhir.status_code == 200 and fhir.json()["resourceType"] == "Bundle"


def test_chromium_citizen_login_with_outbox_code(stack: Stack, browser: Browser) -> None:
    visit = Visit(browser)
    verifier = "c" * 64
    try:
        page = visit.page
        page.goto(authorize_url(stack, "openid fhirUser launch/patient patient/*.rs", verifier))
        check_page(page, "login")
        page.fill("#email", CITIZEN)
        page.fill("#citizen-password", CITIZEN_PASSWORD)
        page.click("#citizen-submit")
        page.wait_for_selector("#code")
        check_page(page, "one-time code")
        assert "courriel" in page.locator("main").inner_text()
        page.fill("#code", stack.last_code())
        page.click("#code-submit")
        callback = finish(visit, stack)
    finally:
        visit.close()
    token = exchange(stack, callback, verifier)
    assert token["patient"] == stack.patient_id  # SMART launch context: her own record


def test_chromium_wrong_password_stays_on_the_french_page(stack: Stack, browser: Browser) -> None:
    visit = Visit(browser)
    try:
        page = visit.page
        page.goto(authorize_url(stack, "openid user/*.rs", "w" * 64))
        page.fill("#idnat", PRO_ID)
        page.fill("#pro-password", "pas le bon")
        page.click("#pro-submit")
        alert = page.get_by_role("alert")
        assert "incorrect" in alert.inner_text()
        check_page(page, "refused")
        assert visit.callbacks == []
    finally:
        visit.close()
