"""Which SMART permission a FHIR request needs, and whether a principal's scopes grant it.

The mapping follows SMART v2 (scopes-and-launch-context §"Scopes for requesting FHIR resources"):
read and vread and history of one resource are `r`, searches are `s`, create `c`, update and patch
`u`, delete `d`. Requests not aimed at one type (batch/transaction, whole-system search or history,
system-level operations) need the permission on `*`; the entries of a batch are then checked one by
one by the access policy. Scopes only narrow: passing this check admits nothing the policy denies.
"""

from __future__ import annotations

from socle.fhir.resource_types import is_resource_type
from socle.trust.principal import Principal

PUBLIC_PATHS = frozenset({"metadata", ".well-known/smart-configuration"})


def required_permissions(method: str, segments: list[str]) -> tuple[str, str]:
    """(resource type or "*", one letter of c r u d s)."""
    method = method.upper()
    resource_type = segments[0] if segments and is_resource_type(segments[0]) else "*"
    rest = segments[1:] if resource_type != "*" else segments
    if method in ("GET", "HEAD"):
        if resource_type == "*":
            return "*", "s"
        if not rest or rest[0] in ("_search", "_history") or rest[0].startswith("$"):
            return resource_type, "s"
        return resource_type, "r"
    if method == "POST":
        if resource_type == "*":
            return "*", "c" if not segments else "s"
        if rest and rest[0] == "_search":
            return resource_type, "s"
        if rest and (rest[0].startswith("$") or (len(rest) > 1 and rest[1].startswith("$"))):
            return resource_type, "u"  # operations that change state ($merge, $validate-… read as u)
        return resource_type, "c"
    if method in ("PUT", "PATCH"):
        return resource_type, "u"
    if method == "DELETE":
        return resource_type, "d"
    return resource_type, "r"


def scopes_permit(principal: Principal, method: str, segments: list[str]) -> bool:
    if principal.is_system:
        return True
    resource_type, letter = required_permissions(method, segments)
    return (
        principal.scopes.permits(resource_type, letter)
        if resource_type != "*"
        else any(g.resource_type == "*" and letter in g.permissions for g in principal.scopes.grants)
    )
