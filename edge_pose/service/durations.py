"""Durations written for people: `3d 4h 12m`, `5m 3s`, `0.4 s`, `42 s ago`.

Shared by the health verdict's reasons (edge_pose.service.health) and the text of
`edge-pose status` (edge_pose.service.status_text), so both say a time the same way.
"""

from __future__ import annotations


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
