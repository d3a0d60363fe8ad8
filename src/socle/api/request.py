"""Transport-neutral FHIR requests and responses.

An HTTP request and a Bundle entry both become a `FhirRequest`, so that batch and transaction
entries go through exactly the same handlers (and later the same policy) as direct calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import Connection

from socle.config import Settings
from socle.fhir.errors import Invalid
from socle.store.access import AccessFilter
from socle.store.repository import Store
from socle.store.versioned import StoredVersion
from socle.trust.principal import SYSTEM_PRINCIPAL, Principal


@dataclass
class FhirRequest:
    method: str
    # Path below the FHIR base, without leading slash: "", "metadata", "Patient/1/_history/2".
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    # Header names in lower case.
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None

    @property
    def segments(self) -> list[str]:
        return [s for s in self.path.split("/") if s]

    def param(self, name: str) -> str | None:
        for key, value in self.query:
            if key == name:
                return value
        return None

    @property
    def query_string(self) -> str:
        return urlencode(self.query)

    @property
    def prefer(self) -> dict[str, str]:
        """The Prefer header (RFC 7240) as a dict: return=minimal, handling=strict, ..."""
        result: dict[str, str] = {}
        for part in self.headers.get("prefer", "").split(","):
            for token in part.split(";"):
                if "=" in token:
                    key, value = token.split("=", 1)
                    result[key.strip().lower()] = value.strip().strip('"')
        return result

    @classmethod
    def from_url(
        cls, method: str, url: str, headers: Mapping[str, str] | None = None, body: Any = None
    ) -> FhirRequest:
        """Build from a Bundle.entry.request.url, which is relative to the base (R4 §3.1.0.11.2)."""
        path, _, query = url.partition("?")
        return cls(
            method.upper(), path.strip("/"), parse_qsl(query, keep_blank_values=True), headers or {}, body
        )


@dataclass
class FhirResponse:
    status: int
    body: Any = None  # a dict (JSON), raw JSON bytes, or None
    headers: dict[str, str] = field(default_factory=dict)
    version: StoredVersion | None = None  # what was read or written, for Bundle entry responses


@dataclass
class Context:
    """What a handler works with: one database connection (one transaction) and one access filter."""

    store: Store
    conn: Connection
    access: AccessFilter
    settings: Settings
    base_url: str
    # Who asks (from the bearer token; SYSTEM when protection is off): the policy and audit start here.
    principal: Principal = SYSTEM_PRINCIPAL
    # (type, id) → patient compartment of each stored resource put in the response: the audit
    # records them without looking them up again (api/audit.py).
    shown: dict[tuple[str, str], str | None] = field(default_factory=dict)

    def show(self, version: StoredVersion) -> None:
        self.shown[(version.resource_type, version.id)] = version.compartment

    def absolute(self, relative: str) -> str:
        return f"{self.base_url}/{relative}"


def parse_version_etag(value: str | None, header: str) -> int | None:
    """`W/"3"` (or `"3"`, or `3`) → 3, as sent in If-Match and Bundle.entry.request.ifMatch."""
    if value is None or value.strip() == "":
        return None
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit():
        raise Invalid(f'{header} must be a version ETag such as W/"3", got {value!r}')
    return int(text)
