"""The model catalog: which MoveNet builds exist, where they come from, and where they live.

Model binaries are too big for git and carry their own license, so the project ships only a
manifest (name, file, sha256, input size, kind, backend, URL) and installs models the way a user
would: ``edge-pose models fetch NAME`` downloads the file (from a local mirror first, then
upstream), checks its sha256 and moves it into place atomically, so a half-written or tampered
file is never picked up by the daemon. ``verify`` re-checks installed files; ``resolve_model``
turns the config's ``model.name`` (a catalog name or a path) into a file the interpreter can open.

An empty ``sha256`` in the manifest means "not pinned": fetch records the checksum it computed in
``<file>.sha256`` beside the model (trust on first use) and warns once; verify reports
``unpinned``, or ``mismatch`` when the file changed since it was fetched.

Messages for the user go through :mod:`logging` (logger ``edge_pose.inference.models``); the
progress bar goes to stderr and only appears when stderr is a terminal.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import logging
import os
import re
import secrets
import sys
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from edge_pose import __version__
from edge_pose.errors import ModelError

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.toml"
# Where setup.cfg's data_files put the manifest in an installed package.
INSTALLED_MANIFEST = Path(sys.prefix) / "share" / "edge-pose" / "models" / MANIFEST_NAME
# The repository's models/ folder when running from a source checkout (or an editable install).
SOURCE_MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
# Created by the installer (deploy/) for the systemd service.
SYSTEM_MODEL_DIR = Path("/var/lib/edge-pose/models")

MIRROR_ENV = "EDGE_POSE_MODEL_MIRROR"
DIR_ENV = "EDGE_POSE_MODEL_DIR"
TIMEOUT_S = 30.0
_CHUNK = 1 << 16
_BACKENDS = ("cpu", "edgetpu")
# The model kind of a manifest entry without ``kind`` (manifests from before kinds existed).
DEFAULT_KIND = "movenet_single"
_USER_AGENT = f"edge-pose/{__version__}"

Status = Literal["ok", "missing", "mismatch", "unpinned"]


@dataclass(frozen=True)
class ModelInfo:
    """One manifest entry. ``twin`` is the same network built for the other backend ("" = none);
    ``kind`` says which estimator runs it (the kind table of :mod:`edge_pose.inference.backend`)."""

    name: str
    file: str
    sha256: str  # "" = not pinned
    input_size: int
    backend: str  # cpu | edgetpu
    twin: str
    url: str
    license: str
    description: str
    kind: str = DEFAULT_KIND

    @property
    def pinned(self) -> bool:
        return bool(self.sha256)


@dataclass(frozen=True)
class VerifyResult:
    """The state of one installed model; ``sha256`` is what the file hashes to ("" if unread)."""

    name: str
    path: Path
    status: Status
    detail: str
    sha256: str = ""


# --------------------------------------------------------------------------- catalog


def manifest_path() -> Path:
    """The manifest in use.

    A source checkout's ``models/manifest.toml`` wins over the installed copy because an
    editable install also copies the manifest into ``sys.prefix``, and that copy goes stale as
    soon as the repository's manifest is edited. In a regular install the package sits in
    site-packages, where no ``models/manifest.toml`` is next to it, so the installed copy is used.
    """
    candidates = (SOURCE_MODELS_DIR / MANIFEST_NAME, INSTALLED_MANIFEST)
    for path in candidates:
        if path.is_file():
            return path
    raise ModelError(
        f"model manifest not found (looked for {candidates[0]} and {candidates[1]}): "
        "reinstall edge-pose"
    )


def catalog() -> dict[str, ModelInfo]:
    """All models the manifest knows, by name (a fresh dict: callers may change it freely)."""
    return dict(_load_manifest(manifest_path()))


@functools.cache
def _load_manifest(path: Path) -> dict[str, ModelInfo]:
    """Parse and check the manifest once: a broken manifest is a packaging bug, say where."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ModelError(f"cannot read model manifest {path}: {exc}") from exc
    entries = data.get("model")
    if not isinstance(entries, list) or not entries:
        raise ModelError(f"model manifest {path}: expected one or more [[model]] tables")
    types = {"input_size": int}
    keys = set(ModelInfo.__dataclass_fields__)
    problems: list[str] = []
    models: dict[str, ModelInfo] = {}
    for i, entry in enumerate(entries):
        where = f"{path}: model[{i}]"
        if not isinstance(entry, dict) or not keys - {"kind"} <= set(entry) <= keys:
            got = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            problems.append(f"{where}: expected keys {sorted(keys)} (kind optional), got {got}")
            continue
        bad = [
            k
            for k in entry
            if type(entry[k]) is not types.get(k, str)  # exact type: a bool is not a size
        ]
        if bad:
            problems.append(f"{where}: wrong type for {', '.join(sorted(bad))}")
            continue
        info = ModelInfo(**entry)
        where = f"{path}: model {info.name!r}"
        if info.name in models:
            problems.append(f"{where}: duplicate name")
        if info.backend not in _BACKENDS:
            problems.append(f"{where}: backend {info.backend!r} is not one of {_BACKENDS}")
        if not _KIND.fullmatch(info.kind):
            problems.append(f"{where}: kind {info.kind!r} must be a lowercase name like "
                            f"{DEFAULT_KIND!r}")
        if info.sha256 and not _is_sha256(info.sha256):
            problems.append(f'{where}: sha256 must be 64 lowercase hex digits or ""')
        if not info.file or Path(info.file).name != info.file:
            problems.append(f"{where}: file {info.file!r} must be a plain file name")
        if info.input_size <= 0:
            problems.append(f"{where}: input_size must be positive")
        models[info.name] = info
    for info in models.values():
        if info.twin and info.twin not in models:
            problems.append(
                f"{path}: model {info.name!r}: twin {info.twin!r} is not in the manifest"
            )
    if problems:
        raise ModelError("\n".join(problems))
    return models


