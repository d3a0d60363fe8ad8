"""The directory of health and médico-social professionals and structures (RPPS, ADELI, FINESS).

Public names: identifier validation (`check_*`), the import service (`DirectoryImporter`: person/
activity file, FINESS file, MSSanté extraction), the FHIR mapping helpers, "near" (`roles_near`)
and the synthetic extraction generator. The import
stores the directory's SearchParameters (see `search_params`) before any directory resource.
"""

from __future__ import annotations

from socle.referentials.directory.identifiers import (
    IdentifierCheck,
    InvalidIdentifier,
    check_adeli,
    check_finess,
    check_identifier,
    check_idnat_ps,
    check_rpps,
    check_siren,
    check_siret,
    luhn_ok,
)
from socle.referentials.directory.importer import DirectoryImporter, FileReport
from socle.referentials.directory.mapping import is_mssante, mssante_addresses
from socle.referentials.directory.search_params import ensure_search_parameters, register_search_params

__all__ = [
    "DirectoryImporter",
    "FileReport",
    "IdentifierCheck",
    "InvalidIdentifier",
    "check_adeli",
    "check_finess",
    "check_identifier",
    "check_idnat_ps",
    "check_rpps",
    "check_siren",
    "check_siret",
    "ensure_search_parameters",
    "is_mssante",
    "luhn_ok",
    "mssante_addresses",
    "register_search_params",
]
