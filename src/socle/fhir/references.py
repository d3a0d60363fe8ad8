"""Literal references (R4 §2.3.0 references.html): how to find, classify and rewrite them."""

from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=16384)
def parse_reference(text: str) -> ParsedReference:
    """Classify a reference. Cached: a write parses each reference several times (rewriting,
    integrity check, index values, compartment) and a Bundle repeats its Patient and Encounter ones."""
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
    """Every Reference-shaped object (a dict with a string `reference`) anywhere in a resource,
    depth first in document order."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict | list):
        _collect_references(node, found)
    return iter(found)


def _collect_references(node: dict[str, Any] | list[Any], found: list[dict[str, Any]]) -> None:
    # A plain recursive walk: a recursive generator costs a frame switch per level and per item.
    if isinstance(node, list):
        for item in node:
            if type(item) is dict or type(item) is list:
                _collect_references(item, found)
        return
    if type(node.get("reference")) is str:
        found.append(node)
    for value in node.values():
        if type(value) is dict or type(value) is list:
            _collect_references(value, found)
