"""WebAuthn passkeys (W3C Web Authentication Level 2, py_webauthn) as a professional's second factor.

Registration happens after a password + TOTP login (the session proves the account), login after a
password check. User verification (PIN or biometrics on the authenticator) is required, so a passkey
login is the strong path (`assurance.PASSKEY`). Challenges are random, single use, five minutes long,
stored with the account and purpose they were issued for, and found back by the value the
authenticator echoes in `clientDataJSON`; the signature counter is kept and must grow when the
authenticator maintains one (a clone shows a counter that goes back).

The relying party id is the issuer's host and the expected origin the issuer's origin.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import webauthn
from sqlalchemy import Connection, delete, insert, select, update
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from socle.trust.auth.accounts import Account
from socle.trust.auth.passwords import token_hash
from socle.trust.auth.schema import auth_challenge, auth_webauthn

CHALLENGE_TTL = 300
RP_NAME = "Socle"


class PasskeyRefused(Exception):
    pass


@dataclass(frozen=True)
class Passkey:
    credential_id: str
    created_at: int
    sign_count: int


def relying_party(issuer: str) -> tuple[str, str]:
    """(rp id, expected origin) for an issuer URL."""
    parts = urlsplit(issuer)
    return parts.hostname or "localhost", f"{parts.scheme}://{parts.netloc}"


def passkeys_of(conn: Connection, account_id: str) -> list[Passkey]:
    rows = conn.execute(
        select(auth_webauthn)
        .where(auth_webauthn.c.account_id == account_id)
        .order_by(auth_webauthn.c.created_at)
    )
    return [Passkey(r.credential_id, r.created_at, r.sign_count) for r in rows]


def remove_passkey(conn: Connection, account_id: str, credential_id: str) -> bool:
    result = conn.execute(
        delete(auth_webauthn).where(
            auth_webauthn.c.account_id == account_id, auth_webauthn.c.credential_id == credential_id
        )
    )
    return result.rowcount > 0


def _new_challenge(conn: Connection, account_id: str, purpose: str) -> bytes:
    challenge = secrets.token_bytes(32)
    encoded = bytes_to_base64url(challenge)
    now = int(time.time())
    conn.execute(delete(auth_challenge).where(auth_challenge.c.expires_at < now))
    conn.execute(
        insert(auth_challenge).values(
            challenge_hash=token_hash(encoded),
            account_id=account_id,
            purpose=purpose,
            challenge=encoded,
            expires_at=now + CHALLENGE_TTL,
        )
    )
    return challenge


def _take_challenge(conn: Connection, credential: dict[str, Any], account_id: str, purpose: str) -> bytes:
    """The stored challenge this credential answers (deleted: single use), or PasskeyRefused."""
    try:
        raw = str(credential["response"]["clientDataJSON"])
        client_data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        echoed = str(client_data["challenge"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PasskeyRefused("Réponse de l'authentificateur illisible.") from exc
    row = conn.execute(
        select(auth_challenge).where(auth_challenge.c.challenge_hash == token_hash(echoed))
    ).first()
    if row is None:
        raise PasskeyRefused("Défi inconnu ou déjà utilisé : recommencez.")
    conn.execute(delete(auth_challenge).where(auth_challenge.c.challenge_hash == row.challenge_hash))
    if row.account_id != account_id or row.purpose != purpose or row.expires_at < int(time.time()):
        raise PasskeyRefused("Défi expiré : recommencez.")
    return webauthn.base64url_to_bytes(row.challenge)


def registration_options(conn: Connection, account: Account, issuer: str) -> str:
    """PublicKeyCredentialCreationOptions (JSON) for a new passkey of this account."""
    rp_id, _origin = relying_party(issuer)
    existing = [
        PublicKeyCredentialDescriptor(id=webauthn.base64url_to_bytes(p.credential_id))
        for p in passkeys_of(conn, account.account_id)
    ]
    identity = account.claims.get("identity") or {}
    display = " ".join(str(identity.get(k, "")) for k in ("given_name", "family_name")).strip()
    options = webauthn.generate_registration_options(
        rp_id=rp_id,
        rp_name=RP_NAME,
        user_name=account.login,
        user_id=account.account_id.encode(),
        user_display_name=display or account.login,
        challenge=_new_challenge(conn, account.account_id, "register"),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=existing,
    )
    return webauthn.options_to_json(options)


def register(conn: Connection, account: Account, issuer: str, credential: dict[str, Any]) -> Passkey:
    rp_id, origin = relying_party(issuer)
    challenge = _take_challenge(conn, credential, account.account_id, "register")
    try:
        verified = webauthn.verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
            require_user_verification=True,
        )
    except (WebAuthnException, KeyError, TypeError, ValueError) as exc:
        raise PasskeyRefused(f"Clé d'accès refusée : {exc}") from exc
    credential_id = bytes_to_base64url(verified.credential_id)
    exists = conn.execute(
        select(auth_webauthn.c.credential_id).where(auth_webauthn.c.credential_id == credential_id)
    ).first()
    if exists is not None:
        raise PasskeyRefused("Cette clé d'accès est déjà enregistrée.")
    now = int(time.time())
    conn.execute(
        insert(auth_webauthn).values(
            credential_id=credential_id,
            account_id=account.account_id,
            public_key=bytes_to_base64url(verified.credential_public_key),
            sign_count=verified.sign_count,
            created_at=now,
        )
    )
    return Passkey(credential_id, now, verified.sign_count)


def authentication_options(conn: Connection, account: Account, issuer: str) -> str:
    rp_id, _origin = relying_party(issuer)
    allowed = [
        PublicKeyCredentialDescriptor(id=webauthn.base64url_to_bytes(p.credential_id))
        for p in passkeys_of(conn, account.account_id)
    ]
    if not allowed:
        raise PasskeyRefused("Aucune clé d'accès enregistrée pour ce compte.")
    options = webauthn.generate_authentication_options(
        rp_id=rp_id,
        challenge=_new_challenge(conn, account.account_id, "login"),
        allow_credentials=allowed,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return webauthn.options_to_json(options)


def authenticate(conn: Connection, account: Account, issuer: str, credential: dict[str, Any]) -> None:
    """Verify an assertion for this account's passkey, and advance its signature counter."""
    rp_id, origin = relying_party(issuer)
    challenge = _take_challenge(conn, credential, account.account_id, "login")
    row = conn.execute(
        select(auth_webauthn).where(
            auth_webauthn.c.credential_id == str(credential.get("id", "")),
            auth_webauthn.c.account_id == account.account_id,
        )
    ).first()
    if row is None:
        raise PasskeyRefused("Clé d'accès inconnue pour ce compte.")
    try:
        verified = webauthn.verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
            credential_public_key=webauthn.base64url_to_bytes(row.public_key),
            credential_current_sign_count=row.sign_count,
            require_user_verification=True,
        )
    except (WebAuthnException, KeyError, TypeError, ValueError) as exc:
        raise PasskeyRefused(f"Clé d'accès refusée : {exc}") from exc
    conn.execute(
        update(auth_webauthn)
        .where(auth_webauthn.c.credential_id == row.credential_id)
        .values(sign_count=verified.new_sign_count)
    )
