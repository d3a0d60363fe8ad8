"""The login and account pages in French (default) and English: `?lang=`, the `socle_lang`
cookie, `Accept-Language`; translated texts, errors and `<html lang>`; on both backends."""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import Engine
from starlette.datastructures import Headers
from starlette.testclient import TestClient

from socle.app import create_app
from socle.portals.language import choose, from_accept_language
from socle.store.repository import Store
from socle.trust.auth.accounts import add_delegation, create_account, outbox
from socle.trust.auth.clients import add_client
from tests.api.test_auth_backend import auth_settings

REDIRECT = "http://app.example/callback"
TOTP_SECRET = pyotp.random_base32()
PRO_ID = "810001234567"
PAGES = ["/auth/login?next=/auth/passkeys", "/activation"]
FRENCH_ON_LOGIN = [
    "Connexion",
    "Mot de passe",
    "Se connecter",
    "Professionnel de santé",
    "Particulier",
    "Adresse électronique",
    "Choisissez votre espace",
    "Activer mon compte",
    "Gérer mes clés",
]


@pytest.fixture
def web(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    settings = auth_settings(tmp_path)
    with engine.begin() as conn:
        add_client(conn, settings, "app", kind="public", redirect_uris=[REDIRECT])
        create_account(
            conn,
            settings,
            kind="professional",
            login=PRO_ID,
            password="correct horse",
            totp_secret=TOTP_SECRET,
            claims={"fhirUser": "Practitioner/pract-1", "practice": {"national_id": PRO_ID}},
        )
        mother = create_account(
            conn,
            settings,
            kind="citizen",
            login="claire@example.fr",
            password="citizen pass",
            claims={"fhirUser": "Patient/claire", "patient": "claire"},
        )
        add_delegation(conn, mother.account_id, "leo", "guardian", "patient/*.rs launch/patient openid")
    app = create_app(settings, store=Store(engine))
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        yield client


def lang_of(html: str) -> str:
    match = re.search(r'<html lang="([a-z]+)"', html)
    assert match, html[:200]
    return match.group(1)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def link_to(html: str, lang: str) -> str:
    match = re.search(rf'id="lang-{lang}"[^>]*href="([^"]+)"', html)
    assert match, html
    return html_lib.unescape(match.group(1))


def authorize_url(scope: str = "openid", **extra: str) -> str:
    challenge = create_s256_code_challenge("x" * 64)
    query = (
        f"response_type=code&client_id=app&redirect_uri={REDIRECT}&scope={scope}&state=st-1"
        f"&code_challenge={challenge}&code_challenge_method=S256"
    )
    return "/auth/authorize?" + query + "".join(f"&{k}={v}" for k, v in extra.items())


@pytest.mark.parametrize("path", PAGES)
def test_french_by_default(web: TestClient, path: str) -> None:
    response = web.get(path)
    assert response.status_code == 200 and lang_of(response.text) == "fr"
    assert "Adresse électronique" in response.text
    assert "socle_lang" not in response.headers.get("set-cookie", "")  # nothing chosen: no cookie


@pytest.mark.parametrize("path", PAGES)
def test_english_by_query_parameter_sets_the_cookie(web: TestClient, path: str) -> None:
    sep = "&" if "?" in path else "?"
    response = web.get(f"{path}{sep}lang=en")
    assert response.status_code == 200 and lang_of(response.text) == "en"
    assert "E-mail address" in response.text and "Adresse électronique" not in response.text
    assert "socle_lang=en" in response.headers["set-cookie"]
    # the choice sticks (cookie), on the other page too, until switched back
    other = PAGES[1] if path == PAGES[0] else PAGES[0]
    assert lang_of(web.get(other).text) == "en"
    back = web.get(f"{path}{sep}lang=fr")
    assert lang_of(back.text) == "fr" and "socle_lang=fr" in back.headers["set-cookie"]
    assert lang_of(web.get(other).text) == "fr"


@pytest.mark.parametrize("path", PAGES)
def test_accept_language(web: TestClient, path: str) -> None:
    english = web.get(path, headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert lang_of(english.text) == "en" and "E-mail address" in english.text
    assert lang_of(web.get(path, headers={"Accept-Language": "de-DE, fr;q=0.5, en;q=0.3"}).text) == "fr"
    assert lang_of(web.get(path, headers={"Accept-Language": "de, es"}).text) == "fr"
    # an explicit choice wins over the header
    assert lang_of(web.get(path, headers={"Accept-Language": "en"}, params={"lang": "fr"}).text) == "fr"


def test_language_negotiation_rules() -> None:
    assert from_accept_language("de, en;q=0.8, fr;q=0.5") == "en"
    assert from_accept_language("fr-FR,fr;q=0.9,en;q=0.8") == "fr"
    assert from_accept_language("en;q=0, fr;q=0.1") == "fr"
    assert from_accept_language("de, *") is None
    headers = Headers({"cookie": "socle_lang=en", "accept-language": "fr"})
    assert choose("", headers).lang == "en" and not choose("", headers).explicit
    assert choose("lang=fr", headers).lang == "fr" and choose("lang=fr", headers).explicit
    assert choose("lang=xx", Headers({})).lang == "fr"  # unknown values are ignored


def test_english_login_page_has_no_french_left(web: TestClient) -> None:
    assert web.get(authorize_url()).status_code == 303
    page = web.get("/auth/login?lang=en")
    assert page.status_code == 200 and lang_of(page.text) == "en"
    text = re.sub(r"<[^>]+>", " ", page.text)
    for french in FRENCH_ON_LOGIN:
        assert french not in text, french
    for english in ("Sign in", "Password", "Healthcare professional", "Individual", "Activate my"):
        assert english in text, english
    assert 'lang="fr"' in page.text  # the "Français" link itself is marked as French


def test_wrong_password_in_english_then_second_factor_and_switch(web: TestClient) -> None:
    web.get(authorize_url())
    csrf = csrf_of(web.get("/auth/login", headers={"Accept-Language": "en"}).text)
    wrong = web.post(
        "/auth/login",
        data={"csrf": csrf, "kind": "professional", "login": PRO_ID, "password": "guess", "lang": "en"},
    )
    assert wrong.status_code == 401 and lang_of(wrong.text) == "en"
    assert "Wrong identifier or password." in wrong.text and "incorrect" not in wrong.text
    second = web.post(
        "/auth/login",
        data={"csrf": csrf, "kind": "professional", "login": PRO_ID, "password": "correct horse"},
    )  # the form's lang field chose English, and the cookie remembers it
    assert second.status_code == 200 and "6-digit code" in second.text and "Second factor" in second.text
    # the language link of a page shown after a form leads to the same step, not back to the start
    french = web.get(link_to(second.text, "fr"))
    assert french.status_code == 200 and lang_of(french.text) == "fr" and "Code à 6 chiffres" in french.text
    assert csrf_of(french.text) == csrf  # same flow, same CSRF token
    bad = web.post("/auth/login/code", data={"csrf": csrf, "code": "000000", "lang": "en"})
    assert bad.status_code == 401 and "Wrong code." in bad.text
    done = web.post("/auth/login/code", data={"csrf": csrf, "code": pyotp.TOTP(TOTP_SECRET).now()})
    assert done.status_code == 303
    query = parse_qs(urlparse(done.headers["location"]).query)
    assert query["state"] == ["st-1"] and "code" in query


def test_language_links_keep_oauth_parameters(web: TestClient) -> None:
    error = web.get(authorize_url(client_id_extra="1").replace("client_id=app", "client_id=nope"))
    assert error.status_code == 400 and lang_of(error.text) == "fr"
    target = urlparse(link_to(error.text, "en"))
    params = parse_qs(target.query)
    assert target.path == "/auth/authorize"
    assert params["client_id"] == ["nope"] and params["state"] == ["st-1"] and params["lang"] == ["en"]
    assert params["code_challenge_method"] == ["S256"] and params["redirect_uri"] == [REDIRECT]
    english = web.get(link_to(error.text, "en"))
    assert english.status_code == 400 and "Unknown application" in english.text
    # a valid request with lang=en: the login page it leads to is in English
    assert web.get(authorize_url(lang="fr")).status_code == 303
    assert lang_of(web.get("/auth/login").text) == "fr"
    assert web.get(authorize_url(lang="en")).status_code == 303
    assert lang_of(web.get("/auth/login").text) == "en"


def test_citizen_choice_in_english(web: TestClient, engine: Engine) -> None:
    web.get(authorize_url(scope="openid%20launch/patient%20patient/*.rs", lang="en"))
    csrf = csrf_of(web.get("/auth/login").text)
    sent = web.post(
        "/auth/login",
        data={"csrf": csrf, "kind": "citizen", "login": "claire@example.fr", "password": "citizen pass"},
    )
    assert "A one-time code has just been sent to you by e-mail." in sent.text
    with engine.connect() as conn:
        message = outbox(conn, "claire@example.fr")[-1]
    assert message["subject"] == "Your sign-in code" and "It expires in 15 minutes" in message["body"]
    code = re.search(r"\b(\d{6})\b", message["body"])
    assert code
    chooser = web.post("/auth/login/code", data={"csrf": csrf, "code": code.group(1)})
    assert chooser.status_code == 200 and "On whose behalf are you acting?" in chooser.text
    assert "Myself" in chooser.text and "Patient leo (legal guardian)" in chooser.text
    french = web.get(link_to(chooser.text, "fr"))
    assert "Pour qui agissez-vous" in french.text and "Patient leo (représentant légal)" in french.text


def test_activation_errors_in_english(web: TestClient) -> None:
    form = web.get("/activation?lang=en")
    response = web.post(
        "/activation",
        data={"csrf": csrf_of(form.text), "email": "", "code": "", "password": "short", "confirm": "x"},
    )
    assert response.status_code == 400 and lang_of(response.text) == "en"
    assert "The form contains 3 errors" in response.text
    assert "Enter your e-mail address." in response.text and "at least 12 characters" in response.text
    assert "Le formulaire" not in response.text
    french = web.post(
        "/activation",
        data={"csrf": csrf_of(form.text), "email": "a@b.fr", "code": "1", "password": "short", "lang": "fr"},
    )
    assert "Le formulaire contient 1 erreur" in french.text and lang_of(french.text) == "fr"


def test_passkeys_page_in_english(web: TestClient) -> None:
    csrf = csrf_of(web.get("/auth/login?next=/auth/passkeys&lang=en").text)
    web.post(
        "/auth/login",
        data={"csrf": csrf, "kind": "professional", "login": PRO_ID, "password": "correct horse"},
    )
    done = web.post("/auth/login/code", data={"csrf": csrf, "code": pyotp.TOTP(TOTP_SECRET).now()})
    assert done.status_code == 303 and done.headers["location"] == "/auth/passkeys"
    page = web.get("/auth/passkeys")
    assert page.status_code == 200 and lang_of(page.text) == "en"
    assert (
        "My passkeys" in page.text
        and "Add a passkey" in page.text
        and "No passkey is registered." in page.text
    )
    assert 'data-unsupported="This browser does not support passkeys."' in page.text
    assert "Mes clés d&#39;accès" in web.get("/auth/passkeys?lang=fr").text


def test_every_template_text_has_an_english_translation() -> None:
    from socle.portals import messages
    from socle.portals._web import HERE

    texts = [
        text
        for template in (HERE / "templates").glob("*.html")
        for _quote, text in re.findall(r"""_\((["'])(.*?)\1""", template.read_text(encoding="utf-8"))
    ]
    assert len(texts) > 50
    missing = [text for text in texts if text not in messages.ENGLISH]
    assert missing == []
    assert messages.translate("Texte inconnu", "en") == "Texte inconnu"  # unknown: left as is
    assert messages.translate("Mot de passe", "fr") == "Mot de passe"
