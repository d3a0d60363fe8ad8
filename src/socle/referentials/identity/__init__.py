"""Patient identity: the INS (NIR/NIA), identity statuses (RNIV), an INSi-like registry, the master
patient index ($match, duplicates, merge) and a synthetic French population.

Modules: `nir` (matricule syntax and key), `traits`/`names` (strict traits, normalised names),
`profile` (FR Core shapes on Patient), `status` (the status machine and sharing rules),
`registry` (INSi-like lookup), `comparison`/`blocking`/`model`/`index`/`mpi` (matching),
`merge` ($merge/$unmerge), `population`/`corruption`/`benchmark_set` (synthetic data).
"""

from __future__ import annotations

from socle.referentials.identity.nir import Nir, NirError, format_nir, make_nir, nir_key, parse_nir
from socle.referentials.identity.profile import Reliability, patient_resource, traits_from_patient
from socle.referentials.identity.status import (
    IdentityEvent,
    apply_event,
    check_patient_identity,
    may_share_ins,
    shareable_patient,
)
from socle.referentials.identity.traits import PartialDate, Traits, parse_partial_date

__all__ = [
    "IdentityEvent",
    "Nir",
    "NirError",
    "PartialDate",
    "Reliability",
    "Traits",
    "apply_event",
    "check_patient_identity",
    "format_nir",
    "make_nir",
    "may_share_ins",
    "nir_key",
    "parse_nir",
    "parse_partial_date",
    "patient_resource",
    "shareable_patient",
    "traits_from_patient",
]
