"""Signing keys: generated, encrypted at rest, rotated, published as a JWKS.

Two signing keys are current at any time, one ES256 (P-256, the default for every token Socle
signs) and one RS256 (for relying parties that only verify RSA, as many OIDC libraries default to
RS256). Rotation makes a new pair current and *retires* the old one: a retired key signs nothing
more but stays in the JWKS until every token it signed has expired (`expires_at` = rotation time +
the longest token lifetime), so clients caching the JWKS never see a valid token they cannot verify.

Private keys are PEM, encrypted with a Fernet master key (`cryptography`) that is kept outside the
database and the repository (`Settings.auth_master_key` or the file `auth_master_key_file`).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy import Connection, delete, insert, select, update

from socle.config import Settings
from socle.trust.auth.schema import auth_key

ALGORITHMS = ("ES256", "RS256")
_lock = threading.Lock()


def master_fernet(settings: Settings) -> Fernet:
    """The master key from the settings, or from its file (created 0600 on first use)."""
    if settings.auth_master_key:
        return Fernet(settings.auth_master_key.encode())
    path = Path(settings.auth_master_key_file)
    with _lock:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key())
    return Fernet(path.read_bytes().strip())


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    key: ECKey | RSAKey


def _generate(alg: str) -> ECKey | RSAKey:
    if alg == "ES256":
        return ECKey.generate_key("P-256", private=True)
    return RSAKey.generate_key(2048, private=True)


def create_key(conn: Connection, settings: Settings, alg: str, now: int | None = None) -> str:
    key = _generate(alg)
    kid = f"{alg.lower()}-{uuid.uuid4().hex[:16]}"
    pem = key.as_pem(private=True)
    public = {**key.as_dict(private=False), "kid": kid, "alg": alg, "use": "sig"}
    conn.execute(
        insert(auth_key).values(
            kid=kid,
            alg=alg,
            private_key=master_fernet(settings).encrypt(pem).decode(),
            public_jwk=public,
            created_at=now or int(time.time()),
        )
    )
    return kid


def rotate_keys(conn: Connection, settings: Settings, now: int | None = None) -> list[str]:
    """Make a fresh ES256/RS256 pair current; retire the previous ones; drop keys past their expiry."""
    now = now or int(time.time())
    keep_until = now + max(settings.access_token_ttl, 3600)  # ID tokens live at most an hour too
    conn.execute(
        update(auth_key).where(auth_key.c.retired_at.is_(None)).values(retired_at=now, expires_at=keep_until)
    )
    conn.execute(delete(auth_key).where(auth_key.c.expires_at < now))
    kids = [create_key(conn, settings, alg, now) for alg in ALGORITHMS]
    _cache.clear()
    return kids


def ensure_keys(conn: Connection, settings: Settings) -> None:
    current = {row.alg for row in conn.execute(select(auth_key.c.alg).where(auth_key.c.retired_at.is_(None)))}
    for alg in ALGORITHMS:
        if alg not in current:
            create_key(conn, settings, alg)


def signing_key(conn: Connection, settings: Settings, alg: str = "ES256") -> SigningKey:
    row = conn.execute(
        select(auth_key.c.kid, auth_key.c.private_key)
        .where(auth_key.c.alg == alg, auth_key.c.retired_at.is_(None))
        .order_by(auth_key.c.created_at.desc())
        .limit(1)
    ).first()
    if row is None:
        ensure_keys(conn, settings)
        return signing_key(conn, settings, alg)
    cached = _cache.get(row.kid)
    if cached is None:
        pem = master_fernet(settings).decrypt(row.private_key.encode())
        key: ECKey | RSAKey = ECKey.import_key(pem) if alg == "ES256" else RSAKey.import_key(pem)
        cached = SigningKey(row.kid, alg, key)
        _cache[row.kid] = cached
    return cached


_cache: dict[str, SigningKey] = {}


def public_jwks(conn: Connection, now: int | None = None) -> dict[str, Any]:
    """The JWKS document: current keys and retired ones whose tokens may still be valid."""
    now = now or int(time.time())
    rows = conn.execute(
        select(auth_key.c.public_jwk)
        .where((auth_key.c.expires_at.is_(None)) | (auth_key.c.expires_at >= now))
        .order_by(auth_key.c.created_at.desc(), auth_key.c.kid)
    )
    return {"keys": [row.public_jwk for row in rows]}


def verification_keys(conn: Connection, now: int | None = None) -> KeySet:
    return KeySet.import_key_set(public_jwks(conn, now))  # type: ignore[arg-type]
