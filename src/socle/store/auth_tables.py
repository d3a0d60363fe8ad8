"""Tables of the authorization server (socle.trust.auth), on the store's MetaData (migration 0007_auth).

They live in the store layer so that the migration environment can import them without an upward
import; `socle.trust.auth.schema` re-exports them.

Secrets are never stored in clear: client secrets, passwords, authorization codes, refresh tokens
and session ids are stored as hashes (argon2id for human passwords and client secrets, SHA-256 for
high-entropy random tokens, where a slow hash buys nothing). Signing keys are stored encrypted with
a master key that lives outside the database and the repository (see `keys.py`).
Times are integer seconds since the epoch (UTC), as in JWT `exp`/`iat`.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Column, Index, Integer, String, Table, Text

from socle.store.schema import metadata

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

auth_key = Table(
    "auth_key",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(8), nullable=False),  # ES256 | RS256
    Column("private_key", Text, nullable=False),  # PEM encrypted with the master key (Fernet token)
    Column("public_jwk", JSON, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # Set when a newer key takes over signing; the key stays in the JWKS until `expires_at`, after
    # which no token it signed can still be valid.
    Column("retired_at", BigInteger, nullable=True),
    Column("expires_at", BigInteger, nullable=True),
)

auth_client = Table(
    "auth_client",
    metadata,
    Column("client_id", String(100), primary_key=True),
    Column("name", String(200), nullable=False),
    # public (PKCE, no secret) | confidential (client_secret_basic/post) | backend (private_key_jwt)
    Column("kind", String(16), nullable=False),
    Column("secret_hash", String(200), nullable=True),
    Column("redirect_uris", JSON, nullable=False),
    Column("scope", Text, nullable=False),  # the most a token for this client may carry
    Column("jwks_uri", String(500), nullable=True),
    Column("jwks", JSON, nullable=True),
    Column("post_logout_redirect_uris", JSON, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

auth_account = Table(
    "auth_account",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # professional | citizen
    Column("login", String(200), nullable=False, unique=True),  # idNat_PS, or the citizen's e-mail
    Column("password_hash", String(200), nullable=True),
    Column("totp_secret", String(64), nullable=True),
    # The last TOTP time step accepted: a code is good once (RFC 6238 §5.2), not for its whole window.
    Column("totp_last_step", BigInteger, nullable=True),
    # Claims copied from the directory (professional) or the identity referential (citizen) at
    # enrolment: fhirUser, names, practice (profession, specialty, structure), INS.
    Column("claims", JSON, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("activation_hash", String(64), nullable=True),
    Column("activation_expires", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

auth_webauthn = Table(
    "auth_webauthn",
    metadata,
    Column("credential_id", String(400), primary_key=True),  # base64url
    Column("account_id", String(64), nullable=False),
    Column("public_key", Text, nullable=False),  # base64url COSE key
    Column("sign_count", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_auth_webauthn_account", "account_id"),
)

auth_delegation = Table(
    "auth_delegation",
    metadata,
    Column("delegation_id", String(64), primary_key=True),
    Column("account_id", String(64), nullable=False),  # who acts
    Column("patient", String(64), nullable=False),  # for whom (Patient id)
    Column("relationship", String(16), nullable=False),  # guardian | helper
    Column("scope", Text, nullable=False),  # the most this delegation allows (SMART scopes)
    Column("expires_at", BigInteger, nullable=True),
    Index("ix_auth_delegation_account", "account_id"),
)

auth_session = Table(
    "auth_session",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("account_id", String(64), nullable=False),
    Column("acr", String(32), nullable=False),
    Column("amr", JSON, nullable=False),
    Column("auth_time", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

auth_flow = Table(
    "auth_flow",
    metadata,
    # One login in progress: the authorization request it serves, the CSRF token of its forms, and
    # how far it got (password checked, second factor pending).
    Column("flow_hash", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("request", JSON, nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("account_id", String(64), nullable=True),
    Column("stage", String(16), nullable=False),
    Column("otp_hash", String(64), nullable=True),
    Column("challenge", String(200), nullable=True),
    Column("expires_at", BigInteger, nullable=False),
)

auth_code = Table(
    "auth_code",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("client_id", String(100), nullable=False),
    Column("redirect_uri", String(500), nullable=False),
    Column("grant", JSON, nullable=False),  # subject, scope, claims, launch context, nonce
    Column("code_challenge", String(128), nullable=True),
    Column("expires_at", BigInteger, nullable=False),
    # A reused code revokes what its first use produced (RFC 6749 §4.1.2): hence the family.
    Column("used_family", String(64), nullable=True),
)

auth_refresh = Table(
    "auth_refresh",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("family", String(64), nullable=False),
    Column("client_id", String(100), nullable=False),
    Column("grant", JSON, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("rotated", Boolean, nullable=False),  # already exchanged: presenting it again is reuse
    Column("revoked", Boolean, nullable=False),
    Index("ix_auth_refresh_family", "family"),
)

auth_revoked = Table(
    "auth_revoked",
    metadata,
    # Access tokens revoked before expiry (by jti) or whole families (a refresh-token family id).
    Column("jti", String(64), primary_key=True),
    Column("expires_at", BigInteger, nullable=False),
)

auth_attempt = Table(
    "auth_attempt",
    metadata,
    # Failed logins per key ("account:<login>" or "ip:<address>"), for progressive lockout.
    Column("key", String(250), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("locked_until", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

auth_outbox = Table(
    "auth_outbox",
    metadata,
    # Messages sent through the local delivery channel (the demo's readable "mailbox").
    Column("message_id", Integer, primary_key=True, autoincrement=True),
    Column("recipient", String(200), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# -- migration 0010 ----------------------------------------------------------------------------

auth_launch = Table(
    "auth_launch",
    metadata,
    # A SMART EHR launch context (App Launch v2 §"EHR launch"): created by the professional's side,
    # bound to one client, single use (`used`), short-lived. Only the hash of the `launch` value is kept.
    Column("launch_hash", String(64), primary_key=True),
    Column("client_id", String(100), nullable=False),
    Column("patient", String(64), nullable=False),
    Column("encounter", String(64), nullable=True),
    Column("created_by", String(100), nullable=False),  # account id, or "operator"
    Column("expires_at", BigInteger, nullable=False),
    Column("used", Boolean, nullable=False),
)

auth_challenge = Table(
    "auth_challenge",
    metadata,
    # WebAuthn challenges in flight (registration or login), single use, a few minutes long. The
    # challenge itself is kept (the library needs its bytes); it is found by the hash of the value
    # the authenticator echoes in clientDataJSON.
    Column("challenge_hash", String(64), primary_key=True),
    Column("account_id", String(64), nullable=False),
    Column("purpose", String(16), nullable=False),  # register | login
    Column("challenge", String(128), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)
