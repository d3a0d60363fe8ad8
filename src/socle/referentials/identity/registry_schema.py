"""Tables of the identity referential: declared in `socle.store.identity_tables` (the store layer, so
that the migration environment sees them) and re-exported here for the referential's modules."""

from __future__ import annotations

from socle.store.identity_tables import (
    identity_status_log,
    ins_lookup_log,
    ins_registry,
    mpi_block,
    mpi_merge,
    mpi_traits,
)

__all__ = [
    "identity_status_log",
    "ins_lookup_log",
    "ins_registry",
    "mpi_block",
    "mpi_merge",
    "mpi_traits",
]