_KIND = re.compile(r"[a-z][a-z0-9_]*")


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def _lookup(name: str) -> ModelInfo:
    models = catalog()
    if name not in models:
        raise ModelError(f"unknown model {name!r}: known models are {', '.join(models)}")
    return models[name]


# --------------------------------------------------------------------------- where models live


def default_model_dir(configured: str = "") -> Path:
    """The folder models are installed into and loaded from.

    ``configured`` is the config's ``model.dir`` ("" = default) and wins. Then, in order:
    ``$EDGE_POSE_MODEL_DIR``; ``$STATE_DIRECTORY/models`` (systemd's StateDirectory=, so the
    service needs no extra config); ``/var/lib/edge-pose/models`` if the installer made it, so
    ``edge-pose models fetch`` run by hand fills the folder the service reads; the repository's
    ``models/`` in a writable source checkout (git ignores the binaries there); else
    ``$XDG_DATA_HOME/edge-pose/models`` (``~/.local/share/edge-pose/models``).
    """
    if configured:
        return Path(configured).expanduser()
    if env_dir := os.environ.get(DIR_ENV):
        return Path(env_dir).expanduser()
    if state := os.environ.get("STATE_DIRECTORY"):
        # systemd joins several StateDirectory= entries with ':'; the first is ours.
        return Path(state.split(":")[0]) / "models"
    if SYSTEM_MODEL_DIR.is_dir():
        return SYSTEM_MODEL_DIR
    if (SOURCE_MODELS_DIR / MANIFEST_NAME).is_file() and os.access(SOURCE_MODELS_DIR, os.W_OK):
        return SOURCE_MODELS_DIR
    xdg = os.environ.get("XDG_DATA_HOME", "")  # the XDG spec says to ignore a relative value
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "edge-pose" / "models"


def fetch_command(name: str, model_dir: Path) -> str:
    """The command that installs ``name`` into ``model_dir``: with ``--dir`` when that is not
    the folder `models fetch` picks on its own (a config's ``model.dir``, ``--dir``)."""
    where = "" if Path(model_dir) == default_model_dir() else f" --dir {model_dir}"
    return f"edge-pose models fetch {name}{where}"


def resolve_model(name_or_path: str, model_dir: Path) -> tuple[Path, ModelInfo | None]:
    """Turn ``model.name`` into a file to load, and its catalog entry when the file is known.

    A catalog name maps to its file in ``model_dir``; anything with a '/' or ending in .tflite is a
    path. A path whose file name matches a catalog file gets that entry (input size, backend).
    """
    models = catalog()
    if name_or_path in models:
        info = models[name_or_path]
        path = Path(model_dir) / info.file
        if not path.is_file():
            raise ModelError(
                f"model {info.name!r} is not installed in {model_dir}: "
                f"run `{fetch_command(info.name, model_dir)}`"
            )
        return path, info
    if "/" in name_or_path or os.sep in name_or_path or name_or_path.endswith(".tflite"):
        path = Path(name_or_path).expanduser().absolute()
        if not path.exists():
            raise ModelError(
                f"model file {path} does not exist (check model.name or --model; "
                "`edge-pose models list` shows the catalog)"
            )
        if not path.is_file():
            raise ModelError(f"model path {path} is not a file")
        if not os.access(path, os.R_OK):
            raise ModelError(f"model file {path} is not readable (check its permissions)")
        by_file = {info.file: info for info in models.values()}
        return path, by_file.get(path.name)
    raise ModelError(
        f"unknown model {name_or_path!r}: known models are {', '.join(models)}, "
        "or give the path to a .tflite file"
    )


