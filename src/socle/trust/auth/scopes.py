"""SMART on FHIR scopes, v1 and v2 (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html).

A resource scope is `context/Type.permissions[?query]`: context `patient`, `user` or `system`; Type a
resource type or `*`; permissions v2 letters in the order c r u d s, or v1 `read` (= rs), `write`
(= cud), `*` (= cruds). A v2 query (`?category=…`) restricts the scope to matching resources; it is
kept on the grant for the policy, which must apply it as an extra filter (it never widens).
Other scopes (`openid`, `fhirUser`, `profile`, `offline_access`, `online_access`, `launch`,
`launch/patient`, `launch/encounter`) are kept as plain names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RESOURCE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.(\*|read|write|c?r?u?d?s?)(\?.*)?$")
_V1 = {"*": "cruds", "read": "rs", "write": "cud"}
INTERACTIONS = "cruds"


@dataclass(frozen=True)
class ResourceGrant:
    context: str  # patient | user | system
    resource_type: str  # a type or "*"
    permissions: frozenset[str]  # letters of "cruds"
    query: str | None = None

    def covers(self, resource_type: str, interaction: str) -> bool:
        return interaction in self.permissions and self.resource_type in ("*", resource_type)

    def __str__(self) -> str:
        letters = "".join(c for c in INTERACTIONS if c in self.permissions)
        return f"{self.context}/{self.resource_type}.{letters}" + (f"?{self.query}" if self.query else "")


@dataclass(frozen=True)
class ScopeSet:
    grants: tuple[ResourceGrant, ...]
    names: frozenset[str]  # non-resource scopes
    raw: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> ScopeSet:
        grants: list[ResourceGrant] = []
        names: set[str] = set()
        raw: list[str] = []
        for token in text.split():
            if token in raw:
                continue
            raw.append(token)
            grant = parse_grant(token)
            if grant is None:
                names.add(token)
            else:
                grants.append(grant)
        return cls(tuple(grants), frozenset(names), tuple(raw))

    def __str__(self) -> str:
        return " ".join(self.raw)

    def permits(self, resource_type: str, interaction: str, contexts: tuple[str, ...] = ()) -> bool:
        return any(
            g.covers(resource_type, interaction) and (not contexts or g.context in contexts)
            for g in self.grants
        )

    def has(self, name: str) -> bool:
        return name in self.names

    def narrow_to(self, allowed: ScopeSet) -> ScopeSet:
        """The requested scopes that `allowed` covers (a client's registered scopes, a delegation):
        resource scopes are intersected letter by letter, so a request can never get more."""
        kept: list[str] = []
        for token in self.raw:
            grant = parse_grant(token)
            if grant is None:
                if token in allowed.names or (
                    token.startswith("launch/") and "launch/patient" in allowed.names
                ):
                    kept.append(token)
                continue
            letters: set[str] = set()
            for other in allowed.grants:
                if other.context == grant.context and other.resource_type in ("*", grant.resource_type):
                    if other.query is None or other.query == grant.query:
                        letters |= grant.permissions & other.permissions
            if letters:
                kept.append(
                    str(ResourceGrant(grant.context, grant.resource_type, frozenset(letters), grant.query))
                )
        return ScopeSet.parse(" ".join(kept))


def parse_grant(token: str) -> ResourceGrant | None:
    match = _RESOURCE.match(token)
    if match is None:
        return None
    context, resource_type, permissions, query = match.groups()
    letters = _V1.get(permissions, permissions)
    if not letters:
        return None
    return ResourceGrant(context, resource_type, frozenset(letters), query[1:] if query else None)
