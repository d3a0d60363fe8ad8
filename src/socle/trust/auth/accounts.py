"""Accounts of people (professionals, citizens), password checks with progressive lockout, second
factors (TOTP), delegations, and the login flow / session records.

Lockout (ANSSI guidance on password authentication, OWASP ASVS V2.2): after 5 failures on one
account, or 20 from one client address, each further failure locks the key for 30 s doubled per
failure, capped at one hour. A locked key is refused before the password is even checked, and the
same message is shown for unknown accounts and wrong passwords.
"""

from __future__ import annotations

import hmac
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyotp
from sqlalchemy import Connection, delete, insert, or_, select, update

from socle.config import Settings
from socle.trust.auth.passwords import hash_password, new_token, token_hash, verify_password
from socle.trust.auth.schema import (
    auth_account,
    auth_attempt,
    auth_delegation,
    auth_flow,
    auth_outbox,
    auth_session,
)

ACCOUNT_FREE_FAILURES = 5
ADDRESS_FREE_FAILURES = 20
BASE_LOCK = 30
MAX_LOCK = 3600
FLOW_TTL = 900
SESSION_TTL = 8 * 3600


@dataclass(frozen=True)
class Account:
    account_id: str
    kind: str
    login: str
    claims: dict[str, Any]
    totp_secret: str | None
    active: bool


def _account(row: Any) -> Account:
    return Account(row.account_id, row.kind, row.login, row.claims, row.totp_secret, row.active)


def create_account(
    conn: Connection,
    settings: Settings,
    *,
    kind: str,
    login: str,
    password: str | None,
    claims: dict[str, Any],
    totp_secret: str | None = None,
    active: bool = True,
) -> Account:
    account_id = uuid.uuid4().hex
    conn.execute(
        insert(auth_account).values(
            account_id=account_id,
            kind=kind,
            login=login,
            password_hash=hash_password(settings, password) if password else None,
            totp_secret=totp_secret,
            claims=claims,
            active=active,
            created_at=int(time.time()),
        )
    )
    return Account(account_id, kind, login, claims, totp_secret, active)


def get_account(conn: Connection, account_id: str) -> Account | None:
    row = conn.execute(select(auth_account).where(auth_account.c.account_id == account_id)).first()
    return None if row is None else _account(row)


def find_account(conn: Connection, login: str) -> Account | None:
    row = conn.execute(select(auth_account).where(auth_account.c.login == login)).first()
    return None if row is None else _account(row)


class LoginRefused(Exception):
    def __init__(self, message: str, locked_for: int = 0) -> None:
        super().__init__(message)
        self.locked_for = locked_for


def check_password(
    conn: Connection, settings: Settings, kind: str, login: str, password: str, address: str
) -> Account:
    """The account if the password is right and neither the account nor the address is locked."""
    now = int(time.time())
    keys = [f"account:{login}", f"ip:{address}"]
    for key in keys:
        row = conn.execute(select(auth_attempt).where(auth_attempt.c.key == key)).first()
        if row is not None and row.locked_until > now:
            raise LoginRefused("Trop d'essais infructueux : réessayez plus tard.", row.locked_until - now)
    row = conn.execute(select(auth_account).where(auth_account.c.login == login)).first()
    stored = row.password_hash if row is not None and row.kind == kind and row.active else None
    if not verify_password(settings, stored, password) or row is None:
        _fail(conn, f"account:{login}", ACCOUNT_FREE_FAILURES, now)
        _fail(conn, f"ip:{address}", ADDRESS_FREE_FAILURES, now)
        raise LoginRefused("Identifiant ou mot de passe incorrect.")
    conn.execute(delete(auth_attempt).where(auth_attempt.c.key == f"account:{login}"))
    return _account(row)


def _fail(conn: Connection, key: str, free: int, now: int) -> None:
    row = conn.execute(select(auth_attempt).where(auth_attempt.c.key == key)).first()
    failures = (row.failures if row else 0) + 1
    locked_until = now + min(MAX_LOCK, BASE_LOCK * 2 ** (failures - free - 1)) if failures > free else 0
    values = {"failures": failures, "locked_until": locked_until, "updated_at": now}
    if row is None:
        conn.execute(insert(auth_attempt).values(key=key, **values))
    else:
        conn.execute(update(auth_attempt).where(auth_attempt.c.key == key).values(**values))


def verify_totp(account: Account, code: str) -> bool:
    """RFC 6238 (pyotp), 30 s steps, one step of drift either way (enrolment check: nothing stored)."""
    return _totp_step(account, code) is not None


def use_totp(conn: Connection, account: Account, code: str) -> bool:
    """A login's TOTP check: the code must be right AND newer than the last one accepted, so a code
    seen over someone's shoulder (or replayed) is refused within its window (RFC 6238 §5.2). The
    conditional UPDATE makes two concurrent uses of one code succeed at most once."""
    step = _totp_step(account, code)
    if step is None:
        return False
    newer = or_(auth_account.c.totp_last_step.is_(None), auth_account.c.totp_last_step < step)
    claimed = conn.execute(
        update(auth_account)
        .where(auth_account.c.account_id == account.account_id, newer)
        .values(totp_last_step=step)
    )
    return claimed.rowcount == 1


def _totp_step(account: Account, code: str) -> int | None:
    """The time step whose code is `code` (now, or one step either side), None if none matches."""
    if not account.totp_secret:
        return None
    totp = pyotp.TOTP(account.totp_secret)
    now = time.time()
    for drift in (0, -1, 1):
        at = now + drift * totp.interval
        if hmac.compare_digest(totp.at(at), code.strip()):
            return totp.timecode(datetime.fromtimestamp(at, tz=UTC))
    return None


