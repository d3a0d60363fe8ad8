"""The authorization server's tables (declared in `socle.store.auth_tables`, migration 0007_auth)."""

from __future__ import annotations

from socle.store.auth_tables import (
    auth_account,
    auth_attempt,
    auth_challenge,
    auth_client,
    auth_code,
    auth_delegation,
    auth_flow,
    auth_key,
    auth_launch,
    auth_outbox,
    auth_refresh,
    auth_revoked,
    auth_session,
    auth_webauthn,
)

__all__ = [
    "auth_account",
    "auth_attempt",
    "auth_challenge",
    "auth_client",
    "auth_code",
    "auth_delegation",
    "auth_flow",
    "auth_key",
    "auth_launch",
    "auth_outbox",
    "auth_refresh",
    "auth_revoked",
    "auth_session",
    "auth_webauthn",
]
