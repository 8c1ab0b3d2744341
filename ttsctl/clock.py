"""UTC ISO 8601 time stamps, the one format of the release state and the audit log."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def stamp(moment: datetime | None = None) -> str:
    """``2025-11-26T06:30:00.123Z``: sortable as text, milliseconds for short runs."""
    moment = (moment or utc_now()).astimezone(timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse(text: str, now: datetime | None = None) -> datetime:
    """A time given by a user: ISO 8601 (UTC unless it says otherwise) or an age such as
    ``30m``, ``2h``, ``7d`` meaning that long ago."""
    relative = _RELATIVE.match(text)
    if relative:
        amount, unit = float(relative.group(1)), relative.group(2)
        return (now or utc_now()) - timedelta(**{_UNITS[unit]: amount})
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {text!r} (use ISO 8601 such as 2025-11-26T06:00 "
                         "or an age such as 30m, 2h, 7d)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def from_stamp(text: str | None) -> datetime | None:
    return parse(text) if text else None


def parse_stamp(text: str | None) -> datetime | None:
    """A machine's time stamp (ours, Alertmanager's RFC 3339), None when absent or unreadable."""
    try:
        return from_stamp(text)
    except ValueError:
        return None


def seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (from_stamp(end) - from_stamp(start)).total_seconds()


def age(text: str | None, now: datetime | None = None) -> str:
    """How long ago, in words a tired operator reads at a glance: ``42 s``, ``5 min``, ``3 h``."""
    if not text:
        return "?"
    seconds = max(0.0, ((now or utc_now()) - from_stamp(text)).total_seconds())
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"