# -- delegations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delegation:
    delegation_id: str
    patient: str
    relationship: str  # guardian | helper
    scope: str


def add_delegation(conn: Connection, account_id: str, patient: str, relationship: str, scope: str) -> None:
    conn.execute(
        insert(auth_delegation).values(
            delegation_id=uuid.uuid4().hex,
            account_id=account_id,
            patient=patient,
            relationship=relationship,
            scope=scope,
        )
    )


def delegations_of(conn: Connection, account_id: str) -> list[Delegation]:
    now = int(time.time())
    rows = conn.execute(select(auth_delegation).where(auth_delegation.c.account_id == account_id))
    return [
        Delegation(r.delegation_id, r.patient, r.relationship, r.scope)
        for r in rows
        if r.expires_at is None or r.expires_at > now
    ]


# -- flows and sessions -----------------------------------------------------------------------


def start_flow(conn: Connection, request: dict[str, Any]) -> str:
    flow = new_token()
    conn.execute(
        insert(auth_flow).values(
            flow_hash=token_hash(flow),
            kind="",
            request=request,
            csrf=new_token(),
            stage="password",
            expires_at=int(time.time()) + FLOW_TTL,
        )
    )
    return flow


def get_flow(conn: Connection, flow: str | None) -> Any:
    if not flow:
        return None
    row = conn.execute(select(auth_flow).where(auth_flow.c.flow_hash == token_hash(flow))).first()
    return row if row is not None and row.expires_at > int(time.time()) else None


def update_flow(conn: Connection, flow: str, **values: Any) -> None:
    conn.execute(update(auth_flow).where(auth_flow.c.flow_hash == token_hash(flow)).values(**values))


def end_flow(conn: Connection, flow: str) -> None:
    conn.execute(delete(auth_flow).where(auth_flow.c.flow_hash == token_hash(flow)))


def create_session(conn: Connection, account_id: str, acr: str, amr: list[str]) -> str:
    session = new_token()
    now = int(time.time())
    conn.execute(
        insert(auth_session).values(
            session_hash=token_hash(session),
            account_id=account_id,
            acr=acr,
            amr=amr,
            auth_time=now,
            expires_at=now + SESSION_TTL,
        )
    )
    return session


def end_session(conn: Connection, session: str) -> None:
    conn.execute(delete(auth_session).where(auth_session.c.session_hash == token_hash(session)))


def send_message(conn: Connection, settings: Settings, recipient: str, subject: str, body: str) -> None:
    """The delivery interface: the local outbox table (demo), or SMTP (`SOCLE_DELIVERY=smtp`, to
    `SOCLE_SMTP_HOST:PORT`, optional STARTTLS and login; tests use a local aiosmtpd server)."""
    if settings.delivery == "smtp":
        import smtplib
        from email.message import EmailMessage

        message = EmailMessage()
        message["From"] = settings.smtp_sender
        message["To"] = recipient
        message["Subject"] = subject
        message.set_content(body)
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=10) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password or "")
            smtp.send_message(message)
        return
    conn.execute(
        insert(auth_outbox).values(
            recipient=recipient, subject=subject, body=body, created_at=int(time.time())
        )
    )


def outbox(conn: Connection, recipient: str | None = None) -> list[dict[str, Any]]:
    query = select(auth_outbox).order_by(auth_outbox.c.message_id)
    if recipient:
        query = query.where(auth_outbox.c.recipient == recipient)
    return [dict(r._mapping) for r in conn.execute(query)]


# -- activation and second-factor enrolment ------------------------------------------------------

MIN_PASSWORD = 12  # ANSSI recommendation for a password alone guarding a second factor


def activate(
    conn: Connection, settings: Settings, login: str, code: str, password: str, address: str
) -> Account:
    """Check an activation code (single use, expiring, with the same lockout as passwords), set the
    password and activate the account."""
    now = int(time.time())
    keys = [f"activation:{login}", f"ip:{address}"]
    for key in keys:
        row = conn.execute(select(auth_attempt).where(auth_attempt.c.key == key)).first()
        if row is not None and row.locked_until > now:
            raise LoginRefused("Trop d'essais infructueux : réessayez plus tard.", row.locked_until - now)
    row = conn.execute(select(auth_account).where(auth_account.c.login == login)).first()
    expected = row.activation_hash if row is not None and not row.active else None
    given = token_hash(code.strip().replace(" ", ""))
    if (
        row is None
        or not expected
        or (row.activation_expires or 0) < now
        or not hmac.compare_digest(given, expected)
    ):
        _fail(conn, f"activation:{login}", ACCOUNT_FREE_FAILURES, now)
        _fail(conn, f"ip:{address}", ADDRESS_FREE_FAILURES, now)
        raise LoginRefused("Adresse ou code d'activation incorrect, ou code expiré.")
    conn.execute(
        update(auth_account)
        .where(auth_account.c.account_id == row.account_id)
        .values(
            password_hash=hash_password(settings, password),
            active=True,
            activation_hash=None,
            activation_expires=None,
        )
    )
    conn.execute(delete(auth_attempt).where(auth_attempt.c.key == f"activation:{login}"))
    return Account(row.account_id, row.kind, row.login, row.claims, row.totp_secret, True)


def set_totp(conn: Connection, account_id: str, secret: str) -> None:
    conn.execute(
        update(auth_account).where(auth_account.c.account_id == account_id).values(totp_secret=secret)
    )
