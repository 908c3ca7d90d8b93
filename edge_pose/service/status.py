"""status.json: what the daemon is doing, readable without touching it.

The daemon hands :class:`StatusWriter` one dict about once a second; the writer replaces
``status.json`` atomically (temp file in the same directory + ``os.replace``), so a reader sees the
previous document or the new one, never a mix. Readers find the newest usable document with
:func:`find_status`; edge_pose.service.health judges it and `edge-pose status`
(edge_pose.service.status_command) prints it. The file format is documented in docs/status.md.

Decisions:

- No fsync. The file lives in /run (tmpfs, where fsync does nothing) or another runtime directory,
  describes a running process and means nothing after a power cut; on an SD-card fallback
  directory an fsync every second would wear the card and can stall for tens of milliseconds.
  Atomicity towards concurrent readers comes from the rename alone.
- A clean stop *keeps* the file with ``"state": "stopped"`` (the daemon writes it last), so
  `status` can say when it stopped and with which error. Under systemd the RuntimeDirectory is
  removed when the unit stops, so there the file simply disappears.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_pose.service.health import daemon_alive

log = logging.getLogger(__name__)

STATUS_FILE = "status.json"
FORMAT_VERSION = 1
STATES = ("starting", "running", "stopping", "stopped")
MAX_STATUS_BYTES = 1 << 20


# --------------------------------------------------------------------------- writing


class StatusWriter:
    """Writes ``<directory>/status.json`` atomically; cheap, thread-safe, never raises.

    ``write(doc)`` returns True when the file was replaced. A failure (directory not writable,
    disk full, a value JSON cannot hold) is logged once as a warning, then only at debug level
    until a write succeeds again; the pipeline never sees an exception. numpy scalars, Paths and
    other odd values are converted; NaN and infinities become null (they are not JSON).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / STATUS_FILE
        self._tmp = self.directory / f".{STATUS_FILE}.{os.getpid()}.tmp"
        self._lock = threading.Lock()
        self._dir_checked = False
        self._failing = False

    def write(self, doc: dict[str, Any]) -> bool:
        try:
            data = encode_status(doc)
            with self._lock:
                self._replace(data)
        except Exception as exc:  # never into the pipeline
            if not self._failing:
                self._failing = True
                log.warning(
                    "cannot write the status file %s: %s (`edge-pose status` will not see "
                    "this daemon; further failures are logged at debug level)",
                    self.path,
                    _describe_error(exc),
                )
            else:
                log.debug("status file %s: %s", self.path, _describe_error(exc))
            return False
        if self._failing:
            self._failing = False
            log.info("status file %s is written again", self.path)
        return True

    def remove(self) -> None:
        """Delete the file (and a leftover temp file); for tests and uninstalls. Never raises."""
        with self._lock:
            for path in (self.path, self._tmp):
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    log.debug("cannot remove %s: %s", path, _describe_error(exc))

    def _replace(self, data: bytes) -> None:
        if not self._dir_checked:
            self._ensure_directory()
        try:
            fd = self._open_tmp()
        except FileNotFoundError:  # the directory vanished (rm -rf, tmpfiles clean-up)
            self._ensure_directory()
            fd = self._open_tmp()
        try:
            os.fchmod(fd, 0o644)  # readable by `edge-pose status` whatever the service's UMask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            os.close(fd)
            _unlink_quietly(self._tmp)
            raise
        os.close(fd)
        try:
            os.replace(self._tmp, self.path)
        except BaseException:
            _unlink_quietly(self._tmp)
            raise

    def _open_tmp(self) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            return os.open(self._tmp, flags, 0o644)
        except FileExistsError:  # left over by an earlier process with our pid
            os.unlink(self._tmp)
            return os.open(self._tmp, flags, 0o644)

    def _ensure_directory(self) -> None:
        """Create the directory (0755) if needed and refuse one another user could tamper with
        (matters for the /tmp fallback)."""
        try:
            os.mkdir(self.directory, 0o755)
        except FileNotFoundError:
            os.makedirs(self.directory, 0o755, exist_ok=True)
            os.chmod(self.directory, 0o755)
        except FileExistsError:
            pass
        else:
            os.chmod(self.directory, 0o755)  # mkdir's mode is masked by the umask
        st = os.stat(self.directory)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(f"{self.directory} is not a directory")
        if st.st_uid not in (os.geteuid(), 0):
            raise PermissionError(
                f"{self.directory} belongs to another user (uid {st.st_uid}); "
                "set status.dir to a directory of the service user"
            )
        if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
            raise PermissionError(f"{self.directory} is writable by every user")
        self._dir_checked = True


