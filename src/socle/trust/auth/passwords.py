"""Password and client-secret hashing (argon2id, RFC 9106) and hashes of random tokens.

Human passwords and client secrets go through argon2id: slow on purpose, so a stolen table does not
give them away. Random tokens we mint ourselves (codes, refresh tokens, session ids) already carry
256 bits of entropy, so SHA-256 is enough and keeps their lookup an index seek.
"""

from __future__ import annotations

import functools
import hashlib
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from socle.config import Settings


@functools.cache
def _hasher(time_cost: int, memory_kib: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1, type=Type.ID)


def hasher(settings: Settings) -> PasswordHasher:
    return _hasher(settings.argon2_time_cost, settings.argon2_memory_kib)


def hash_password(settings: Settings, password: str) -> str:
    return hasher(settings).hash(password)


def verify_password(settings: Settings, stored: str | None, password: str) -> bool:
    if not stored:
        hasher(settings).hash(password)  # same cost whether or not the account exists
        return False
    try:
        return hasher(settings).verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)
