"""The syntax of `Reference.reference` (https://hl7.org/fhir/R4/references.html#literal).

A literal reference is one of:
- a relative URL `Type/id` or `Type/id/_history/vid`, `Type` a known resource type and `id`, `vid`
  matching the id regex `[A-Za-z0-9\\-\\.]{1,64}` (datatypes.html#id);
- an absolute URL (`scheme://...`, e.g. `https://server/fhir/Patient/1`);
- a `urn:uuid:` or `urn:oid:` URI, as used in Bundles (bundle.html#references);
- `#id` for a contained resource, or `#` alone for the containing resource (references.html#contained);
- a conditional reference `Type?query`, resolved by the server in a transaction
  (http.html#trules).
When the element restricts its targets (e.g. Observation.subject → Patient|Group|Device|Location), the
`Type` of a relative or conditional reference must be one of them; the type of an absolute URL or a
URN cannot be known without resolving it and is not checked.
"""

from __future__ import annotations

import re
from collections.abc import Container

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}", re.ASCII).fullmatch
_UUID = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").fullmatch
_OID = re.compile(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+").fullmatch
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#]+[^\s]*", re.ASCII).fullmatch

_EXPECTED = "expected Type/id, an absolute URL, urn:uuid:, urn:oid:, #id or Type?query"


def reference_problem(
    reference: str, resource_types: Container[str], targets: frozenset[str] | None
) -> str | None:
    """Why `reference` is not a valid literal reference for this element, or None if it is."""
    if reference.startswith("#"):
        if reference == "#" or _ID(reference[1:]):
            return None
        return f"{reference!r} is not a valid contained reference: the id after '#' is not a valid id"
    if reference.startswith("urn:"):
        if _UUID(reference) or _OID(reference):
            return None
        return f"{reference!r} is not a valid urn:uuid: or urn:oid: reference"
    query = reference.find("?")
    if query > 0 and "/" not in reference[:query] and ":" not in reference[:query]:
        return _type_problem(reference, reference[:query], resource_types, targets)
    if "://" in reference:
        return None if _ABSOLUTE(reference) else f"{reference!r} is not a valid absolute URL"
    parts = reference.split("/")
    if len(parts) == 2 or (len(parts) == 4 and parts[2] == "_history"):
        problem = _type_problem(reference, parts[0], resource_types, targets)
        if problem is not None:
            return problem
        if not _ID(parts[1]):
            return f"{reference!r}: {parts[1]!r} is not a valid resource id"
        if len(parts) == 4 and not _ID(parts[3]):
            return f"{reference!r}: {parts[3]!r} is not a valid version id"
        return None
    return f"{reference!r} is not a valid reference: {_EXPECTED}"


def _type_problem(
    reference: str, type_name: str, resource_types: Container[str], targets: frozenset[str] | None
) -> str | None:
    if type_name not in resource_types:
        return f"{reference!r} is not a valid reference: {type_name!r} is not a resource type"
    if targets is not None and type_name not in targets:
        allowed = "|".join(sorted(targets))
        return f"{reference!r} refers to a {type_name}, but this element only allows {allowed}"
    return None