# --------------------------------------------------------------------------- checksums


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (models are a few MB; the Pi Zero has 512 MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _read_record(path: Path) -> str:
    """The sha256 fetch recorded for an unpinned model ("" if none): `sha256sum -c` format."""
    try:
        text = _record_path(path).read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return ""
    return text[0] if text and _is_sha256(text[0]) else ""


def _write_record(path: Path, sha256: str) -> None:
    """Record the checksum beside the model: written new and renamed over, like the model, so a
    link planted at ``<file>.sha256`` is replaced, never written through."""
    record = _record_path(path)
    tmp = _temp_path(record)
    try:
        with _create_new(tmp) as f:
            f.write(f"{sha256}  {path.name}\n".encode("ascii"))
        os.replace(tmp, record)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        log.warning("could not record the sha256 of %s: %s", path, exc.strerror or exc)


_warned_unpinned: set[str] = set()


def _warn_unpinned(info: ModelInfo, sha256: str) -> None:
    if info.name not in _warned_unpinned:
        _warned_unpinned.add(info.name)
        log.warning(
            "%s: checksum not pinned in the model manifest; recorded sha256 %s "
            "(later changes to the file show up in `edge-pose models verify`)",
            info.name,
            sha256,
        )


def _expected(info: ModelInfo, path: Path) -> str:
    """The sha256 a file must have: pinned in the manifest, else recorded at fetch ("" = any)."""
    return info.sha256 or _read_record(path)


# --------------------------------------------------------------------------- verify


def verify(model_dir: Path, names: list[str] | None = None) -> list[VerifyResult]:
    """Check installed models against the manifest (all catalog models when ``names`` is None).

    Missing models are reported, not raised: with ``names=None`` most users have only some of
    the catalog installed, and the CLI decides what counts as a failure.
    """
    infos = [_lookup(n) for n in names] if names is not None else list(catalog().values())
    results = []
    for info in infos:
        path = Path(model_dir) / info.file
        fetch_hint = f"run `{fetch_command(info.name, model_dir)}`"
        if not path.is_file():
            results.append(VerifyResult(info.name, path, "missing", f"not installed: {fetch_hint}"))
            continue
        try:
            got = file_sha256(path)
        except OSError as exc:
            detail = f"cannot read: {exc.strerror or exc}"
            results.append(VerifyResult(info.name, path, "missing", detail))
            continue
        expected = _expected(info, path)
        if expected and got != expected:
            what = "expected" if info.pinned else "recorded at fetch"
            detail = f"sha256 {what} {expected}, got {got}: {fetch_hint} to replace it"
            results.append(VerifyResult(info.name, path, "mismatch", detail, got))
        elif info.pinned:
            results.append(VerifyResult(info.name, path, "ok", f"sha256 {got}", got))
        else:
            detail = f"sha256 {got} not pinned in the manifest" + (
                " (matches the one recorded at fetch)" if expected else ""
            )
            results.append(VerifyResult(info.name, path, "unpinned", detail, got))
    return results


# --------------------------------------------------------------------------- fetch


def fetch(name: str, model_dir: Path, *, mirror: str | None = None, progress: bool = True) -> Path:
    """Install model ``name`` into ``model_dir`` and return its path.

    Sources, in order: ``mirror`` (default ``$EDGE_POSE_MODEL_MIRROR``; "" = none) - a local
    folder, a ``file://`` URL or an http(s) URL base holding the same file name - then the
    manifest URL. A source that fails (unreachable, HTTP error, wrong checksum) is skipped: a
    warning names it if a later source works, else the ModelError names every source and why
    it failed. The file is written to a new ``.<file>.<random>.part`` beside the target (never
    an existing file or link: the folder may belong to a less trusted user than the caller),
    fsynced and renamed into place, so the target is either absent, the old file, or complete
    and checked. A file already present with the right checksum is not downloaded again.
    ``progress=False`` hides the progress bar, which is otherwise shown on stderr when stderr
    is a terminal.
    """
    info = _lookup(name)
    model_dir = Path(model_dir)
    dest = model_dir / info.file
    if dest.is_file():
        try:
            got = file_sha256(dest)
        except OSError as exc:
            raise ModelError(f"cannot read {dest}: {exc.strerror or exc}") from exc
        expected = _expected(info, dest)
        if not expected or got == expected:
            log.info("%s is already installed at %s (sha256 ok), nothing to download", name, dest)
            if not info.pinned:
                if not expected:
                    _write_record(dest, got)
                _warn_unpinned(info, got)
            return dest
        log.warning(
            "%s: %s has sha256 %s, expected %s: downloading it again", name, dest, got, expected
        )
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(
            f"cannot create model folder {model_dir}: {exc.strerror or exc} "
            f"(set {DIR_ENV} or model.dir to a writable folder)"
        ) from exc

    failures: list[str] = []
    for url in _sources(info, mirror):
        part = _temp_path(dest)
        try:
            got = _download(url, part, progress=progress, label=info.file)
        except _SourceError as exc:
            failures.append(str(exc))
            log.debug("%s: %s", name, exc)
            continue
        if info.pinned and got != info.sha256:
            part.unlink(missing_ok=True)
            failures.append(f"{url}: checksum mismatch: expected sha256 {info.sha256}, got {got}")
            log.debug("%s: %s", name, failures[-1])
            continue
        _move_into_place(part, dest)
        _fsync_dir(model_dir)
        if not info.pinned:
            _write_record(dest, got)
            _warn_unpinned(info, got)
        # A broken mirror should not go unnoticed just because a later source worked.
        for failure in failures:
            log.warning("%s: skipped source %s", name, failure)
        log.info("%s installed at %s from %s (sha256 %s)", name, dest, url, got)
        return dest
    if not info.url:
        failures.append(f"{info.file} has no public download (models/README.md: how it is built)")
    raise ModelError(
        f"cannot fetch model {name!r} into {model_dir}: {'; '.join(failures)}. Without network: "
        f"set {MIRROR_ENV} to a folder or URL holding {info.file}, or install the offline "
        "package (make deb OFFLINE=1, docs/packaging.md)"
    )


def _move_into_place(part: Path, dest: Path) -> None:
    """rename(2) replaces whatever is at ``dest``, a planted link included, without following
    it; a folder there is a problem for the user to solve, not a traceback."""
    try:
        os.replace(part, dest)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise ModelError(
            f"cannot install {dest}: {exc.strerror or exc} (remove or rename what is there)"
        ) from exc


class _SourceError(Exception):
    """One source failed; the next one may still work."""


def _sources(info: ModelInfo, mirror: str | None) -> list[str]:
    if mirror is None:
        mirror = os.environ.get(MIRROR_ENV, "")
    urls = []
    if mirror:
        if "://" in mirror:
            urls.append(mirror.rstrip("/") + "/" + urllib.parse.quote(info.file))
        else:  # a local folder, relative to the current directory like any CLI path
            urls.append((Path(mirror).expanduser().resolve() / info.file).as_uri())
    if info.url:  # a model built by the project (models/README.md) has none
        urls.append(info.url)
    return urls


def _temp_path(dest: Path) -> Path:
    """A fresh hidden name beside ``dest``: unpredictable, so nobody can plant a file or link
    there in advance, and two fetches at once never share one."""
    return dest.with_name(f".{dest.name}.{secrets.token_hex(8)}.part")


def _create_new(path: Path) -> BinaryIO:
    """Open ``path`` for writing only if it does not exist yet (O_EXCL) and is not a link
    (O_NOFOLLOW): root fetching into the service user's folder must never write through a
    link or into a file someone else put there. The mode is 0666 less the umask, as open()."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.fdopen(os.open(path, flags, 0o666), "wb")


def _download(url: str, part: Path, *, progress: bool, label: str) -> str:
    """Copy ``url`` into the new file ``part``, fsynced; return its sha256. Removes ``part`` on
    failure."""
    from tqdm import tqdm  # type: ignore[import-untyped]  # only fetch needs it: light imports

    try:
        out = _create_new(part)
    except OSError as exc:
        raise ModelError(
            f"cannot write {part}: {exc.strerror or exc} "
            f"(set {DIR_ENV} or model.dir to a writable folder)"
        ) from exc
    digest = hashlib.sha256()
    received = 0
    try:
        with out:
            request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                with tqdm(
                    total=total,
                    desc=label,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    file=sys.stderr,
                    disable=None if progress else True,
                    leave=False,
                ) as bar:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
            if total is not None and received != total:
                raise _SourceError(f"{url}: incomplete download ({received} of {total} bytes)")
            out.flush()
            os.fsync(out.fileno())
    except _SourceError:
        part.unlink(missing_ok=True)
        raise
    except urllib.error.HTTPError as exc:
        part.unlink(missing_ok=True)
        raise _SourceError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        part.unlink(missing_ok=True)
        reason = exc.reason.strerror if isinstance(exc.reason, OSError) else exc.reason
        raise _SourceError(f"{url}: {reason or exc}") from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        part.unlink(missing_ok=True)
        reason = (exc.strerror if isinstance(exc, OSError) else None) or exc
        raise _SourceError(f"{url}: {reason}") from exc
    except BaseException:  # Ctrl-C, SystemExit: leave nothing half-written behind
        part.unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    """Make the rename durable: a power cut on a Pi must not leave an empty model file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
