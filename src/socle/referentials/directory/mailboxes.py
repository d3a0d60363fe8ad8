"""MSSanté mailboxes from the MSSanté extraction, on Practitioner and Organization `telecom`.

A mailbox is an `email` ContactPoint with the FR Core e-mail type extension = `MSSANTE` (TRE_R256),
as the Annuaire Santé IG's `mailbox-mss` slice has it. Two files can name a professional's mailbox:
the person/activity file (its structure e-mail column, when the address is under `mssante.fr`) and
the MSSanté extraction (authoritative for mailboxes). The ones that come from the MSSanté
extraction carry a source extension, and the resource carries the `MSSANTE_TAG` meta tag so that a
full re-import finds them (`_tag`) and closes the mailboxes the extraction no longer lists:

- `apply_mailboxes(body, addresses)`: the MSSanté extraction's mailboxes of a resource become
  exactly `addresses` (the other telecoms are left as they are); idempotent.
- `extraction_addresses(body)`: those mailboxes; when another file's import rewrites a resource
  the importer carries them over, so imports of different files never undo each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from socle.referentials.directory.codes import MAILBOX_TYPE_EXTENSION, coding

__all__ = [
    "MSSANTE_SOURCE",
    "MSSANTE_TAG",
    "SOURCE_EXTENSION",
    "apply_mailboxes",
    "extraction_addresses",
    "mailbox_from_extraction",
]

Resource = dict[str, Any]

SOURCE_EXTENSION = "https://socle.esante.example/fhir/StructureDefinition/directory-source"
MSSANTE_SOURCE = "urn:x-socle:directory:mssante"
MSSANTE_TAG = {"system": "https://socle.esante.example/fhir/CodeSystem/directory-source", "code": "mssante"}


def mailbox_from_extraction(address: str) -> Resource:
    return {
        "extension": [
            {"url": MAILBOX_TYPE_EXTENSION, "valueCoding": coding("TRE_R256", "MSSANTE")},
            {"url": SOURCE_EXTENSION, "valueUri": MSSANTE_SOURCE},
        ],
        "system": "email",
        "value": address,
        "use": "work",
    }


def _from_extraction(telecom: Resource) -> bool:
    return any(
        e.get("url") == SOURCE_EXTENSION and e.get("valueUri") == MSSANTE_SOURCE
        for e in telecom.get("extension", ())
    )


def apply_mailboxes(body: Resource, addresses: Iterable[str]) -> Resource:
    """`body` whose extraction mailboxes are exactly `addresses` (in order, without duplicates)."""
    telecom = [t for t in body.get("telecom", ()) if not _from_extraction(t)]
    present = {str(t.get("value", "")).lower() for t in telecom if t.get("system") == "email"}
    added = False
    for address in addresses:
        if address.lower() not in present:
            present.add(address.lower())
            telecom.append(mailbox_from_extraction(address))
            added = True
    result = {k: v for k, v in body.items() if k not in ("telecom", "meta")}
    meta = dict(body.get("meta") or {})
    tags = [t for t in meta.get("tag", ()) if t != MSSANTE_TAG]
    if added:
        tags.append(dict(MSSANTE_TAG))
    if tags:
        meta["tag"] = tags
    else:
        meta.pop("tag", None)
    if meta:
        result["meta"] = meta
    if telecom:
        result["telecom"] = telecom
    return _in_order(result, body)


def extraction_addresses(body: Resource) -> list[str]:
    """The addresses of the mailboxes that came from the MSSanté extraction."""
    return [str(t.get("value", "")) for t in body.get("telecom", ()) if _from_extraction(t)]


def _in_order(result: Resource, like: Resource) -> Resource:
    """Keys in the order of `like` (then new ones): stable JSON, readable resources."""
    ordered = {k: result[k] for k in like if k in result}
    ordered.update({k: v for k, v in result.items() if k not in ordered})
    return ordered
