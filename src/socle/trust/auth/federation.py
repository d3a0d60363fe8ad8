"""Federation to an external OpenID Connect provider (`SOCLE_FEDERATION_*` settings).

Socle is then a relying party of that provider (Authlib's OAuth 2.0 client, authorization code +
PKCE S256 + nonce, client_secret_basic): discovery at `<issuer>/.well-known/openid-configuration`
(its `issuer` must be the configured one), the ID token verified against the provider's JWKS
(RS256/ES256 only; `iss`, `aud` = our client id, `exp`, `nonce`), then its userinfo merged (same
`sub`). The federated identity is mapped to a LOCAL account, never created on the fly: a
professional by the first idNat_PS claim present (`SubjectNameID`, `preferred_username` by default,
as Pro Santé Connect sends them), else a citizen by a verified e-mail. The login's `acr`/`amr` come
from `assurance.federated`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc6749.errors import OAuth2Error
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import Connection

from socle.config import Settings
from socle.trust.auth.accounts import Account, find_account

_transport: httpx.BaseTransport | None = None
_metadata: dict[str, tuple[float, dict[str, Any]]] = {}
METADATA_TTL = 300.0


class FederationError(Exception):
    pass


def use_transport(transport: httpx.BaseTransport | None) -> None:
    """Route the calls to the provider through `transport` (tests: an in-process provider)."""
    global _transport
    _transport = transport
    _metadata.clear()


@dataclass(frozen=True)
class Upstream:
    issuer: str
    client_id: str
    client_secret: str | None
    scope: str
    idnat_claims: tuple[str, ...]
    email_claim: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Upstream | None:
        if not settings.federation_issuer or not settings.federation_client_id:
            return None
        return cls(
            settings.federation_issuer.rstrip("/"),
            settings.federation_client_id,
            settings.federation_client_secret,
            settings.federation_scope,
            tuple(settings.federation_idnat_claims.split()),
            settings.federation_email_claim,
        )


def _http() -> httpx.Client:
    return httpx.Client(transport=_transport, timeout=10.0)


def _get_json(url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    try:
        with _http() as http:
            response = http.get(url, headers=headers)
            response.raise_for_status()
            body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise FederationError(f"{url}: {exc}") from exc
    if not isinstance(body, dict):
        raise FederationError(f"{url}: not a JSON object")
    return body


def metadata(upstream: Upstream) -> dict[str, Any]:
    cached = _metadata.get(upstream.issuer)
    if cached and time.monotonic() - cached[0] < METADATA_TTL:
        return cached[1]
    body = _get_json(f"{upstream.issuer}/.well-known/openid-configuration")
    if str(body.get("issuer", "")).rstrip("/") != upstream.issuer:
        raise FederationError("the provider's discovery document names another issuer")
    _metadata[upstream.issuer] = (time.monotonic(), body)
    return body


def _client(upstream: Upstream, redirect_uri: str, **kwargs: Any) -> OAuth2Client:
    return OAuth2Client(
        client_id=upstream.client_id,
        client_secret=upstream.client_secret,
        scope=upstream.scope,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic" if upstream.client_secret else "none",
        transport=_transport,
        **kwargs,
    )


def authorization_request(upstream: Upstream, redirect_uri: str) -> tuple[str, dict[str, str]]:
    """The provider's authorization URL and what the callback must check (state, nonce, verifier)."""
    verifier, nonce = generate_token(64), generate_token(32)
    with _client(upstream, redirect_uri) as client:
        url, state = client.create_authorization_url(
            metadata(upstream)["authorization_endpoint"], code_verifier=verifier, nonce=nonce
        )
    return url, {"state": state, "nonce": nonce, "verifier": verifier}


def complete(
    upstream: Upstream, redirect_uri: str, callback_url: str, pending: dict[str, str]
) -> dict[str, Any]:
    """Redeem the code of the callback; the verified ID token's claims merged with userinfo."""
    meta = metadata(upstream)
    try:
        with _client(upstream, redirect_uri, state=pending["state"]) as client:
            token = client.fetch_token(
                meta["token_endpoint"], authorization_response=callback_url, code_verifier=pending["verifier"]
            )
    except (OAuth2Error, httpx.HTTPError, KeyError, ValueError) as exc:
        raise FederationError(f"code exchange refused: {exc}") from exc
    if "id_token" not in token:
        raise FederationError("the provider returned no ID token")
    keys = KeySet.import_key_set(_get_json(meta["jwks_uri"]))  # type: ignore[arg-type]
    try:
        decoded = jwt.decode(token["id_token"], keys, algorithms=["RS256", "ES256"])
        jwt.JWTClaimsRegistry(
            leeway=30,
            iss={"essential": True, "value": upstream.issuer},
            aud={"essential": True, "value": upstream.client_id},
            exp={"essential": True},
            sub={"essential": True},
            nonce={"essential": True, "value": pending["nonce"]},
        ).validate(decoded.claims)
    except (JoseError, ValueError) as exc:
        raise FederationError(f"ID token refused: {exc}") from exc
    claims = dict(decoded.claims)
    if meta.get("userinfo_endpoint"):
        info = _get_json(meta["userinfo_endpoint"], {"Authorization": f"Bearer {token['access_token']}"})
        if info.get("sub") != claims["sub"]:
            raise FederationError("userinfo is about another subject")
        claims = {**info, **claims}
    return claims


def local_account(conn: Connection, upstream: Upstream, claims: dict[str, Any]) -> Account | None:
    """The local account of a federated identity: professional by idNat_PS, else citizen by e-mail."""
    for name in upstream.idnat_claims:
        value = claims.get(name)
        if isinstance(value, str) and value:
            account = find_account(conn, value)
            if account is not None and account.kind == "professional" and account.active:
                return account
    address = claims.get(upstream.email_claim)
    if isinstance(address, str) and address and claims.get("email_verified") is not False:
        account = find_account(conn, address)
        if account is not None and account.kind == "citizen" and account.active:
            return account
    return None
