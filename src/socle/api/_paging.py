"""Bundle entries and page links shared by history and search results."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson

from socle.api.request import Context, FhirRequest
from socle.fhir.errors import Invalid
from socle.store.versioned import StoredVersion


def page_size(req: FhirRequest, ctx: Context) -> int:
    text = req.param("_count")
    if text is None:
        return ctx.settings.default_page_size
    if not text.isdigit():
        raise Invalid(f"_count must be a non-negative integer, got {text!r}", expression="_count")
    return min(int(text), ctx.settings.max_page_size)


def resource_entry(ctx: Context, version: StoredVersion) -> dict[str, Any]:
    ctx.show(version)  # for the audit
    entry: dict[str, Any] = {"fullUrl": ctx.absolute(version.reference)}
    if version.raw is not None:
        # The stored JSON goes into the Bundle as-is: no parse/serialise per entry.
        entry["resource"] = orjson.Fragment(version.raw)
    return entry


def link(ctx: Context, path: str, params: list[tuple[str, str]]) -> str:
    query = urlencode(params)
    return f"{ctx.base_url}/{path}" + (f"?{query}" if query else "")


def cursor_param(req: FhirRequest, parts: int) -> tuple[int, ...] | None:
    """The opaque keyset cursor of a page link: integers joined by dots."""
    text = req.param("_cursor")
    if text is None:
        return None
    pieces = text.split(".")
    if len(pieces) != parts or not all(p.lstrip("-").isdigit() and len(p) <= 18 for p in pieces):
        raise Invalid(f"_cursor {text!r} is not a cursor this server issued", expression="_cursor")
    return tuple(int(p) for p in pieces)
