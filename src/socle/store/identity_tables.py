"""Tables of the identity referential (socle.referentials.identity), on the store's MetaData
(migration 0005_identity).

They live in the store layer so that the migration environment (and autogenerate) sees them without
an upward import; `socle.referentials.identity.registry_schema` re-exports them.

- `ins_registry`: the national reference identities, an INSi-like base (RNIPP/SNGI stand-in) loaded
  from the synthetic population. Reference data, not patient records: no compartment.
- `ins_lookup_log`: every `$ins-lookup` call, who/when/criteria/outcome (the trust layer's audit chain
  does not exist yet; this table is the record until it does).
- `identity_status_log`: every identity status change, with its evidence (audit; the Patient's own
  versions hold the before/after resources).
- `mpi_traits`: one row of normalised traits per live Patient, so `$match` scores candidates without
  reading JSON; `mpi_block`: its blocking keys (64-bit hashes), so candidate search is an index seek
  whose cost depends on block sizes, not on the population.
- `mpi_merge`: each `$merge`, with what is needed to undo it (`$unmerge`).
Patient-owned rows carry `compartment` (the Patient id), the Citus distribution column.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Column, Index, Integer, String, Table, Text

from socle.store.schema import ResourceKey, metadata

__all__ = [
    "identity_status_log",
    "ins_lookup_log",
    "ins_registry",
    "mpi_block",
    "mpi_merge",
    "mpi_traits",
]

ins_registry = Table(
    "ins_registry",
    metadata,
    Column("matricule", String(15), primary_key=True),  # NIR or NIA
    Column("kind", String(12), nullable=False),  # identifier type: INS-NIR, INS-NIA, INS-NIR-DEMO, ...
    Column("birth_name", String(100), nullable=False),  # as INSi returns it (upper case)
    Column("given_names", String(200), nullable=False),  # the list, space separated
    Column("sex", String(1), nullable=False),  # "M" | "F"
    Column("birth_date", String(10), nullable=False),  # YYYY, YYYY-MM or YYYY-MM-DD
    Column("birthplace", String(5), nullable=False),  # INSEE COG code (99xxx abroad)
    # The NIR printed on the Vitale card that carries this person (the insured parent for a child).
    Column("vitale_nir", String(15), nullable=True),
    # Lookup keys: normalised birth name and birth year (a lookup always gives both).
    Column("name_key", String(100), nullable=False),
    Column("birth_year", Integer, nullable=False),
    Index("ix_ins_registry_lookup", "name_key", "birth_year"),
    Index("ix_ins_registry_vitale", "vitale_nir"),
)

ins_lookup_log = Table(
    "ins_lookup_log",
    metadata,
    Column("lookup_id", ResourceKey, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False),  # µs since the epoch
    Column("principal", String(200), nullable=False),
    Column("mode", String(10), nullable=False),  # "traits" | "vitale"
    Column("criteria", JSON, nullable=False),  # the inputs as received (personal data: audit only)
    Column("outcome", String(10), nullable=False),  # "00" one, "01" none, "02" several, "invalid"
    Column("matches", Integer, nullable=False),
    Column("matricule", String(15), nullable=True),  # returned on "00"
    Column("detail", Text, nullable=True),
    Index("ix_ins_lookup_log_at", "at"),
)

identity_status_log = Table(
    "identity_status_log",
    metadata,
    Column("event_id", ResourceKey, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False),
    Column("compartment", String(64), nullable=False),  # the Patient id
    Column("principal", String(200), nullable=False),
    Column("event", String(30), nullable=False),
    Column("status_before", String(5), nullable=False),
    Column("status_after", String(5), nullable=False),
    Column("version_after", Integer, nullable=False),  # the Patient version written by the change
    Column("evidence", JSON, nullable=False),  # document type, lookup id, method, reason
    Index("ix_identity_status_log_patient", "compartment", "at"),
)

mpi_traits = Table(
    "mpi_traits",
    metadata,
    Column("resource_key", ResourceKey, primary_key=True, autoincrement=False),
    Column("compartment", String(64), nullable=True),
    Column("birth_name", String(200), nullable=True),  # normalised (names.normalize_name)
    Column("used_name", String(200), nullable=True),
    Column("given_names", String(300), nullable=True),  # normalised, "|" between names
    Column("used_given", String(100), nullable=True),
    Column("birth_date", String(10), nullable=True),  # FHIR date, possibly partial
    Column("sex", String(1), nullable=True),  # "M" | "F"
    Column("birthplace", String(5), nullable=True),
    Column("ins", String(15), nullable=True),
    Column("active", Boolean, nullable=False),  # false once merged away (replaced-by)
)

mpi_block = Table(
    "mpi_block",
    metadata,
    Column("key_hash", BigInteger, primary_key=True, autoincrement=False),
    Column("resource_key", BigInteger, primary_key=True, autoincrement=False),
    Column("compartment", String(64), nullable=True),
    # Clustered on (key_hash, resource_key): a block is one range read. Deletion by resource goes
    # through the secondary index.
    Index("ix_mpi_block_resource", "resource_key"),
    sqlite_with_rowid=False,
)

mpi_merge = Table(
    "mpi_merge",
    metadata,
    Column("merge_id", ResourceKey, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False),
    Column("principal", String(200), nullable=False),
    Column("compartment", String(64), nullable=False),  # the surviving (target) Patient id
    Column("source_id", String(64), nullable=False),
    Column("target_id", String(64), nullable=False),
    Column("source_version", Integer, nullable=False),  # versions written by the merge
    Column("target_version", Integer, nullable=False),
    Column("source_before", JSON, nullable=False),  # the two Patients before the merge
    Column("target_before", JSON, nullable=False),
    # [[type, id, [json paths re-pointed]], ...]: what unmerge points back to the source
    Column("repointed", JSON, nullable=False),
    Column("undone_at", BigInteger, nullable=True),
    Index("ix_mpi_merge_source", "source_id"),
    Index("ix_mpi_merge_target", "target_id"),
)
