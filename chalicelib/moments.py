"""Reading the times that files written by other programs hold (status files, NeuroCAAS billing
records): one lenient rule, so no odd spelling of a time can fail a reader."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

MISSING_TIMES = {"", "n/a", "na", "none", "null", "-"}


def parse_moment(value: Any) -> datetime | None:
    """An ISO time ("Z" accepted; without a zone it is UTC), a "YYYY-MM-DD HH:MM:SS" time or an
    epoch in seconds; "N/A" and the like, and anything unreadable, are None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(value, timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    text = str(value).strip()
    if text.lower() in MISSING_TIMES:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
