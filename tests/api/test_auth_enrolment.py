"""Accounts from the referentials and citizen activation, on both backends: professionals only for an
idNat_PS in the directory, citizens only for a QUALIFIED identity; the activation code goes by SMTP
to a local aiosmtpd server; `/activation` sets the password and enrols TOTP; the citizen then logs in
with TOTP as second factor."""

from __future__ import annotations

import email
import re
import socket
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pyotp
import pytest
from aiosmtpd.controller import Controller
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import Engine
from starlette.testclient import TestClient
from typer.testing import CliRunner

from socle.app import create_app
from socle.cli import app as cli
from socle.config import Settings, get_settings
from socle.services.demo_people import PROFESSIONALS, citizens, practitioner_resources, qualified_patient
from socle.services.enrolment import EnrolmentRefused, add_citizen, add_professional
from socle.store.repository import Store
from socle.trust.auth.accounts import find_account
from socle.trust.auth.clients import add_client
from tests.api.test_auth_backend import auth_settings
from tests.api.test_auth_code_flow import REDIRECT, csrf_of
from tests.api.test_auth_launch import cli_url

GP = PROFESSIONALS[0]


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
def settings(tmp_path: Path, smtp: tuple[Inbox, int]) -> Settings:
    return auth_settings(tmp_path).model_copy(update={"delivery": "smtp", "smtp_port": smtp[1]})


@pytest.fixture
def seeded(engine: Engine) -> Store:
    store = Store(engine)
    with engine.begin() as conn:
        for body in [*practitioner_resources(GP), *citizens()]:
            store.update(conn, body)
        provisional = qualified_patient("prov-1", "ROUX", "Jean", "male", "1970-01-01")
        for ext in provisional["extension"]:  # downgrade to PROV: no account may be bound to it
            for sub in ext.get("extension", []):
                if sub["url"] == "identityStatus":
                    sub["valueCoding"]["code"] = "PROV"
        store.update(conn, provisional)
    return store


def test_professional_needs_directory_record(engine: Engine, seeded: Store, settings: Settings) -> None:
    with engine.begin() as conn:
        with pytest.raises(EnrolmentRefused, match="not in the directory"):
            add_professional(seeded, conn, settings, "899999999999", password="x" * 12)
        account = add_professional(seeded, conn, settings, GP.idnat, password="x" * 12, totp_secret=None)
    assert account.claims["fhirUser"] == f"Practitioner/ps-{GP.idnat}"
    assert (
        account.claims["practice"]["profession"] == "10" and account.claims["practice"]["specialty"] == "SM54"
    )
    assert account.claims["identity"]["SubjectRole"] == ["10^1.2.250.1.213.1.1.5.5"]


