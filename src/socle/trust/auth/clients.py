"""OAuth clients: registration (`socle clients add`), lookup, and client authentication.

Kinds: `public` (a browser or native app: no secret, PKCE S256 required), `confidential` (a server
with a secret, `client_secret_basic`/`client_secret_post`; the secret is stored as an argon2id hash
and shown once), `backend` (SMART Backend Services: `private_key_jwt`, RFC 7523 §2.2, with its
public keys inline or at a JWKS URL).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import Connection, delete, insert, select

from socle.config import Settings
from socle.trust.auth.errors import OAuthError
from socle.trust.auth.passwords import hash_password, new_token, verify_password
from socle.trust.auth.schema import auth_client, auth_revoked

KINDS = ("public", "confidential", "backend")
DEFAULT_SCOPE = (
    "openid fhirUser profile offline_access online_access launch launch/patient patient/*.cruds user/*.cruds"
)
BACKEND_SCOPE = "system/*.cruds"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    kind: str
    redirect_uris: tuple[str, ...]
    scope: str
    jwks_uri: str | None
    jwks: dict[str, Any] | None
    post_logout_redirect_uris: tuple[str, ...]
    secret_hash: str | None = None

    @property
    def is_public(self) -> bool:
        return self.kind == "public"


def add_client(
    conn: Connection,
    settings: Settings,
    client_id: str,
    *,
    kind: str,
    name: str | None = None,
    redirect_uris: list[str] | None = None,
    scope: str | None = None,
    jwks_uri: str | None = None,
    jwks: dict[str, Any] | None = None,
    post_logout_redirect_uris: list[str] | None = None,
) -> str | None:
    """Register a client; returns the generated secret for a confidential client (shown once)."""
    if kind not in KINDS:
        raise ValueError(f"client kind must be one of {', '.join(KINDS)}")
    if get_client(conn, client_id) is not None:
        raise ValueError(f"client {client_id!r} already exists")
    secret = new_token() if kind == "confidential" else None
    conn.execute(
        insert(auth_client).values(
            client_id=client_id,
            name=name or client_id,
            kind=kind,
            secret_hash=hash_password(settings, secret) if secret else None,
            redirect_uris=redirect_uris or [],
            scope=scope or (BACKEND_SCOPE if kind == "backend" else DEFAULT_SCOPE),
            jwks_uri=jwks_uri,
            jwks=jwks,
            post_logout_redirect_uris=post_logout_redirect_uris or [],
            created_at=int(time.time()),
        )
    )
    return secret


def _client(row: Any) -> Client:
    return Client(
        row.client_id,
        row.name,
        row.kind,
        tuple(row.redirect_uris),
        row.scope,
        row.jwks_uri,
        row.jwks,
        tuple(row.post_logout_redirect_uris),
        row.secret_hash,
    )


def get_client(conn: Connection, client_id: str) -> Client | None:
    row = conn.execute(select(auth_client).where(auth_client.c.client_id == client_id)).first()
    return None if row is None else _client(row)


def list_clients(conn: Connection) -> list[Client]:
    return [_client(row) for row in conn.execute(select(auth_client).order_by(auth_client.c.client_id))]


def remove_client(conn: Connection, client_id: str) -> bool:
    return conn.execute(delete(auth_client).where(auth_client.c.client_id == client_id)).rowcount > 0


def authenticate_client(
    conn: Connection,
    settings: Settings,
    form: dict[str, str],
    basic: tuple[str, str] | None,
    token_endpoint: str,
) -> Client:
    """The client making a token/revocation/introspection request, authenticated per its kind."""
    if form.get("client_assertion_type") == ASSERTION_TYPE and "client_assertion" in form:
        return _authenticate_assertion(conn, form["client_assertion"], token_endpoint)
    client_id = basic[0] if basic else form.get("client_id", "")
    client = get_client(conn, client_id) if client_id else None
    if client is None:
        raise OAuthError("invalid_client", "Unknown client", status=401)
    if client.kind == "public":
        if basic is not None or "client_secret" in form:
            raise OAuthError("invalid_client", "A public client has no secret", status=401)
        return client
    if client.kind == "backend":
        raise OAuthError("invalid_client", "This client authenticates with private_key_jwt", status=401)
    secret = basic[1] if basic else form.get("client_secret", "")
    if not verify_password(settings, client.secret_hash, secret):
        raise OAuthError("invalid_client", "Client authentication failed", status=401)
    return client


def _client_keys(client: Client) -> KeySet:
    if client.jwks:
        return KeySet.import_key_set(client.jwks)  # type: ignore[arg-type]
    if client.jwks_uri:
        try:
            response = httpx.get(client.jwks_uri, timeout=5.0)
            response.raise_for_status()
            return KeySet.import_key_set(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            raise OAuthError("invalid_client", f"Cannot fetch the client's JWKS: {exc}", status=401) from exc
    raise OAuthError("invalid_client", "The client has no registered keys", status=401)


def _authenticate_assertion(conn: Connection, assertion: str, token_endpoint: str) -> Client:
    """RFC 7523 §3 and SMART Backend Services: iss = sub = client_id, aud = token endpoint, short
    lifetime, jti never seen before (replays are refused)."""
    client_id = _peek_issuer(assertion)
    client = get_client(conn, str(client_id)) if client_id else None
    if client is None or client.kind != "backend":
        raise OAuthError("invalid_client", "Unknown backend client", status=401)
    try:
        token = jwt.decode(assertion, _client_keys(client), algorithms=["RS384", "ES384", "RS256", "ES256"])
        registry = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": client.client_id},
            sub={"essential": True, "value": client.client_id},
            aud={"essential": True, "value": token_endpoint},
            exp={"essential": True},
            jti={"essential": True},
        )
        registry.validate(token.claims)
    except (JoseError, ValueError) as exc:
        raise OAuthError("invalid_client", f"Invalid client assertion: {exc}", status=401) from exc
    now = int(time.time())
    if int(token.claims["exp"]) > now + 300:
        raise OAuthError("invalid_client", "The client assertion must expire within 5 minutes", status=401)
    jti = f"assertion:{client.client_id}:{token.claims['jti']}"[:64]
    if conn.execute(select(auth_revoked.c.jti).where(auth_revoked.c.jti == jti)).first() is not None:
        raise OAuthError("invalid_client", "Client assertion replayed (jti already used)", status=401)
    conn.execute(insert(auth_revoked).values(jti=jti, expires_at=int(token.claims["exp"])))
    return client


def _peek_issuer(assertion: str) -> str | None:
    """The `iss` of an assertion before verification, only to choose the keys that verify it."""
    try:
        claims = json.loads(jws.extract_compact(assertion.encode()).payload)
    except (JoseError, ValueError):
        return None
    return str(claims.get("iss")) if isinstance(claims, dict) and claims.get("iss") else None
