"""Fields of a status document read defensively, and durations written for people.

The status file is another process's output and may come from another version: every reader
here returns None (or an empty dict) for a missing or mistyped value instead of raising.
Shared by the health verdict (edge_pose.service.health) and the text output
(edge_pose.service.status_text).
"""

from __future__ import annotations

import math
from typing import Any


def number(value: object) -> float | None:
    """A finite int or float as float; None for anything else (bools included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def parse_int(text: str | None) -> int | None:
    """An integer from systemctl's text output; None when empty or not a number."""
    try:
        return int(text) if text not in (None, "") else None
    except ValueError:
        return None


def parse_hex(value: object) -> int | None:
    """An int, or a hexadecimal string such as get_throttled's "0x50005"."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value, 16)
        except ValueError:
            return None
    return None


def as_dict(value: object) -> dict[str, Any]:
    """A section of the document; empty when it is missing or not an object."""
    return value if isinstance(value, dict) else {}


def duration(seconds: float) -> str:
    """3d 4h 12m / 4h 12m / 5m 3s / 42 s / 0.4 s."""
    if seconds < 10:
        return f"{seconds:.1f} s" if seconds < 1 else f"{seconds:.0f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s"


def ago(seconds: float) -> str:
    return f"{duration(seconds)} ago"
