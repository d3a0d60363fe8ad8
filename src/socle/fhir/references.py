"""Literal references (R4 §2.3.0 references.html): how to find, classify and rewrite them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_RELATIVE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/([A-Za-z0-9\-.]{1,64}))?$")
_ABSOLUTE = re.compile(
    r"^(https?://.+?)/([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/([A-Za-z0-9\-.]{1,64}))?$"
)


@dataclass(frozen=True)
class ParsedReference:
    # relative (Type/id), absolute (http(s)://base/Type/id), urn (urn:uuid:/urn:oid:), contained (#id),
    # conditional (Type?query), or other (anything else, e.g. a logical URL we do not interpret)
    kind: str
    resource_type: str | None = None
    id: str | None = None
    version: str | None = None
    base: str | None = None
    query: str | None = None


def parse_reference(text: str) -> ParsedReference:
    if text.startswith("#"):
        return ParsedReference("contained", id=text[1:])
    if text.startswith(("urn:uuid:", "urn:oid:")):
        return ParsedReference("urn")
    match = _RELATIVE.match(text)
    if match:
        return ParsedReference("relative", match[1], match[2], match[3])
    if "?" in text and re.match(r"^[A-Z][A-Za-z]+\?", text):
        resource_type, query = text.split("?", 1)
        return ParsedReference("conditional", resource_type, query=query)
    match = _ABSOLUTE.match(text)
    if match:
        return ParsedReference("absolute", match[2], match[3], match[4], base=match[1])
    return ParsedReference("other")


def iter_references(node: Any) -> Iterator[dict[str, Any]]:
    """Every Reference-shaped object (a dict with a string `reference`) anywhere in a resource."""
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node
        for value in node.values():
            if type(value) is dict or type(value) is list:
                yield from iter_references(value)
    elif isinstance(node, list):
        for item in node:
            if type(item) is dict or type(item) is list:
                yield from iter_references(item)
