"""Where status.json lives: one list of places, used by the daemon and by every reader.

The daemon writes in ``status.dir`` when the config sets it, else in the first of
``$RUNTIME_DIRECTORY`` (systemd's ``RuntimeDirectory=``), ``/run/edge-pose`` (when this user may
write or create it), ``$XDG_RUNTIME_DIR/edge-pose`` and ``/tmp/edge-pose-<uid>``. Readers
(`edge-pose status`, `config set --reload`) look through all of them in the same order, because
a user who runs `status` often cannot write where the service writes but can read it. Both come
from :func:`status_dirs`, so the writer and the readers can never disagree about the places.

Per-user places (``/run/user/<uid>/edge-pose``, ``/tmp/edge-pose-<uid>``) are named for their
user: :func:`named_uid` tells whose, which the readers' trust rules rely on, and
:func:`other_users_dirs` lists them for root's `status`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

DIR_NAME = "edge-pose"  # /run/edge-pose, /run/user/<uid>/edge-pose, /tmp/edge-pose-<uid>
SYSTEM_STATUS_DIR = Path("/run") / DIR_NAME


def status_dirs(configured: str = "") -> list[Path]:
    """Every place status.json may be, in order of preference: ``[configured]`` when
    ``status.dir`` is set (``~`` expanded), else the default places (see the module doc)."""
    if configured:
        return [Path(configured).expanduser()]
    found: list[Path] = []
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:
        found.append(Path(runtime))
    found.append(SYSTEM_STATUS_DIR)
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(xdg):
        found.append(Path(xdg) / DIR_NAME)
    found.append(Path(tempfile.gettempdir()) / f"{DIR_NAME}-{os.getuid()}")
    return list(dict.fromkeys(found))


def writer_status_dir(configured: str = "") -> Path:
    """Where the daemon writes: the first of :func:`status_dirs`, or the second when the first
    is /run/edge-pose and this user can neither write nor create it. Creates nothing."""
    dirs = status_dirs(configured)
    if len(dirs) > 1 and dirs[0] == SYSTEM_STATUS_DIR and not _writable_or_creatable(dirs[0]):
        return dirs[1]
    return dirs[0]


def _writable_or_creatable(path: Path) -> bool:
    if path.is_dir():
        return os.access(path, os.W_OK | os.X_OK)
    return not path.exists() and os.access(path.parent, os.W_OK | os.X_OK)


def named_uid(directory: Path) -> int | None:
    """The user a per-user status directory is named for: ``.../edge-pose-<uid>`` (the temp
    fallback) or ``.../<uid>/edge-pose`` ($XDG_RUNTIME_DIR); None for any other directory."""
    suffix = directory.name.removeprefix(f"{DIR_NAME}-")
    if suffix != directory.name and suffix.isdigit():
        return int(suffix)
    if directory.name == DIR_NAME and directory.parent.name.isdigit():
        return int(directory.parent.name)
    return None


def other_users_dirs(
    run_user: Path = Path("/run/user"), tmp: Path | None = None
) -> list[Path]:
    """Where other users' runs write their status (``$XDG_RUNTIME_DIR/edge-pose`` and the temp
    fallback), for root's `status`: the user behind sudo first, then by uid."""
    tmp = Path(tempfile.gettempdir()) if tmp is None else tmp
    found = [*run_user.glob(f"*/{DIR_NAME}"), *tmp.glob(f"{DIR_NAME}-*")]
    sudo = os.environ.get("SUDO_UID", "")
    owned = [(uid, d) for d in found if (uid := named_uid(d)) is not None]
    owned.sort(key=lambda item: (str(item[0]) != sudo, item[0], str(item[1])))
    return [d for _, d in owned]
