"""What `edge-pose status` prints: find the status file, ask systemd, judge, print; redraw.

Cheap to import and to run: it never opens the camera or the model, so nothing here imports
OpenCV, LiteRT or paho (the config, and with it pydantic, is imported only inside
:func:`report_status`). Exit codes: 0 healthy, 1 degraded, 3 not running (docs/status.md).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from edge_pose.errors import EX_NOT_RUNNING
from edge_pose.service.health import evaluate, systemd_state
from edge_pose.service.status import find_status
from edge_pose.service.status_dir import other_users_dirs, status_dirs
from edge_pose.service.status_text import format_status


@dataclass
class _Settings:
    dirs: list[Path]
    min_fps: float | None
    note: str | None


def report_status(config: Path | None, *, as_json: bool, interval: float | None) -> int:
    """Print the status once (``interval`` None) or every ``interval`` seconds until Ctrl-C;
    returns the exit code of the last verdict."""
    settings = _settings(config)
    if settings.note:
        print(f"edge-pose: warning: {settings.note}", file=sys.stderr, flush=True)
    if interval is None:
        code, text = _check(settings, as_json)
        _emit(text)
        return code
    tty = sys.stdout.isatty()
    code = EX_NOT_RUNNING
    first = True
    try:
        while True:
            code, text = _check(settings, as_json, color_ok=tty)
            if as_json:
                _emit(text)
            elif tty:
                stamp = time.strftime("%H:%M:%S")
                header = f"every {interval:g} s: edge-pose status   {stamp}   (Ctrl-C to stop)"
                _emit("\x1b[H\x1b[2J" + header + "\n\n" + text)
            else:
                _emit(text if first else "\n" + text)
            first = False
            time.sleep(interval)
    except KeyboardInterrupt:
        return code


def _check(settings: _Settings, as_json: bool, *, color_ok: bool | None = None) -> tuple[int, str]:
    lookup = find_status(settings.dirs)
    doc = lookup.raw  # as the file has it: shown, judged and printed as written
    systemd = systemd_state()
    now = time.time()
    missing = None
    if doc is None:
        where = ", ".join(str(d) for d in lookup.searched) or "no directory"
        missing = f"no status file in {where}"
        if lookup.problems:
            missing += " (unusable: " + "; ".join(lookup.problems) + ")"
    verdict = evaluate(doc, now, systemd, min_fps=settings.min_fps, missing=missing)
    if as_json:
        payload = {
            "verdict": verdict.to_json(),
            "status": doc,
            "systemd": systemd,
            "file": str(lookup.path) if lookup.path else None,
            "searched": [str(d) for d in lookup.searched],
        }
        return verdict.code, json.dumps(payload, default=str)
    color = _use_color() if color_ok is None else color_ok and _use_color()
    text = format_status(
        doc,
        verdict,
        systemd,
        now=now,
        path=lookup.path,
        searched=lookup.searched,
        ignored=lookup.problems if doc is not None else (),
        color=color,
        owner=lookup.owner,
    )
    return verdict.code, text


def _settings(path: Path | None) -> _Settings:
    """Status directories and min_fps from the config; an unusable config falls back to the
    defaults (keeping status.dir / status.min_fps if the TOML has them) and says so."""
    from edge_pose.config import config_path, load_config

    try:
        cfg = load_config(path)
    except Exception as exc:  # status must work whatever is wrong with the config
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        directory, min_fps = _salvage_status_section(config_path(path))
        using = f"status.dir = {directory!r} from it" if directory else "the default places"
        note = f"config not usable ({message}); looking for the status file in {using}"
        return _Settings(_dirs_to_search(directory), min_fps or None, note)
    min_fps = cfg.status.min_fps
    return _Settings(_dirs_to_search(cfg.status.dir), min_fps if min_fps > 0 else None, None)


def _dirs_to_search(configured: str) -> list[Path]:
    """Where the daemon may write; as root without a configured status.dir, also the places
    other users' runs write to (after the service's own), so `sudo edge-pose status` finds a
    run started by a user."""
    dirs = status_dirs(configured)
    if configured or os.geteuid() != 0:
        return dirs
    return list(dict.fromkeys([*dirs, *other_users_dirs()]))


def _salvage_status_section(path: Path | None) -> tuple[str, float]:
    """``[status] dir`` and ``min_fps`` from a config that fails validation elsewhere."""
    if path is None:
        return "", 0.0
    try:
        import tomllib

        section = tomllib.loads(path.read_text(encoding="utf-8")).get("status", {})
    except Exception:
        return "", 0.0
    if not isinstance(section, dict):
        return "", 0.0
    directory = section.get("dir")
    min_fps = section.get("min_fps")
    return (
        directory if isinstance(directory, str) else "",
        float(min_fps)
        if isinstance(min_fps, int | float) and not isinstance(min_fps, bool) and min_fps > 0
        else 0.0,
    )


def _use_color() -> bool:
    return (
        sys.stdout.isatty()
        and not os.environ.get("NO_COLOR")
        and os.environ.get("TERM", "") not in ("", "dumb")
    )


_ASCII = str.maketrans({"●": "*", "○": "o", "—": "-", "°": ""})


def _emit(text: str) -> None:
    """Print, degrading ● ○ — ° to ASCII where the terminal's encoding cannot show them."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        text = text.translate(_ASCII).encode(encoding, "replace").decode(encoding)
    print(text, flush=True)
