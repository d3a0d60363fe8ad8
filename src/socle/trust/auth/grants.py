"""The token endpoint's grants: authorization code + PKCE, refresh with rotation, client credentials.

- Codes live 60 s and are single-use; a second presentation revokes everything the first one
  produced (RFC 6749 §4.1.2, OAuth 2.0 Security BCP §4.5).
- PKCE (RFC 7636): S256 only; required for public clients; a code issued with a challenge can only
  be redeemed with its verifier (no downgrade). The S256 transform is Authlib's.
- Refresh tokens rotate at each use (Security BCP §4.14.2); presenting an already-rotated token is
  reuse: the whole family (every refresh and access token descended from the same login) is revoked.
"""

from __future__ import annotations

import hmac
import time
import uuid
from typing import Any

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import Connection, insert, select, update

from socle.config import Settings
from socle.trust.auth.clients import Client
from socle.trust.auth.errors import OAuthError
from socle.trust.auth.passwords import new_token, token_hash
from socle.trust.auth.schema import auth_code, auth_refresh, auth_revoked
from socle.trust.auth.scopes import ScopeSet
from socle.trust.auth.tokens import issue_access_token, issue_id_token

CODE_TTL = 60


def create_code(
    conn: Connection,
    client: Client,
    redirect_uri: str,
    grant: dict[str, Any],
    code_challenge: str | None,
) -> str:
    code = new_token()
    conn.execute(
        insert(auth_code).values(
            code_hash=token_hash(code),
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            grant=grant,
            code_challenge=code_challenge,
            expires_at=int(time.time()) + CODE_TTL,
            used_family=None,
        )
    )
    return code


def exchange_code(
    conn: Connection, settings: Settings, issuer: str, client: Client, form: dict[str, str]
) -> dict[str, Any]:
    code = form.get("code", "")
    row = conn.execute(select(auth_code).where(auth_code.c.code_hash == token_hash(code))).first()
    if row is None or row.client_id != client.client_id:
        raise OAuthError("invalid_grant", "Unknown authorization code")
    if row.used_family is not None:
        revoke_family(conn, row.used_family)
        raise OAuthError("invalid_grant", "Authorization code already used: the tokens it gave are revoked")
    family = uuid.uuid4().hex
    # Mark used first, in the same transaction: a concurrent second use finds it used.
    claimed = conn.execute(
        update(auth_code)
        .where(auth_code.c.code_hash == row.code_hash, auth_code.c.used_family.is_(None))
        .values(used_family=family)
    ).rowcount
    if claimed != 1:
        raise OAuthError("invalid_grant", "Authorization code already used")
    if row.expires_at < int(time.time()):
        raise OAuthError("invalid_grant", "Authorization code expired")
    if form.get("redirect_uri") != row.redirect_uri:
        raise OAuthError("invalid_grant", "redirect_uri differs from the authorization request")
    verifier = form.get("code_verifier")
    if row.code_challenge is not None:
        if not verifier:
            raise OAuthError("invalid_grant", "code_verifier is required (PKCE)")
        if not hmac.compare_digest(create_s256_code_challenge(verifier), row.code_challenge):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
    elif verifier:
        raise OAuthError("invalid_grant", "code_verifier sent but the authorization request had no challenge")
    elif client.is_public:
        raise OAuthError("invalid_grant", "PKCE is required for public clients")
    return token_response(conn, settings, issuer, dict(row.grant), family=family, with_id_token=True)


