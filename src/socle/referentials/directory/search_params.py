"""Search parameters the directory adds to the core R4 set, stored as SearchParameter resources.

- `qualification-code` on Practitioner (token, `qualification.code`): the Annuaire Santé IG's own
  parameter (`as-sp-qualification-code`), so `Practitioner?qualification-code=…|SM54` finds GPs.
- `address-insee` on Organization and Location (token): the commune's INSEE code carried by the
  FR Core address extension, so a commune is searched by code, not only by spelling.
- `mailbox-mss` on Practitioner and Organization (string): the MSSanté mailboxes (e-mail telecoms
  typed MSSANTE), the Annuaire Santé API's parameter of that name, so `Practitioner?mailbox-mss=…`
  finds who owns an address and a prefix finds a domain's local parts.
- `latitude` / `longitude` on Location (number, `position.latitude|longitude`): R4 `near` is a
  *special* parameter that the generic index cannot hold; indexing the two coordinates as numbers
  lets `near` be answered from the index tables (see `near.py`) without a geographic extension.

They are ordinary SearchParameter resources (R4 search.html#custom) written by the import before
any directory resource: every server process learns stored SearchParameters on its next request
(`socle.services.search_parameters`), and the importing process adds them to its own registry.
Resources written before they existed need `socle reindex` to be found by them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from socle.fhir.search_params import registry
from socle.referentials.directory._upsert import Upserter
from socle.referentials.directory.codes import MAILBOX_TYPE_EXTENSION
from socle.referentials.directory.mapping import INSEE_EXTENSION
from socle.store.repository import Store

__all__ = ["DIRECTORY_SEARCH_PARAMETERS", "ensure_search_parameters", "register_search_params"]

_BASE = "https://socle.esante.example/fhir/SearchParameter"


def _param(
    id_: str, code: str, base: str, kind: str, expression: str, description: str, url: str = ""
) -> dict[str, Any]:
    return {
        "resourceType": "SearchParameter",
        "id": id_,
        "url": url or f"{_BASE}/{id_}",
        "name": id_.replace("-", "_"),
        "status": "active",
        "description": description,
        "code": code,
        "base": [base],
        "type": kind,
        "expression": expression,
    }


DIRECTORY_SEARCH_PARAMETERS: tuple[dict[str, Any], ...] = (
    _param(
        "directory-practitioner-qualification-code",
        "qualification-code",
        "Practitioner",
        "token",
        "Practitioner.qualification.code",
        "Profession (TRE_G15) or savoir-faire (TRE_R38...) of a professional (Annuaire Santé IG).",
        "https://interop.esante.gouv.fr/ig/fhir/annuaire/SearchParameter/as-sp-qualification-code",
    ),
    _param(
        "directory-organization-address-insee",
        "address-insee",
        "Organization",
        "token",
        f"Organization.address.extension('{INSEE_EXTENSION}')",
        "INSEE code (COG) of the commune of the address (FR Core address extension).",
    ),
    _param(
        "directory-location-address-insee",
        "address-insee",
        "Location",
        "token",
        f"Location.address.extension('{INSEE_EXTENSION}')",
        "INSEE code (COG) of the commune of the address (FR Core address extension).",
    ),
    *(
        _param(
            f"directory-{base.lower()}-mailbox-mss",
            "mailbox-mss",
            base,
            "string",
            f"{base}.telecom.where(system = 'email' and extension('{MAILBOX_TYPE_EXTENSION}').exists())"
            ".value",
            "MSSanté mailbox address (e-mail telecom typed MSSANTE, Annuaire Santé `mailbox-mss`).",
        )
        for base in ("Practitioner", "Organization")
    ),
    _param(
        "directory-location-latitude",
        "latitude",
        "Location",
        "number",
        "Location.position.latitude",
        "WGS 84 latitude of the location (indexed so that `near` is answered from the index tables).",
    ),
    _param(
        "directory-location-longitude",
        "longitude",
        "Location",
        "number",
        "Location.position.longitude",
        "WGS 84 longitude of the location (indexed so that `near` is answered from the index tables).",
    ),
)


def register_search_params() -> None:
    """Add the directory's parameters to this process's registry (writes index rows for them)."""
    params = registry()
    for definition in DIRECTORY_SEARCH_PARAMETERS:
        known = params.get(definition["base"][0], definition["code"])
        if known is None or known.url != definition["url"]:
            params.add(definition)


def ensure_search_parameters(store: Store, conn: Connection) -> None:
    """Store the SearchParameter resources (idempotent) and register them in this process."""
    Upserter(store).write(conn, [dict(d) for d in DIRECTORY_SEARCH_PARAMETERS])
    register_search_params()
