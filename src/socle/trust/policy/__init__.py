"""The access policy: principals → a denial or a store filter, patient choices as Consent, break-glass.

`decide(conn, principal)` is called once per request (api/http.py); its `access` filter is what the
store ANDs into every read, and `writes.enforce(decision)` makes the one write check apply to every
write of the request. See data/trust/README.md for the rules and the access matrix.
"""

from __future__ import annotations

from socle.trust.policy import writes
from socle.trust.policy.decide import Decision, decide, decide_or_deny_all

__all__ = ["Decision", "decide", "decide_or_deny_all", "writes"]
