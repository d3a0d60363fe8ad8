"""A live Socle with the people and the application the real-client tests log in with.

Each test gets `socle serve` on a fresh database (SQLite and PostgreSQL), a patient created through
the protected FHIR API with the operator's token, a public SMART/OIDC client, a professional (idNat_PS,
password, TOTP) and a citizen bound to that patient (password, one-time code through the outbox).
Accounts and clients are written with the authorization server's own functions, as the demo does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx
import pyotp
import pytest
from sqlalchemy import Engine

from socle.config import Settings
from socle.store.engine import make_engine
from socle.trust.auth.accounts import create_account, outbox
from socle.trust.auth.clients import add_client
from tests.server import LiveServer, running_server

CLIENT_ID = "e2e-app"
REDIRECT = "http://app.example/callback"
PRO_ID = "810001234567"
PRO_PASSWORD = "cheval correct agrafe"
CITIZEN = "claire.dupont@example.fr"
CITIZEN_PASSWORD = "mot de passe citoyen"


@dataclass
class Stack:
    server: LiveServer
    engine: Engine
    patient_id: str
    totp_secret: str

    @property
    def origin(self) -> str:
        return self.server.origin

    def last_code(self, recipient: str = CITIZEN) -> str:
        """The one-time code of the last message sent to `recipient` (the demo's outbox)."""
        with self.engine.connect() as conn:
            messages = outbox(conn, recipient)
        assert messages, f"nothing was sent to {recipient}"
        found = re.search(r"\b(\d{6})\b", messages[-1]["body"])
        assert found, messages[-1]["body"]
        return found.group(1)


@pytest.fixture
def stack(database_url: str) -> Iterator[Stack]:
    # Explicit, although it is the default: these tests are about the protected API.
    with running_server(database_url, env={"SOCLE_AUTH_REQUIRED": "true"}) as server:
        created = httpx.post(
            f"{server.url}/Patient",
            json={
                "resourceType": "Patient",
                "name": [{"family": "Dupont", "given": ["Claire"]}],
                "gender": "female",
                "birthDate": "1984-03-02",
            },
            headers=server.headers,
        )
        assert created.status_code == 201, created.text
        patient_id = created.json()["id"]
        engine = make_engine(database_url)
        secret = pyotp.random_base32()
        # Hash costs are stored in each hash: low ones here keep the tests quick, the server verifies them.
        settings = Settings(argon2_time_cost=1, argon2_memory_kib=1024)
        try:
            with engine.begin() as conn:
                add_client(conn, settings, CLIENT_ID, kind="public", redirect_uris=[REDIRECT])
                create_account(
                    conn,
                    settings,
                    kind="professional",
                    login=PRO_ID,
                    password=PRO_PASSWORD,
                    totp_secret=secret,
                    claims={
                        "fhirUser": "Practitioner/pract-e2e",
                        "practice": {"national_id": PRO_ID, "profession": "10", "specialty": "SM54"},
                        "identity": {
                            "SubjectNameID": PRO_ID,
                            "given_name": "Anne",
                            "family_name": "Martin",
                            "SubjectRole": ["10^1.2.250.1.213.1.1.5.5"],
                        },
                    },
                )
                create_account(
                    conn,
                    settings,
                    kind="citizen",
                    login=CITIZEN,
                    password=CITIZEN_PASSWORD,
                    claims={
                        "fhirUser": f"Patient/{patient_id}",
                        "patient": patient_id,
                        "identity": {"given_name": "Claire", "family_name": "Dupont"},
                    },
                )
            yield Stack(server, engine, patient_id, secret)
        finally:
            engine.dispose()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:2000]
    return found.group(1)


def _follow(browser: httpx.Client, response: httpx.Response, origin: str) -> httpx.Response:
    """Follow redirects inside Socle only; stop at the first one that leaves it (the app's callback)."""
    for _ in range(10):
        location = response.headers.get("location")
        if response.status_code not in (301, 302, 303, 307) or location is None:
            return response
        target = urljoin(str(response.url), location)
        if not target.startswith(origin):
            return response
        response = browser.get(target)
    raise AssertionError("redirect loop")


def login_over_http(stack: Stack, authorize_url: str, kind: str) -> str:
    """Be the person in the browser: log in on Socle's pages; return the callback URL it sends us to."""
    with httpx.Client(timeout=30.0, follow_redirects=False) as browser:
        page = _follow(browser, browser.get(authorize_url), stack.origin)
        assert page.status_code == 200, page.text[:2000]
        csrf = csrf_of(page.text)
        if kind == "professional":
            login, password = PRO_ID, PRO_PASSWORD
        else:
            login, password = CITIZEN, CITIZEN_PASSWORD
        second = browser.post(
            f"{stack.origin}/auth/login",
            data={"csrf": csrf, "kind": kind, "login": login, "password": password},
        )
        second = _follow(browser, second, stack.origin)
        assert second.status_code == 200, second.text[:2000]
        code = pyotp.TOTP(stack.totp_secret).now() if kind == "professional" else stack.last_code()
        done = browser.post(
            f"{stack.origin}/auth/login/code", data={"csrf": csrf_of(second.text), "code": code}
        )
        done = _follow(browser, done, stack.origin)
        assert done.status_code == 303, done.text[:2000]
        callback = urljoin(str(done.url), done.headers["location"])
    assert callback.startswith(REDIRECT), callback
    return callback
