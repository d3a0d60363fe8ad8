"""Access and ID tokens: signed JWTs (joserfc), and their verification for every FHIR request.

Access tokens are ES256 JWTs whose audience is the FHIR base URL; they carry the grant (who, for
which client, which scopes, which patient in context, who acts for whom) so that a FHIR request is
authorized from the token alone: one signature check, no database read. ID tokens are RS256, the
default `id_token_signed_response_alg` of OpenID Connect Core §2 that every relying party accepts.
Verification admits only ES256/RS256 with keys of the matching type from Socle's own JWKS, so
`alg: none` and HS256-signed-with-the-public-key tokens are refused by construction.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import Connection, select

from socle.config import Settings
from socle.trust.auth.errors import InvalidToken
from socle.trust.auth.keys import signing_key, verification_keys
from socle.trust.auth.schema import auth_revoked
from socle.trust.auth.scopes import ScopeSet
from socle.trust.principal import Practice, Principal

ACCEPTED_ALGORITHMS = ["ES256", "RS256"]
LEEWAY = 30  # seconds of clock skew tolerated on exp/nbf/iat


def issue_access_token(
    conn: Connection, settings: Settings, issuer: str, grant: dict[str, Any], *, family: str | None = None
) -> tuple[str, dict[str, Any]]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": grant["sub"],
        "aud": fhir_audience(issuer),
        "iat": now,
        "nbf": now,
        "exp": now + settings.access_token_ttl,
        "jti": uuid.uuid4().hex,
        "client_id": grant["client_id"],
        "scope": grant["scope"],
        "kind": grant["kind"],
    }
    for name in ("patient", "fhirUser", "act", "relationship", "practice", "acr"):
        if grant.get(name):
            claims[name] = grant[name]
    if family:
        claims["fam"] = family
    key = signing_key(conn, settings, "ES256")
    token = jwt.encode({"alg": "ES256", "kid": key.kid, "typ": "at+jwt"}, claims, key.key)
    return token, claims


def issue_id_token(
    conn: Connection, settings: Settings, issuer: str, grant: dict[str, Any], *, access_token: str | None
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": grant["sub"],
        "aud": grant["client_id"],
        "iat": now,
        "exp": now + 3600,
        "auth_time": grant.get("auth_time", now),
    }
    for name in ("nonce", "acr", "amr", "sid"):
        if grant.get(name):
            claims[name] = grant[name]
    scopes = ScopeSet.parse(grant["scope"])
    if scopes.has("fhirUser") and grant.get("fhirUser"):
        claims["fhirUser"] = grant["fhirUser"]
    if scopes.has("profile") or scopes.has("scope_all"):
        claims.update(grant.get("identity", {}))
    key = signing_key(conn, settings, "RS256")
    return jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "JWT"}, claims, key.key)


def fhir_audience(issuer: str) -> str:
    return f"{issuer.rstrip('/')}/fhir"


class TokenVerifier:
    """Verifies bearer tokens against the JWKS, cached in the process (refreshed on an unknown `kid`
    and every minute), and against revocations (cached, refreshed every few seconds).

    A client sends the same token on every request until it expires, and the ES256 signature check
    was about 6 % of a search's server CPU: the claims of a token whose signature verified are kept
    (`SIGNED_CACHE` tokens, oldest dropped first), per signing key. A kept token is still checked on
    every request against what changes with time: its claims (expiry, issuer, audience), its key
    being in the current JWKS, and revocation."""

    KEY_TTL = 60.0
    REVOKED_TTL = 2.0
    SIGNED_CACHE = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._kids: set[str] = set()
        self._keys_at = 0.0
        self._revoked: set[str] = set()
        self._revoked_at = 0.0
        self._signed: dict[str, tuple[str | None, dict[str, Any]]] = {}  # token -> (kid, its claims)

    def _refresh(self, conn: Connection, kid: str | None) -> KeySet:
        now = time.monotonic()
        with self._lock:
            stale = (
                self._keys is None or now - self._keys_at > self.KEY_TTL or (kid and kid not in self._kids)
            )
            if stale:
                self._keys = verification_keys(conn)
                self._kids = {k.kid for k in self._keys.keys if k.kid}
                self._keys_at = now
            if now - self._revoked_at > self.REVOKED_TTL:
                self._revoked = set(conn.execute(select(auth_revoked.c.jti)).scalars())
                self._revoked_at = now
            assert self._keys is not None
            return self._keys

    def verify(self, conn_factory: Any, token: str, issuer: str, audience: str) -> dict[str, Any]:
        try:
            header = _header(token)
        except JoseError as exc:
            raise InvalidToken(f"malformed token: {exc}") from exc
        if header.get("alg") not in ACCEPTED_ALGORITHMS:
            raise InvalidToken(f"algorithm {header.get('alg')!r} is not accepted")
        kid = header.get("kid")
        if (
            self._keys is None
            or kid not in self._kids
            or time.monotonic() - self._keys_at > self.KEY_TTL
            or (time.monotonic() - self._revoked_at > self.REVOKED_TTL)
        ):
            with conn_factory() as conn:
                keys = self._refresh(conn, kid)
        else:
            keys = self._keys
        kept = self._signed.get(token)
        if kept is not None and kept[0] in self._kids:
            claims = validate_claims(dict(kept[1]), issuer, audience)
        else:
            claims = verify_jwt(keys, token, issuer, audience)
            with self._lock:
                if len(self._signed) >= self.SIGNED_CACHE:
                    self._signed.pop(next(iter(self._signed)))
                self._signed[token] = (kid, dict(claims))
        if claims.get("jti") in self._revoked or claims.get("fam") in self._revoked:
            raise InvalidToken("token revoked")
        return claims


def _header(token: str) -> dict[str, Any]:
    from joserfc import jws

    return dict(jws.extract_compact(token.encode()).protected)


def verify_jwt(keys: KeySet, token: str, issuer: str, audience: str) -> dict[str, Any]:
    try:
        decoded = jwt.decode(token, keys, algorithms=ACCEPTED_ALGORITHMS)
    except (JoseError, ValueError) as exc:
        raise InvalidToken(str(exc) or type(exc).__name__) from exc
    return validate_claims(dict(decoded.claims), issuer, audience)


def validate_claims(claims: dict[str, Any], issuer: str, audience: str) -> dict[str, Any]:
    """The registered claims of a signature-checked token, at this moment (exp, nbf, iat with LEEWAY)."""
    registry = jwt.JWTClaimsRegistry(
        leeway=LEEWAY,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": audience},
        exp={"essential": True},
        sub={"essential": True},
    )
    try:
        registry.validate(claims)
    except (JoseError, ValueError) as exc:
        raise InvalidToken(str(exc) or type(exc).__name__) from exc
    return claims


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    practice = claims.get("practice")
    act = claims.get("act") or {}
    return Principal(
        kind=claims.get("kind", "app"),
        subject=str(claims["sub"]),
        scopes=ScopeSet.parse(str(claims.get("scope", ""))),
        client_id=claims.get("client_id"),
        fhir_user=claims.get("fhirUser"),
        patient=claims.get("patient"),
        acting_for=claims.get("patient") if act else None,
        relationship=claims.get("relationship"),
        practice=Practice(**practice) if isinstance(practice, dict) else None,
        acr=claims.get("acr"),
        claims=claims,
    )


def is_revoked(conn: Connection, jti: str | None, family: str | None) -> bool:
    ids = [x for x in (jti, family) if x]
    if not ids:
        return False
    return conn.execute(select(auth_revoked.c.jti).where(auth_revoked.c.jti.in_(ids))).first() is not None
