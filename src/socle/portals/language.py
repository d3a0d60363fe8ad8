"""The language of the login and account pages: French by default, English available.

Chosen, in order, by an explicit `lang` query or form parameter, the `socle_lang` cookie (set
whenever the language is chosen explicitly), the `Accept-Language` header (only `fr` and `en`),
else French. `with_language` wraps each page route: it records the choice for the request (a
context variable read by `page()` and `tr()`), and sets the cookie on the response when the choice
was explicit.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from markupsafe import Markup
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from socle.portals.messages import DEFAULT, LANGUAGES, translate

COOKIE = "socle_lang"
COOKIE_MAX_AGE = 365 * 24 * 3600


@dataclass
class Choice:
    lang: str = DEFAULT
    explicit: bool = False
    path: str = "/"
    query: str = ""
    method: str = "GET"


_current: ContextVar[Choice | None] = ContextVar("socle_portal_language", default=None)


def current() -> Choice:
    return _current.get() or Choice()


def tr(text: str, **values: object) -> str:
    """`text` (French) in the request's language, with `{name}` placeholders filled."""
    out = translate(text, current().lang)
    return out.format(**values) if values else out


def tr_markup(text: str, **values: object) -> Markup:
    """`tr` for templates: the catalogue's text is trusted markup (no escaping of its apostrophes),
    the values filled in are escaped."""
    out = Markup(translate(text, current().lang))  # noqa: S704 - the catalogue is ours
    return out.format(**values) if values else out


def from_accept_language(header: str) -> str | None:
    """The preferred of `fr`/`en` in an Accept-Language header (RFC 9110 §12.5.4), or None."""
    best: tuple[float, int, str] | None = None
    for position, item in enumerate(header.split(",")):
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if primary in LANGUAGES and quality > 0:
            key = (-quality, position, primary)
            if best is None or key < best:
                best = key
    return best[2] if best else None


def choose(query: str, headers: Headers) -> Choice:
    params = dict(parse_qsl(query))
    explicit = params.get("lang", "").lower()
    if explicit in LANGUAGES:
        return Choice(explicit, True)
    cookie = cookie_parser(headers.get("cookie", "")).get(COOKIE, "")
    if cookie in LANGUAGES:
        return Choice(cookie)
    return Choice(from_accept_language(headers.get("accept-language", "")) or DEFAULT)


def choose_from_form(value: str | None) -> None:
    """An explicit `lang` form field overrides the choice for this request (and sets the cookie)."""
    choice = _current.get()
    if choice is not None and value and value.lower() in LANGUAGES:
        choice.lang, choice.explicit = value.lower(), True


def switch_links(resume: str | None = None) -> list[dict[str, str]]:
    """Links to the current page in each language, keeping its query parameters (OAuth
    parameters included). A page shown in answer to a form (POST) links to `resume`, the GET
    address that shows the same step again, since its form state lives server-side."""
    choice = current()
    path = choice.path if choice.method == "GET" else (resume or choice.path)
    query = [(k, v) for k, v in parse_qsl(choice.query, keep_blank_values=True) if k != "lang"]
    if choice.method != "GET":
        query = [] if resume else query
    names = {"fr": "Français", "en": "English"}
    return [
        {
            "lang": lang,
            "label": lang.upper(),
            "name": names[lang],
            "href": f"{path}?{urlencode([*query, ('lang', lang)])}",
        }
        for lang in LANGUAGES
    ]


class with_language:  # noqa: N801 - used like a decorator
    """ASGI wrapper of a page route: records the language choice, sets the cookie when explicit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        choice = choose(scope.get("query_string", b"").decode("latin-1"), Headers(scope=scope))
        choice.path = scope.get("path", "/")
        choice.query = scope.get("query_string", b"").decode("latin-1")
        choice.method = scope.get("method", "GET")
        token = _current.set(choice)

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and choice.explicit:
                secure = "; Secure" if scope.get("scheme") == "https" else ""
                cookie = f"{COOKIE}={choice.lang}; Max-Age={COOKIE_MAX_AGE}; Path=/; SameSite=Lax; HttpOnly"
                MutableHeaders(scope=message).append("set-cookie", cookie + secure)
            await send(message)

        try:
            await self.app(scope, receive, send_with_cookie)
        finally:
            _current.reset(token)
