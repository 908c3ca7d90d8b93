"""status.json: what the daemon is doing, readable without touching it.

The daemon hands :class:`StatusWriter` one status document (edge_pose.service.document) about
once a second; the writer replaces
``status.json`` atomically (temp file in the same directory + ``os.replace``), so a reader sees the
previous document or the new one, never a mix. Readers find the newest usable document with
:func:`find_status`, as read and parsed into a typed document; edge_pose.service.health judges it
and `edge-pose status` (edge_pose.service.status_report) prints it as the file has it. Where the
file is comes from edge_pose.service.status_dir. The format is documented in docs/status.md and
edge_pose/schemas/status.schema.json.

Decisions:

- No fsync. The file lives in /run (tmpfs, where fsync does nothing) or another runtime directory,
  describes a running process and means nothing after a power cut; on an SD-card fallback
  directory an fsync every second would wear the card and can stall for tens of milliseconds.
  Atomicity towards concurrent readers comes from the rename alone.
- A clean stop *keeps* the file with ``"state": "stopped"`` (the daemon writes it last), so
  `status` can say when it stopped and with which error. Under systemd the RuntimeDirectory is
  removed when the unit stops, so there the file simply disappears.
- One writer per directory: a second run whose status would go where a live edge-pose run
  writes is refused (:class:`StatusDirBusy`) rather than overwriting the other run's document.
- Readers trust a document only in a directory, and a file, owned by root, the caller (also
  the user behind sudo) or the service user, or by the user a per-user directory is named for
  (``/tmp/edge-pose-<uid>``, ``/run/user/<uid>/edge-pose``): anyone else could fake health.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import pwd
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_pose.errors import EdgePoseError
from edge_pose.service.cmdline import is_edge_pose
from edge_pose.service.document import FORMAT_VERSION, StatusDocument, parse_document
from edge_pose.service.health import daemon_alive
from edge_pose.service.status_dir import named_uid

log = logging.getLogger(__name__)

STATUS_FILE = "status.json"
MAX_STATUS_BYTES = 1 << 20
SERVICE_USER = "edge-pose"  # the system user of the packaged service


# --------------------------------------------------------------------------- writing


class StatusDirBusy(EdgePoseError):
    """Another live edge-pose run writes its status document in the same directory."""


class StatusWriter:
    """Writes ``<directory>/status.json`` atomically; cheap, thread-safe, never raises.

    ``write(doc)`` returns True when the file was replaced. A failure (directory not writable,
    disk full, a value JSON cannot hold) is logged once as a warning, then only at debug level
    until a write succeeds again; the pipeline never sees an exception. numpy scalars, Paths and
    other odd values are converted; NaN and infinities become null (they are not JSON).

    Creating it raises :class:`StatusDirBusy` when the directory already holds the document of
    another live edge-pose run (not stopped, its pid alive and running edge-pose): two runs
    would overwrite each other's status every second and `status` would report a mix.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / STATUS_FILE
        self._tmp = self.directory / f".{STATUS_FILE}.{os.getpid()}.tmp"
        self._lock = threading.Lock()
        self._dir_checked = False
        self._failing = False
        self._refuse_a_second_writer()

    def _refuse_a_second_writer(self) -> None:
        try:
            doc = load_status_file(self.path)
        except (OSError, StatusFileError):  # nothing, or nothing usable: ours to replace
            return
        pid = doc.get("pid")
        if doc.get("state") == "stopped" or pid is None or pid == os.getpid():
            return
        if not daemon_alive(doc) or not is_edge_pose(pid):
            return
        raise StatusDirBusy(
            f"another edge-pose run (pid {pid}) writes its status to {self.path}: stop it "
            "(sudo systemctl stop edge-pose) or give this run its own directory "
            "(status.dir in its config)"
        )

    def write(self, doc: StatusDocument) -> bool:
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


def encode_status(doc: StatusDocument) -> bytes:
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
    """What :func:`find_status` found: the document (typed), its file and the file's owner
    (uid), where it looked and what was wrong with files it skipped (one line each). ``raw`` is
    the same document as read, every field as the file has it: what `edge-pose status` prints."""

    doc: StatusDocument | None
    path: Path | None
    searched: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    owner: int | None = None
    raw: dict[str, object] | None = None


def load_status_file(path: Path, owners: frozenset[int] | None = None) -> StatusDocument:
    """One status.json -> its document (:func:`~edge_pose.service.document.parse_document`);
    raises FileNotFoundError, or StatusFileError with the reason.

    Only a regular file is read (a symlink, FIFO or device is refused without being opened for
    a blocking read); with ``owners``, only one owned by one of those uids.
    """
    return parse_document(_load(path, owners)[0])


def _load(path: Path, owners: frozenset[int] | None) -> tuple[dict[str, object], int]:
    """The document as read (a JSON object with a usable ``v``) and the uid owning its file."""
    data, owner = _read_regular_file(path, owners)
    if not data.strip():
        raise StatusFileError("empty file (not written by edge-pose, or a disk problem)")
    if len(data) > MAX_STATUS_BYTES:
        raise StatusFileError("larger than 1 MiB: not an edge-pose status file")
    try:
        doc = json.loads(data)
    except UnicodeDecodeError:
        raise StatusFileError("not UTF-8 text: corrupt") from None
    except RecursionError:
        raise StatusFileError("nested too deeply: not an edge-pose status document") from None
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
    return doc, owner


