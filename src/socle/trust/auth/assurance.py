"""How strong a login was: the `acr` and `amr` of ID tokens, access tokens and sessions.

Pro Santé Connect asks for and returns the eIDAS level in `acr` (`eidas1`, the only value its ANS
Keycloak connector knows: shared/specs/auth.md §3). Socle keeps that vocabulary and adds one level
for the e-CPS-like path, so that a relying party can ask for it with `acr_values`:

| login | acr | amr (RFC 8176) |
|---|---|---|
| password + TOTP (professional or citizen) | `eidas1` | `pwd otp mfa` |
| password + one-time code by e-mail (citizen) | `eidas1` | `pwd mail` (`mail`: Socle's name) |
| password + passkey with user verification (WebAuthn) | `eidas2` | `pwd hwk user mfa` |
| federated login (external provider) | upstream `acr` if one of these, else `eidas1` | `fed` + upstream amr |

`eidas2` is not a PSC value: PSC carries its strongest path (CPS card, e-CPS) in its own
`Palier_Authentification` claim. A passkey is a hardware-bound key unlocked by PIN or biometrics, so
it is the closest Socle has to e-CPS (possession + inherence/knowledge, phishing resistant).
"""

from __future__ import annotations

from typing import Any

LEVELS = ("eidas1", "eidas2")  # weakest first

TOTP = ("eidas1", ["pwd", "otp", "mfa"])
MAIL_CODE = ("eidas1", ["pwd", "mail"])
PASSKEY = ("eidas2", ["pwd", "hwk", "user", "mfa"])


def federated(upstream_claims: dict[str, Any]) -> tuple[str, list[str]]:
    acr = str(upstream_claims.get("acr") or "")
    amr = upstream_claims.get("amr")
    extra = [str(a) for a in amr] if isinstance(amr, list) else []
    return (acr if acr in LEVELS else LEVELS[0]), ["fed", *[a for a in extra if a != "fed"]]


def meets(acr: str, wanted: str | None) -> bool:
    """Whether a login at `acr` satisfies a requested level (unknown requests are not enforced)."""
    if not wanted or wanted not in LEVELS:
        return True
    return acr in LEVELS and LEVELS.index(acr) >= LEVELS.index(wanted)
