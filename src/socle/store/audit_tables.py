"""Tables of the audit chain (socle.trust.audit), on the store's MetaData (migration 0008_audit).

AuditEvents live apart from the `resource` table: an audit write is one small INSERT (no version
row, no search-index rows), and audit rows never show up in system-level history or search.
`audit_event` keeps the columns the access policy filters on (`resource_type`, `compartment`,
`security`), named as on `resource`, so `AccessFilter.condition(audit_event)` applies unchanged and
the table shards on the patient compartment key like every other patient table.

Each row is one link of a SHA-256 hash chain (see `socle.trust.audit.chain`): `content` holds the
AuditEvent's canonical JSON bytes exactly as hashed, `prev_hash`/`hash` the links. The searchable
columns (recorded, agent, action, outcome, entity, …) are copies taken from the content;
`socle audit verify` re-derives them and reports any row whose columns disagree with its content.
`audit_checkpoint` holds signed statements "the chain had head `hash` at `seq`" (JWS, ES256) and
`audit_key` the key pair that signs them (private key encrypted with the master key, as auth keys).
Times are integer microseconds since the epoch (UTC), as in schema.py.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, LargeBinary, String, Table, Text

from socle.store.schema import metadata

ChainSeq = BigInteger().with_variant(Integer(), "sqlite")

__all__ = ["audit_checkpoint", "audit_event", "audit_key"]

audit_event = Table(
    "audit_event",
    metadata,
    # Position in the chain: 1, 2, 3, … without gaps, assigned under the chain lock. On SQLite an
    # INTEGER PRIMARY KEY (the rowid: the table is stored in chain order, the head is one B-tree step).
    Column("seq", ChainSeq, primary_key=True, autoincrement=False),
    Column("id", String(64), nullable=False, unique=True),
    Column("recorded", BigInteger, nullable=False),
    Column("resource_type", String(64), nullable=False),  # always "AuditEvent"
    Column("compartment", String(64), nullable=True),  # the Patient the event is about
    Column("security", JSON(none_as_null=True), nullable=True),
    Column("agent", String(250), nullable=True),  # the requesting agent's reference (who)
    Column("action", String(1), nullable=False),  # C R U D E
    Column("outcome", String(2), nullable=False),  # 0 4 8 12
    Column("subtype", String(32), nullable=False),  # restful-interaction code
    # The links before the large columns: reading the chain head never touches overflow pages.
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # The entities' references (Type/id), space-separated and space-framed: `entity=` matches a word.
    Column("entity", Text, nullable=False),
    Column("content", LargeBinary, nullable=False),  # canonical JSON, exactly the hashed bytes
    Index("ix_audit_event_compartment", "compartment", "seq"),
    Index("ix_audit_event_recorded", "recorded"),
)

audit_checkpoint = Table(
    "audit_checkpoint",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),  # last event covered
    Column("hash", String(64), nullable=False),  # the chain head at `seq`
    Column("created_at", BigInteger, nullable=False),
    Column("kid", String(64), nullable=False),
    Column("signature", Text, nullable=False),  # JWS compact over {"seq", "hash", "iat"}
)

audit_key = Table(
    "audit_key",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(8), nullable=False),  # ES256
    Column("private_key", Text, nullable=False),  # PEM encrypted with the master key (Fernet token)
    Column("public_jwk", JSON, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # Never deleted: a retired key still verifies the checkpoints it signed.
    Column("retired_at", BigInteger, nullable=True),
)
