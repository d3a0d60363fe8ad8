"""Server time for `meta.lastUpdated` and history ordering, in integer microseconds (UTC)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

_lock = threading.Lock()
_last = 0


def now_us() -> int:
    """Strictly increasing within the process, so versions written in sequence never tie."""
    global _last
    with _lock:
        value = max(time.time_ns() // 1000, _last + 1)
        _last = value
        return value


def to_instant(us: int) -> str:
    """FHIR `instant` (https://hl7.org/fhir/R4/datatypes.html#instant) with microseconds, in UTC."""
    return datetime.fromtimestamp(us / 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_instant(text: str) -> int:
    """Parse a FHIR instant/dateTime/date given by a client (`_since`, `If-Modified-Since`) to µs."""
    value = text.strip().replace("Z", "+00:00")
    if len(value) == 4:
        value += "-01-01"
    elif len(value) == 7:
        value += "-01"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1_000_000)


def from_http_date(text: str) -> int:
    """Parse an RFC 9110 HTTP-date (If-Modified-Since) to µs."""
    from email.utils import parsedate_to_datetime

    return int(parsedate_to_datetime(text).timestamp() * 1_000_000)


def to_http_date(us: int) -> str:
    from email.utils import format_datetime

    return format_datetime(datetime.fromtimestamp(us // 1_000_000, UTC), usegmt=True)


def instant_range(text: str) -> tuple[int, int]:
    """The [low, high) µs range a FHIR date/dateTime denotes, at its own precision (`_at`)."""
    value = text.strip()
    low = from_instant(value)
    if len(value) == 4:
        high = from_instant(f"{int(value) + 1:04d}")
    elif len(value) == 7:
        year, month = int(value[:4]), int(value[5:7])
        high = from_instant(f"{year + month // 12:04d}-{month % 12 + 1:02d}")
    elif len(value) == 10:
        high = low + 86_400_000_000
    elif "." in value:
        high = low + 1
    else:
        high = low + 1_000_000
    return low, high