def refresh(
    conn: Connection, settings: Settings, issuer: str, client: Client, form: dict[str, str]
) -> dict[str, Any]:
    presented = form.get("refresh_token", "")
    row = conn.execute(select(auth_refresh).where(auth_refresh.c.token_hash == token_hash(presented))).first()
    if row is None or row.client_id != client.client_id:
        raise OAuthError("invalid_grant", "Unknown refresh token")
    if row.revoked:
        raise OAuthError("invalid_grant", "Refresh token revoked")
    if row.rotated:
        revoke_family(conn, row.family)
        raise OAuthError("invalid_grant", "Refresh token reused: every token of this login is revoked")
    if row.expires_at < int(time.time()):
        raise OAuthError("invalid_grant", "Refresh token expired")
    claimed = conn.execute(
        update(auth_refresh)
        .where(auth_refresh.c.token_hash == row.token_hash, auth_refresh.c.rotated.is_(False))
        .values(rotated=True)
    ).rowcount
    if claimed != 1:
        revoke_family(conn, row.family)
        raise OAuthError("invalid_grant", "Refresh token reused")
    grant = dict(row.grant)
    if form.get("scope"):  # a refresh may narrow the scopes, never widen them (RFC 6749 §6)
        grant["scope"] = str(ScopeSet.parse(form["scope"]).narrow_to(ScopeSet.parse(grant["scope"])))
    return token_response(conn, settings, issuer, grant, family=row.family, with_id_token=False)


def client_credentials(
    conn: Connection, settings: Settings, issuer: str, client: Client, form: dict[str, str]
) -> dict[str, Any]:
    if client.kind != "backend":
        raise OAuthError("unauthorized_client", "client_credentials is for backend (private_key_jwt) clients")
    requested = ScopeSet.parse(form.get("scope", ""))
    granted = requested.narrow_to(ScopeSet.parse(client.scope))
    if any(g.context != "system" for g in granted.grants) or not granted.grants:
        raise OAuthError(
            "invalid_scope", "Backend services get system/ scopes only, within their registration"
        )
    grant = {"sub": client.client_id, "client_id": client.client_id, "scope": str(granted), "kind": "app"}
    return token_response(conn, settings, issuer, grant, family=None, with_id_token=False)


def token_response(
    conn: Connection,
    settings: Settings,
    issuer: str,
    grant: dict[str, Any],
    *,
    family: str | None,
    with_id_token: bool,
) -> dict[str, Any]:
    token, claims = issue_access_token(conn, settings, issuer, grant, family=family)
    scopes = ScopeSet.parse(grant["scope"])
    body: dict[str, Any] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": settings.access_token_ttl,
        "scope": grant["scope"],
    }
    if grant.get("patient"):  # SMART launch context (App Launch §2.0.8 "patient")
        body["patient"] = grant["patient"]
        body["need_patient_banner"] = True
    if grant.get("encounter"):
        body["encounter"] = grant["encounter"]
    if family and (scopes.has("offline_access") or scopes.has("online_access")):
        refresh_token = new_token()
        conn.execute(
            insert(auth_refresh).values(
                token_hash=token_hash(refresh_token),
                family=family,
                client_id=grant["client_id"],
                grant=grant,
                expires_at=int(time.time()) + settings.refresh_token_ttl,
                rotated=False,
                revoked=False,
            )
        )
        body["refresh_token"] = refresh_token
    if with_id_token and scopes.has("openid"):
        body["id_token"] = issue_id_token(conn, settings, issuer, grant, access_token=token)
    del claims
    return body


def revoke_family(conn: Connection, family: str) -> None:
    conn.execute(update(auth_refresh).where(auth_refresh.c.family == family).values(revoked=True))
    if conn.execute(select(auth_revoked.c.jti).where(auth_revoked.c.jti == family)).first() is None:
        expires = int(time.time()) + 400 * 24 * 3600
        conn.execute(insert(auth_revoked).values(jti=family, expires_at=expires))


def revoke_token(
    conn: Connection, settings: Settings, client: Client, token: str, claims: dict[str, Any] | None
) -> None:
    """RFC 7009: a refresh token revokes its family; an access token its jti (and family, if any)."""
    row = conn.execute(select(auth_refresh).where(auth_refresh.c.token_hash == token_hash(token))).first()
    if row is not None:
        if row.client_id == client.client_id:
            revoke_family(conn, row.family)
        return
    if claims is None or claims.get("client_id") != client.client_id:
        return  # unknown or someone else's token: 200 and nothing happens (RFC 7009 §2.2)
    jti = str(claims["jti"])
    if conn.execute(select(auth_revoked.c.jti).where(auth_revoked.c.jti == jti)).first() is None:
        conn.execute(insert(auth_revoked).values(jti=jti, expires_at=int(claims["exp"])))
