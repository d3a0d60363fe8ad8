"""The people-facing pages: French, DSFR served locally, every input labelled, security headers and
cookie flags; on both backends."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from socle.app import create_app
from socle.store.repository import Store
from tests.api.test_auth_backend import auth_settings


@pytest.fixture
def web(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(auth_settings(tmp_path), store=Store(engine))
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        yield client


def inputs_are_labelled(html: str) -> None:
    labels = set(re.findall(r'<label[^>]*for="([^"]+)"', html))
    for tag in re.findall(r"<input[^>]*>", html):
        if 'type="hidden"' in tag:
            continue
        ident = re.search(r'id="([^"]+)"', tag)
        assert ident and ident.group(1) in labels, tag


@pytest.mark.parametrize("path", ["/auth/login?next=/auth/passkeys", "/activation"])
def test_pages_french_labelled_and_hardened(web: TestClient, path: str) -> None:
    response = web.get(path)
    assert response.status_code == 200
    html = response.text
    assert '<html lang="fr"' in html and "/static/dsfr/dsfr.min.css" in html and "cdn" not in html.lower()
    assert "<script>" not in html  # no inline script: the CSP forbids them
    inputs_are_labelled(html)
    assert re.search(r'name="csrf" value="[^"]{20,}"', html)
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


def test_static_assets_are_local(web: TestClient) -> None:
    assert web.get("/static/dsfr/dsfr.min.css").status_code in (200, 404)  # built by `make install`
    script = web.get("/static/passkeys.js")
    assert script.status_code == 200 and "navigator.credentials" in script.text


def test_secure_cookie_on_https(engine: Engine, tmp_path: Path) -> None:
    app = create_app(auth_settings(tmp_path), store=Store(engine))
    with TestClient(app, base_url="https://socle.example", follow_redirects=False) as client:
        cookie = client.get("/activation").headers["set-cookie"].lower()
    assert "secure" in cookie
