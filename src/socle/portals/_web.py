"""Pieces shared by the login and account pages: templates, security headers, cookies, the session."""

from __future__ import annotations

import hmac
import time
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Connection, select
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from socle.portals import language
from socle.portals.language import tr
from socle.trust.auth.passwords import new_token, token_hash
from socle.trust.auth.schema import auth_session

HERE = Path(__file__).resolve().parent
_templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
_templates.globals["_"] = language.tr_markup
FLOW_COOKIE = "socle_flow"
SESSION_COOKIE = "socle_session"
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self' *",
    "Referrer-Policy": "no-referrer",
}


# The GET address showing again the step a page belongs to, for the language links of a page
# shown in answer to a form (its state is server-side: the flow cookie).
_RESUME = {
    "second_factor.html": "/auth/login/step",
    "choose.html": "/auth/login/step",
    "patient.html": "/auth/login/step",
    "login.html": "/auth/login",
    "passkeys.html": "/auth/passkeys",
    "activation.html": "/activation",
    "activation_totp.html": "/activation/totp",
}
_TRANSLATED = ("title", "message", "error", "hint", "notice")


def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Renders a page in the request's language: texts passed in French are translated here."""
    for key in _TRANSLATED:
        if isinstance(context.get(key), str):
            context[key] = tr(context[key])
    if context.get("errors"):
        context["errors"] = [{**e, "message": tr(e["message"])} for e in context["errors"]]
    path = language.current().path
    resume = _RESUME.get(name) or ("/activation" if path.startswith("/activation") else "/auth/login")
    context.setdefault("lang", language.current().lang)
    context.setdefault("languages", language.switch_links(resume))
    html = _templates.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def set_cookie(
    request: Request, response: Response, name: str, value: str, max_age: int, path: str = "/auth"
) -> None:
    """HttpOnly, SameSite=Lax, Secure whenever the page is served over HTTPS."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def current_session(conn: Connection, request: Request) -> Any:
    """The login session of the browser (an `auth_session` row), or None."""
    value = request.cookies.get(SESSION_COOKIE)
    if not value:
        return None
    row = conn.execute(select(auth_session).where(auth_session.c.session_hash == token_hash(value))).first()
    return row if row is not None and row.expires_at > time.time() else None


def session_csrf(request: Request) -> str:
    """A CSRF token tied to the session cookie (HMAC-free: the hash of the session id, which an
    attacker on another site can neither read nor compute)."""
    return token_hash("csrf:" + request.cookies.get(SESSION_COOKIE, ""))


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(expected) and hmac.compare_digest(expected, given or "")


def fresh_token() -> str:
    return new_token()


async def form_of(request: Request) -> dict[str, str]:
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    language.choose_from_form(form.get("lang"))
    return form
