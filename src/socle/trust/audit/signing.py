"""The key that signs chain checkpoints: ES256 (P-256), generated on first use, never deleted.

A dedicated key rather than the token-signing keys: those are rotated and deleted once no token
they signed can be valid, while a checkpoint must stay verifiable for as long as the log is kept.
The private key is stored encrypted with the master key (`trust.auth.keys.master_fernet`), which
lives outside the database. `trusted_keys` authenticates each stored public key by decrypting its
private key with the master key and comparing: someone who can write the database but not read the
master key cannot slip in a key of their own and re-sign a rewritten chain.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from sqlalchemy import Connection, insert, select

from socle.config import Settings
from socle.store.audit_tables import audit_key
from socle.store.clock import now_us
from socle.trust.auth.keys import master_fernet

ALG = "ES256"
_cache: dict[str, ECKey] = {}
_lock = threading.Lock()


def _current(conn: Connection, settings: Settings) -> tuple[str, ECKey]:
    row = conn.execute(
        select(audit_key.c.kid, audit_key.c.private_key)
        .where(audit_key.c.retired_at.is_(None))
        .order_by(audit_key.c.created_at.desc())
        .limit(1)
    ).first()
    if row is None:
        return create_key(conn, settings)
    with _lock:
        key = _cache.get(row.kid)
        if key is None:
            key = ECKey.import_key(master_fernet(settings).decrypt(row.private_key.encode()))
            _cache[row.kid] = key
    return row.kid, key


def create_key(conn: Connection, settings: Settings) -> tuple[str, ECKey]:
    key = ECKey.generate_key("P-256", private=True)
    kid = f"audit-{uuid.uuid4().hex[:16]}"
    public = {**key.as_dict(private=False), "kid": kid, "alg": ALG, "use": "sig"}
    conn.execute(
        insert(audit_key).values(
            kid=kid,
            alg=ALG,
            private_key=master_fernet(settings).encrypt(key.as_pem(private=True)).decode(),
            public_jwk=public,
            created_at=now_us(),
        )
    )
    return kid, key


def sign(conn: Connection, settings: Settings, payload: bytes) -> tuple[str, str]:
    """(kid, JWS compact) of `payload` with the current audit key."""
    kid, key = _current(conn, settings)
    return kid, jws.serialize_compact({"alg": ALG, "kid": kid}, payload, key, algorithms=[ALG])


@dataclass(frozen=True)
class TrustedKey:
    key: ECKey
    # True when the master key proved the public key is Socle's own; False when taken on trust.
    authenticated: bool
    problem: str | None = None


def _master(settings: Settings) -> Fernet | None:
    """The master key if this machine has it (verification never creates one)."""
    if settings.auth_master_key or Path(settings.auth_master_key_file).exists():
        return master_fernet(settings)
    return None


def trusted_keys(
    conn: Connection, settings: Settings, pinned: dict[str, Any] | None = None
) -> dict[str, TrustedKey]:
    """The audit public keys by kid; a pinned JWKS (from `--jwks`) replaces the stored ones."""
    if pinned is not None:
        return {
            str(jwk["kid"]): TrustedKey(ECKey.import_key(jwk), True)
            for jwk in pinned.get("keys", [])
            if isinstance(jwk, dict) and "kid" in jwk
        }
    fernet = _master(settings)
    keys: dict[str, TrustedKey] = {}
    for row in conn.execute(select(audit_key.c.kid, audit_key.c.private_key, audit_key.c.public_jwk)):
        public = ECKey.import_key(row.public_jwk)
        if fernet is None:
            keys[row.kid] = TrustedKey(public, False)
            continue
        try:
            private = ECKey.import_key(fernet.decrypt(row.private_key.encode()))
        except (InvalidToken, ValueError, JoseError):
            keys[row.kid] = TrustedKey(public, False, "its private key does not decrypt with the master key")
            continue
        if private.as_dict(private=False) != {
            k: v for k, v in row.public_jwk.items() if k in ("kty", "crv", "x", "y")
        }:
            keys[row.kid] = TrustedKey(public, False, "its public key does not match its private key")
            continue
        keys[row.kid] = TrustedKey(public, True)
    return keys


def public_jwks(conn: Connection) -> dict[str, Any]:
    """The audit keys' JWKS, for operators to keep outside the database (`socle audit verify --jwks`)."""
    return {"keys": [row.public_jwk for row in conn.execute(select(audit_key.c.public_jwk))]}


def verify_signature(token: str, key: ECKey) -> bytes | None:
    try:
        return jws.deserialize_compact(token, key, algorithms=[ALG]).payload
    except (JoseError, ValueError):
        return None
