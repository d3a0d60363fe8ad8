"""Shared pieces of the authorization-server endpoints: issuer, JSON responses, forms, client auth."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote

import orjson
from starlette.requests import Request
from starlette.responses import Response

from socle.config import Settings
from socle.trust.auth.errors import OAuthError


def issuer_of(request: Request, settings: Settings) -> str:
    if settings.issuer:
        return settings.issuer.rstrip("/")
    if settings.base_url:  # the FHIR base: the issuer is its origin
        return settings.base_url.rstrip("/").removesuffix("/fhir")
    return f"{request.url.scheme}://{request.url.netloc}"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # Token responses must not be cached (RFC 6749 §5.1).
    all_headers = {"Cache-Control": "no-store", "Pragma": "no-cache", **(headers or {})}
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=all_headers
    )


def oauth_error(error: OAuthError) -> Response:
    headers = {"WWW-Authenticate": 'Basic realm="socle"'} if error.status == 401 else None
    return json_response(error.body(), error.status, headers)


async def form_of(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "Send the parameters as application/x-www-form-urlencoded")
    form = await request.form()
    result: dict[str, str] = {}
    for key, value in form.multi_items():
        if not isinstance(value, str):
            raise OAuthError("invalid_request", f"{key} must be a text field")
        if key in result:  # RFC 6749 §3.2: parameters must not repeat
            raise OAuthError("invalid_request", f"{key} is repeated")
        result[key] = value
    return result


def basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise OAuthError("invalid_client", "Malformed Basic credentials", status=401) from exc
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError("invalid_client", "Malformed Basic credentials", status=401)
    return unquote(client_id), unquote(secret)  # RFC 6749 §2.3.1: form-urlencoded first
