"""A TOTP code opens one login: replaying it within its 30 s window is refused (RFC 6238 §5.2)."""

from __future__ import annotations

import time

import pyotp
from sqlalchemy import Engine

from socle.config import Settings
from socle.trust.auth.accounts import create_account, use_totp, verify_totp

SECRET = pyotp.random_base32()


def test_a_code_is_accepted_once_then_only_newer_codes(engine: Engine) -> None:
    settings = Settings(argon2_time_cost=1, argon2_memory_kib=1024)
    totp = pyotp.TOTP(SECRET)
    with engine.begin() as conn:
        account = create_account(
            conn,
            settings,
            kind="professional",
            login="810000000001",
            password=None,
            claims={},
            totp_secret=SECRET,
        )
        now = totp.now()
        assert verify_totp(account, now)  # the enrolment check stores nothing
        assert use_totp(conn, account, now)
        assert not use_totp(conn, account, now)  # the same code again: refused
        assert not use_totp(conn, account, totp.at(time.time() - 30))  # an older one too
        assert not use_totp(conn, account, "000000" if now != "000000" else "111111")
        assert use_totp(conn, account, totp.at(time.time() + 30))  # the next step (clock drift) is newer