def test_accounts_cli(engine: Engine, seeded: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCLE_AUTH_MASTER_KEY_FILE", str(tmp_path / "master.key"))
    monkeypatch.setenv("SOCLE_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("SOCLE_ARGON2_MEMORY_KIB", "1024")
    get_settings.cache_clear()
    runner = CliRunner()
    url = cli_url(engine)
    add = ["accounts", "add-professional", "--password", "long enough pass", "--database", url]
    unknown = runner.invoke(cli, [*add[:2], "899999999999", *add[2:]])
    assert unknown.exit_code == 1 and "not in the directory" in unknown.output
    known = runner.invoke(cli, [*add[:2], GP.idnat, *add[2:]])
    assert known.exit_code == 0, known.output
    secret = known.output.strip().splitlines()[-1]
    assert len(secret) == 32 and pyotp.TOTP(secret).now()
    prov = runner.invoke(
        cli, ["accounts", "add-citizen", "--patient", "prov-1", "--email", "j@example.fr", "--database", url]
    )
    assert prov.exit_code == 1 and "QUAL" in prov.output
    ok = runner.invoke(
        cli,
        ["accounts", "add-citizen", "--patient", "demo-claire", "--email", "c@example.fr", "--database", url],
    )
    assert ok.exit_code == 0, ok.output
    outbox = runner.invoke(cli, ["accounts", "outbox", "--to", "c@example.fr", "--database", url])
    assert re.search(r"\d{4}-\d{4}-\d{4}", outbox.output)
    get_settings.cache_clear()


def test_activation_by_smtp_then_totp_login(
    engine: Engine, seeded: Store, settings: Settings, smtp: tuple[Inbox, int]
) -> None:
    inbox, _port = smtp
    with engine.begin() as conn:
        with pytest.raises(EnrolmentRefused, match="QUAL"):
            add_citizen(seeded, conn, settings, patient_id="prov-1", email="jean@example.fr")
        add_citizen(seeded, conn, settings, patient_id="demo-claire", email="claire@example.fr")
        add_client(conn, settings, "app", kind="public", redirect_uris=[REDIRECT])
    assert len(inbox.messages) == 1 and inbox.messages[0]["To"] == "claire@example.fr"
    body = inbox.messages[0].get_payload(decode=True).decode()  # type: ignore[union-attr]
    found = re.search(r"\d{4}-\d{4}-\d{4}", body)
    assert found
    code = found.group(0)
    with engine.connect() as conn:
        account = find_account(conn, "claire@example.fr")
    assert account is not None and not account.active and account.claims["patient"] == "demo-claire"

    app = create_app(settings, store=seeded)
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as browser:
        form = browser.get("/activation")
        assert form.status_code == 200 and 'for="code"' in form.text
        csrf = csrf_of(form.text)
        data = {
            "csrf": csrf,
            "email": "claire@example.fr",
            "code": code,
            "password": "court",
            "confirm": "court",
        }
        short = browser.post("/activation", data=data)
        assert short.status_code == 400 and "error-summary" in short.text and 'href="#password"' in short.text
        strong = "une phrase de passe solide"
        wrong = browser.post(
            "/activation", data={**data, "code": "0000-0000-0000", "password": strong, "confirm": strong}
        )
        assert wrong.status_code == 400 and "incorrect" in wrong.text
        forged = browser.post(
            "/activation", data={**data, "csrf": "forged", "password": strong, "confirm": strong}
        )
        assert forged.status_code == 403
        enrol = browser.post("/activation", data={**data, "password": strong, "confirm": strong})
        assert enrol.status_code == 200, enrol.text
        secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', enrol.text)
        assert secret
        # The code is single use: a second activation with it fails.
        assert (
            browser.post("/activation", data={**data, "password": strong, "confirm": strong}).status_code
            == 400
        )
        enrol_csrf = csrf_of(enrol.text)
        bad = browser.post("/activation/totp", data={"csrf": enrol_csrf, "code": "000000"})
        assert bad.status_code == 400
        done = browser.post(
            "/activation/totp", data={"csrf": enrol_csrf, "code": pyotp.TOTP(secret.group(1)).now()}
        )
        assert done.status_code == 200 and "Compte activé" in done.text

        # Login: password, then TOTP (no e-mail code any more), then the delegation-free finish.
        verifier = "a" * 64
        browser.get(
            f"/auth/authorize?response_type=code&client_id=app&redirect_uri={REDIRECT}"
            f"&scope=openid%20launch/patient%20patient/*.rs"
            f"&code_challenge={create_s256_code_challenge(verifier)}&code_challenge_method=S256"
        )
        login_csrf = csrf_of(browser.get("/auth/login").text)
        second = browser.post(
            "/auth/login",
            data={"csrf": login_csrf, "kind": "citizen", "login": "claire@example.fr", "password": strong},
        )
        assert second.status_code == 200 and "TOTP" in second.text
        assert len(inbox.messages) == 1  # no e-mail code was sent
        final = browser.post(
            "/auth/login/code", data={"csrf": login_csrf, "code": pyotp.TOTP(secret.group(1)).now()}
        )
        assert final.status_code == 303 and final.headers["location"].startswith(REDIRECT)