def encode_status(doc: dict[str, Any]) -> bytes:
    """The bytes written to status.json: one JSON line, valid for any JSON reader (no NaN)."""
    try:
        text = json.dumps(doc, allow_nan=False, default=_json_default)
    except ValueError:  # NaN or infinity somewhere: replace them with null
        text = json.dumps(_finite(doc), allow_nan=False, default=_json_default)
    return (text + "\n").encode("utf-8")


def _json_default(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if not isinstance(value, int | float | str | bool | type(None)):
        value = _json_default(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} ({exc.filename})" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


# --------------------------------------------------------------------------- reading


class StatusFileError(Exception):
    """A status.json that cannot be used; the message says why."""


@dataclass
class StatusLookup:
    """What :func:`find_status` found: the document, its file, where it looked and what was
    wrong with files it skipped (one line each)."""

    doc: dict[str, Any] | None
    path: Path | None
    searched: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def load_status_file(path: Path) -> dict[str, Any]:
    """One status.json -> dict; raises FileNotFoundError, or StatusFileError with the reason."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_STATUS_BYTES + 1)
    except FileNotFoundError:
        raise
    except PermissionError:
        raise StatusFileError(
            "permission denied (the service writes it readable for everyone: check the "
            "directory's permissions, or run with sudo)"
        ) from None
    except IsADirectoryError:
        raise StatusFileError("is a directory") from None
    except OSError as exc:
        raise StatusFileError(f"cannot read it: {exc.strerror}") from None
    if not data.strip():
        raise StatusFileError("empty file (not written by edge-pose, or a disk problem)")
    if len(data) > MAX_STATUS_BYTES:
        raise StatusFileError("larger than 1 MiB: not an edge-pose status file")
    try:
        doc = json.loads(data)
    except UnicodeDecodeError:
        raise StatusFileError("not UTF-8 text: corrupt") from None
    except json.JSONDecodeError as exc:
        raise StatusFileError(
            f"not valid JSON (line {exc.lineno}, column {exc.colno}): corrupt or partially "
            "written, so ignored"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("v"), int) or doc["v"] < 1:
        raise StatusFileError('not an edge-pose status document (no "v" version number)')
    if doc["v"] > FORMAT_VERSION:
        raise StatusFileError(
            f"status format v{doc['v']}, newer than this edge-pose reads (v{FORMAT_VERSION}): "
            "the service runs a newer edge-pose than this command; update it"
        )
    return doc


def find_status(dirs: Iterable[Path]) -> StatusLookup:
    """Look for status.json in ``dirs`` (in order). Returns the first document whose process is
    alive (and not stopped); when none is, the first readable one. Unreadable files are skipped
    and reported in ``problems``."""
    lookup = StatusLookup(None, None)
    fallback: tuple[dict[str, Any], Path] | None = None
    for directory in dirs:
        directory = Path(directory)
        lookup.searched.append(directory)
        path = directory / STATUS_FILE
        try:
            doc = load_status_file(path)
        except FileNotFoundError:
            continue
        except NotADirectoryError:
            lookup.problems.append(f"{directory}: not a directory")
            continue
        except StatusFileError as exc:
            lookup.problems.append(f"{path}: {exc}")
            continue
        if doc.get("state") != "stopped" and daemon_alive(doc):
            lookup.doc, lookup.path = doc, path
            return lookup
        if fallback is None:
            fallback = (doc, path)
    if fallback is not None:
        lookup.doc, lookup.path = fallback
    return lookup


def read_status(dirs: Iterable[Path]) -> tuple[dict[str, Any] | None, Path | None]:
    """The status document to report and its file, or (None, None); see :func:`find_status`."""
    lookup = find_status(dirs)
    return lookup.doc, lookup.path