def _read_regular_file(path: Path, owners: frozenset[int] | None) -> tuple[bytes, int]:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except PermissionError:
        raise StatusFileError(
            "permission denied (the service writes it readable for everyone: check the "
            "directory's permissions, or run with sudo)"
        ) from None
    except OSError as exc:
        if os.path.islink(path):
            raise StatusFileError("a symbolic link: not written by edge-pose, ignored") from None
        raise StatusFileError(f"cannot read it: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        _check_file(st, owners)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as f:
        try:
            return f.read(MAX_STATUS_BYTES + 1), st.st_uid
        except OSError as exc:
            raise StatusFileError(f"cannot read it: {exc.strerror}") from None


def _check_file(st: os.stat_result, owners: frozenset[int] | None) -> None:
    """Raise StatusFileError unless this is a regular file of one of ``owners``."""
    if stat.S_ISDIR(st.st_mode):
        raise StatusFileError("is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise StatusFileError("not a regular file: not written by edge-pose, ignored")
    if owners is not None and st.st_uid not in owners:
        raise StatusFileError(_untrusted(f"the file is owned by {describe_user(st.st_uid)}"))


def trusted_uids() -> frozenset[int]:
    """Whose status documents are believed: root, the caller (real and effective uid, and the
    user behind sudo) and the service user."""
    uids = {0, os.getuid(), os.geteuid()}
    sudo = os.environ.get("SUDO_UID", "")
    if os.geteuid() == 0 and sudo.isdigit():
        uids.add(int(sudo))
    with contextlib.suppress(KeyError):
        uids.add(pwd.getpwnam(SERVICE_USER).pw_uid)
    return frozenset(uids)


def _directory_problem(directory: Path, owners: frozenset[int]) -> str | None:
    """Why documents in ``directory`` cannot be trusted, or None."""
    try:
        st = os.stat(directory)
    except OSError:
        return None  # reading the file reports what is wrong
    if not stat.S_ISDIR(st.st_mode):
        return f"{directory}: not a directory"
    if st.st_uid not in owners:
        return f"{directory}: {_untrusted(f'the directory is owned by {describe_user(st.st_uid)}')}"
    if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
        return f"{directory}: {_untrusted('the directory is writable by every user')}"
    return None


def _untrusted(why: str) -> str:
    return (
        f"{why}, not root, you or the service user ({SERVICE_USER}): not trusted, ignored — "
        "remove it, or set status.dir to a directory of the service user"
    )


def user_name(uid: int) -> str:
    """``name`` for a uid with a passwd entry, else ``uid N``."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def describe_user(uid: int) -> str:
    """``user alice (uid 1000)``, or ``uid 1000`` for a uid without a passwd entry."""
    name = user_name(uid)
    return f"user {name} (uid {uid})" if not name.startswith("uid ") else name


def find_status(dirs: Iterable[Path], trusted: frozenset[int] | None = None) -> StatusLookup:
    """Look for status.json in ``dirs`` (in order). Returns the first document whose process is
    alive (and not stopped); when none is, the first readable one. Unreadable and untrusted
    files (see :func:`trusted_uids`; ``trusted`` replaces that set, for tests) are skipped and
    reported in ``problems``."""
    trusted = trusted_uids() if trusted is None else trusted
    lookup = StatusLookup(None, None)
    fallback: tuple[dict[str, object], Path, int] | None = None
    for directory in dirs:
        directory = Path(directory)
        lookup.searched.append(directory)
        named = named_uid(directory)
        owners = trusted | {named} if named is not None else trusted
        problem = _directory_problem(directory, owners)
        if problem:
            lookup.problems.append(problem)
            continue
        path = directory / STATUS_FILE
        try:
            raw, owner = _load(path, owners)
        except FileNotFoundError:
            continue
        except NotADirectoryError:
            lookup.problems.append(f"{directory}: not a directory")
            continue
        except StatusFileError as exc:
            lookup.problems.append(f"{path}: {exc}")
            continue
        doc = parse_document(raw)
        if owner not in trusted and not _runs_as(doc, owner):
            # A folder trusted only for its own user's run: its document counts only while its
            # pid is an edge-pose of that user, so nobody can fake a healthy run for root.
            lookup.problems.append(f"{path}: not a running edge-pose of user {owner}")
            continue
        if doc.get("state") != "stopped" and daemon_alive(doc):
            lookup.doc, lookup.raw, lookup.path, lookup.owner = doc, raw, path, owner
            return lookup
        if fallback is None:
            fallback = (raw, path, owner)
    if fallback is not None:
        raw, lookup.path, lookup.owner = fallback
        lookup.doc, lookup.raw = parse_document(raw), raw
    return lookup


def _runs_as(doc: StatusDocument, uid: int) -> bool:
    """Whether the document's pid is an edge-pose process of user ``uid``."""
    pid = doc.get("pid")
    if pid is None or not 0 < pid < 2**22:
        return False
    try:
        return os.stat(f"/proc/{pid}").st_uid == uid and is_edge_pose(pid)
    except OSError:
        return False


def read_status(dirs: Iterable[Path]) -> tuple[StatusDocument | None, Path | None]:
    """The status document to report and its file, or (None, None); see :func:`find_status`."""
    lookup = find_status(dirs)
    return lookup.doc, lookup.path
