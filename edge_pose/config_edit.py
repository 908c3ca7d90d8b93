"""`edge-pose config set KEY=VALUE ...` and `edge-pose config show`: edit and print the config.

``set`` validates the would-be configuration with :func:`~edge_pose.config.load_config` *before*
anything is written (an invalid value -> the usual one-line-per-problem error, exit 78, the file
untouched), then rewrites the file atomically (temp file in the same directory, fsync,
``os.replace``, mode and owner kept). Comments and layout are kept: only the value of the
``key = value`` line inside the right ``[section]`` changes (a trailing comment stays); a missing
key is added at the end of its section, a missing section at the end of the file.

The editor is line based, which is enough for edge-pose's flat ``[section]`` + ``key = scalar``
config and needs no TOML-writing dependency. A key written in a form it cannot edit safely (a
multi-line value, a dotted or quoted key, an inline table) is refused with its line number; after
editing, the new text is parsed again and must give exactly the intended data, else nothing is
written.

The flags, messages and exit codes of both are edge_pose/commands/config.py.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pwd
import re
import signal
import stat
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

from edge_pose.errors import EX_CONFIG, EX_FAILURE, EX_OK, ConfigError, EdgePoseError

if TYPE_CHECKING:
    from edge_pose.config import Config

CONFIG_NAME = "edge-pose.toml"
# The documented default file: the repository's copy in a source checkout, else the installed one
# (setup.cfg data_files), found like the model manifest.
SOURCE_DEFAULTS = Path(__file__).resolve().parents[1] / "config" / CONFIG_NAME
INSTALLED_DEFAULTS = Path(sys.prefix) / "share" / "edge-pose" / "config" / CONFIG_NAME

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_HEADER = re.compile(r"\s*\[\s*([A-Za-z0-9_-]+)\s*\]\s*(#.*)?")
_KEY_LINE = re.compile(r"(\s*)([A-Za-z0-9_-]+)(\s*=\s*)(.*)")
_SCALARS: dict[object, type] = {kind: kind for kind in (str, int, float, bool)}
_SECRET = re.compile(r"pass(word)?|secret|token|credential", re.IGNORECASE)


class EditError(EdgePoseError):
    """The file cannot be edited safely as asked; nothing was written."""

    exit_code = EX_CONFIG


# --------------------------------------------------------------------------- values


def parse_assignment(text: str) -> tuple[str, str]:
    """``section.key=value`` -> (``section.key``, raw value text). ValueError on bad syntax."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        shown = repr(text) if len(text) <= 80 else f"{text[:77]!r}..."  # one readable line
        raise ValueError(f"{shown}: expected KEY=VALUE, e.g. mqtt.host=broker.lan")
    return key, value.strip()


def parse_value(text: str) -> Any:
    """A TOML scalar (number, true/false, quoted string) when ``text`` is one, else the text.

    An array or table is never a config value: it is not parsed at all (a deeply nested one
    would exhaust the parser's recursion); a number past Python's digit limit is a ValueError
    that is not a TOMLDecodeError."""
    if text.lstrip().startswith(("[", "{")):
        return text
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except (ValueError, KeyError):
        return text
    if isinstance(value, bool | int | float | str):
        return value
    return text  # an array, table or date: not a config value, keep the text as a string


def convert_value(dotted: str, text: str) -> Any:
    """The value of ``text`` for key ``dotted``: parsed as a TOML scalar, then converted to the
    key's type where that is unambiguous (an unquoted ``5`` for a string key is ``"5"``, an int
    for a float key is a float). Anything else is left for validation to reject."""
    value = parse_value(text)
    kind = _field_type(dotted)
    if kind is None:
        return value
    if kind is str and not isinstance(value, str):
        return text  # written unquoted: the text as typed (1.10 stays "1.10")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):  # too large: left for validation to refuse
            return float(value)
    return value


def _field_type(dotted: str) -> type | None:
    """str/int/float/bool for a known key (a Literal of strings counts as str), else None."""
    from edge_pose.config import SECTIONS

    section, _, key = dotted.partition(".")
    model = SECTIONS.get(section)
    info = model.model_fields.get(key) if model is not None else None
    if info is None:
        return None
    annotation = info.annotation
    if get_origin(annotation) is Literal:
        args = get_args(annotation)
        return str if all(isinstance(a, str) for a in args) else None
    return _SCALARS.get(annotation)


def format_value(value: Any) -> str:
    """A scalar as TOML text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        # JSON's escapes are a subset of TOML's; DEL must be escaped in TOML, JSON leaves it.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007F")
    raise TypeError(f"not a TOML scalar: {value!r}")


# --------------------------------------------------------------------------- the line editor


@dataclass
class _Layout:
    """Where things are in the file: ``keys[(section, key)]`` = line index of a simple
    ``key = value`` line; ``ends[section]`` = index after which a new key goes;
    ``unsafe[(section, key)]`` / ``sealed[section]`` = 1-based line of a form we do not edit."""

    keys: dict[tuple[str, str], int] = field(default_factory=dict)
    ends: dict[str, int] = field(default_factory=dict)
    unsafe: dict[tuple[str, str], int] = field(default_factory=dict)
    sealed: dict[str, int] = field(default_factory=dict)


def _split_value(rest: str) -> tuple[str, str] | None:
    """``value  # comment`` -> (value, ``  # comment``), or None when ``rest`` is not one
    complete scalar followed by an optional comment (a '#' inside a string is not a comment)."""
    cuts = [i for i, c in enumerate(rest) if c == "#"] + [len(rest)]
    for cut in cuts:
        value = rest[:cut].rstrip()
        if not value:
            continue
        try:
            parsed = tomllib.loads(f"v = {value}")
        except tomllib.TOMLDecodeError:
            continue
        if set(parsed) == {"v"} and isinstance(parsed["v"], bool | int | float | str):
            return value, rest[len(value) :]
        return None
    return None


def _scan(lines: list[str]) -> _Layout:
    layout = _Layout()
    section: str | None = None
    for i, raw in enumerate(lines):
        line = raw.rstrip("\r\n")
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        header = _HEADER.fullmatch(line)
        if header:
            section = header[1]
            layout.ends[section] = i
            continue
        match = _KEY_LINE.fullmatch(line)
        if match and section is not None and _split_value(match[4]) is not None:
            layout.keys[(section, match[2])] = i
            layout.ends[section] = i
            continue
        # Anything else: a dotted/quoted key, an inline table or array, a multi-line value, an
        # odd header. Alone on its line it only makes the keys it defines uneditable; if it does
        # not parse alone it spans lines, and then no line after it can be trusted.
        try:
            defined = tomllib.loads(line)
        except tomllib.TOMLDecodeError:
            raise EditError(
                f"line {i + 1}: {stripped[:60]!r} spans several lines or is not a simple "
                "`key = value`: this file cannot be edited safely, edit it by hand"
            ) from None
        if stripped.startswith("["):
            raise EditError(
                f"line {i + 1}: {stripped[:60]!r}: only plain [section] headers can be edited "
                "safely, edit this file by hand"
            )
        if section is None:
            for name, table in defined.items():
                layout.sealed.setdefault(name, i + 1)
                if isinstance(table, dict):
                    for key in table:
                        layout.unsafe.setdefault((name, key), i + 1)
        else:
            for key in defined:
                layout.unsafe.setdefault((section, key), i + 1)
            layout.ends[section] = i
    return layout


def edit_text(text: str, changes: dict[str, Any]) -> str:
    """``text`` with each ``section.key`` in ``changes`` set to its value (see the module doc).
    Raises EditError when a key cannot be edited safely."""
    lines = text.splitlines(keepends=True)
    layout = _scan(lines)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    replaced: dict[int, str] = {}
    added: dict[int, list[str]] = {}  # insert after line index
    new_sections: dict[str, list[str]] = {}
    for dotted, value in changes.items():
        section, _, key = dotted.partition(".")
        where = layout.unsafe.get((section, key)) or layout.sealed.get(section)
        if where is not None:
            raise EditError(
                f"{dotted}: line {where} sets it (or its section) as a dotted or quoted key or "
                "an inline table, which cannot be edited safely: edit it by hand"
            )
        entry = f"{key} = {format_value(value)}"
        index = layout.keys.get((section, key))
        if index is not None:
            line = lines[index]
            body = line.rstrip("\r\n")
            ending = line[len(body) :]
            match = _KEY_LINE.fullmatch(body)
            assert match is not None
            split = _split_value(match[4])
            assert split is not None
            replaced[index] = (
                f"{match[1]}{match[2]}{match[3]}{format_value(value)}{split[1]}{ending}"
            )
        elif section in layout.ends:
            added.setdefault(layout.ends[section], []).append(entry)
        else:
            new_sections.setdefault(section, []).append(entry)
    out: list[str] = []
    for i, line in enumerate(lines):
        line = replaced.get(i, line)
        if i in added and not line.endswith(("\n", "\r")):
            line += newline
        out.append(line)
        out.extend(entry + newline for entry in added.get(i, []))
    if new_sections:
        if out and not out[-1].endswith(("\n", "\r")):
            out[-1] += newline
        for section, entries in new_sections.items():
            if out and out[-1].strip():
                out.append(newline)
            out.append(f"[{section}]{newline}")
            out.extend(entry + newline for entry in entries)
    return "".join(out)


# --------------------------------------------------------------------------- files


def defaults_file() -> Path:
    """The documented default config (every key, commented) to start a new file from."""
    for path in (SOURCE_DEFAULTS, INSTALLED_DEFAULTS):
        if path.is_file():
            return path
    raise EdgePoseError(
        f"the default config file is missing (looked for {SOURCE_DEFAULTS} and "
        f"{INSTALLED_DEFAULTS}): reinstall edge-pose"
    )


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically: a temp file in the same directory, fsync,
    ``os.replace``, directory fsync. An existing file's mode and owner are kept (a symlink is
    followed, so the link stays); a new file gets 0666 minus the umask."""
    path = Path(os.path.realpath(path))
    try:
        old = path.stat()
    except FileNotFoundError:
        old = None
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if old is not None:
            os.fchmod(fd, stat.S_IMODE(old.st_mode))
            if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
                try:
                    os.fchown(fd, old.st_uid, old.st_gid)
                except PermissionError:
                    raise EdgePoseError(
                        f"{path}: cannot keep its owner ({old.st_uid}:{old.st_gid}) when "
                        "rewriting it: run as root (sudo)"
                    ) from None
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            fd = -1
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = ""
    finally:
        if fd != -1:
            os.close(fd)
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# --------------------------------------------------------------------------- set


def set_values(path: Path, assignments: Sequence[str]) -> tuple[Path, bool, Config]:
    """Apply ``assignments`` (``section.key=value``) to ``path`` (created from the documented
    defaults when missing). Returns (path, whether it was created, the new Config).
    Raises ConfigError (invalid; nothing written), EditError, ValueError (bad syntax)."""
    from edge_pose.config import DEFAULT_CONFIG_PATH, file_problems, load_config, read_config_text

    changes: dict[str, Any] = {}
    for item in assignments:
        dotted, text = parse_assignment(item)
        if _SECRET.search(dotted.rpartition(".")[2]) and not dotted.endswith(
            ("password_file", "_file")
        ):
            raise ConfigError(
                [
                    f"{dotted}: secrets never go in the config: put the password in a file "
                    "(chmod 600) and set mqtt.password_file, or use a systemd credential"
                ]
            )
        if dotted in changes:
            raise ValueError(f"{dotted} is given twice: say which value you mean")
        changes[dotted] = convert_value(dotted, text)
    created = not path.exists()
    if created and not path.parent.exists() and path != DEFAULT_CONFIG_PATH:
        # /etc/edge-pose is made when missing; another missing folder is more likely a typo
        raise EditError(f"{path}: the folder {path.parent} does not exist (check --config)")
    source = defaults_file() if created else path
    text = read_config_text(source)
    cfg = load_config(source, changes)  # the would-be config, validated before any write
    if problems := file_problems(cfg):
        raise ConfigError(problems)
    new_text = edit_text(text, changes)
    expected = tomllib.loads(text)
    for dotted, value in changes.items():
        section, _, key = dotted.partition(".")
        expected.setdefault(section, {})[key] = value
    try:
        got = tomllib.loads(new_text)
    except tomllib.TOMLDecodeError as exc:
        got = {"error": str(exc)}
    if got != expected:  # a bug in the editor: never write a file that says something else
        raise EditError(f"{path}: the edited file would not read back as intended; not written")
    if created or new_text != text:
        write_atomic(path, new_text.encode("utf-8"))
    return path, created, cfg


def reload_daemon(cfg: Config) -> tuple[int, str]:
    """Send SIGHUP to the running daemon; (exit code, what was done).

    The pid comes from systemd or from a status file any local user may have written, and
    ``config set --reload`` often runs as root: the process is signalled only when it is an
    ``edge-pose run`` of root, the caller or the service user (:func:`_not_the_daemon`), and
    through a pidfd, so a pid reused after that check is never hit.
    """
    from edge_pose.service.health import pid_alive, systemd_state
    from edge_pose.service.status import read_status
    from edge_pose.service.status_dir import status_dirs

    pid, how = 0, ""
    state = systemd_state()
    if state and state.get("main_pid"):
        pid, how = int(state["main_pid"]), "systemd's MainPID"
    else:
        doc, status_path = read_status(status_dirs(cfg.status.dir))
        if doc and doc.get("state") != "stopped" and pid_alive(doc.get("pid")):
            pid, how = int(doc["pid"]), str(status_path)
    if not pid:
        return EX_OK, "edge-pose is not running: the new config is used when it starts"
    gone = f"edge-pose (pid {pid}) is gone: the new config is used when it starts"
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return EX_OK, gone
    except OSError as exc:
        return EX_FAILURE, _refusal(pid, how, f"cannot open it ({exc.strerror or exc})")
    try:
        if problem := _not_the_daemon(pid):
            return EX_FAILURE, _refusal(pid, how, problem)
        signal.pidfd_send_signal(pidfd, signal.SIGHUP)
    except ProcessLookupError:
        return EX_OK, gone
    except PermissionError:
        return EX_FAILURE, (
            f"cannot signal edge-pose (pid {pid}, from {how}): permission denied; run "
            f"`sudo systemctl reload edge-pose` (or `sudo kill -HUP {pid}`)"
        )
    finally:
        os.close(pidfd)
    return EX_OK, (
        f"sent SIGHUP to edge-pose (pid {pid}, from {how}): it re-reads the config "
        "(an invalid one is logged and the running one kept; see `edge-pose status`)"
    )


def _refusal(pid: int, how: str, problem: str) -> str:
    return (
        f"not signalling pid {pid} (from {how}): {problem}; reload the service with "
        "`sudo systemctl reload edge-pose` (a foreground run: send SIGHUP to it yourself)"
    )


def _not_the_daemon(pid: int) -> str:
    """Why ``pid`` must not get our SIGHUP ("" = it is an edge-pose daemon we may signal).

    A command line is easy to fake (``exec -a edge-pose``), an owner is not: the process must
    run ``edge-pose run`` and belong (real and effective uid) to root, the caller or the
    service user. Anything else, including a /proc that cannot be read, is refused.
    """
    from edge_pose.service.cmdline import edge_pose_command, read_command_line
    from edge_pose.service.status import SERVICE_USER

    try:
        words = read_command_line(pid)
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        return f"cannot read /proc/{pid} ({exc.strerror or exc})"
    if edge_pose_command(words) != "run":
        shown = " ".join(words)[:80].encode("unicode_escape").decode("ascii")
        return f"it is not an `edge-pose run` process (its command line: {shown or '(none)'})"
    uids = next((line.split()[1:3] for line in status.splitlines() if line.startswith("Uid:")), [])
    trusted = {0, os.getuid()}
    with contextlib.suppress(KeyError):
        trusted.add(pwd.getpwnam(SERVICE_USER).pw_uid)
    if len(uids) != 2 or not {int(u) for u in uids} <= trusted:
        return (
            f"it runs as uid {'/'.join(uids) or '?'}, not as root, you or the service user "
            f"{SERVICE_USER}"
        )
    return ""


# --------------------------------------------------------------------------- show


def changed_keys(raw: dict[str, Any]) -> set[str]:
    """Keys the file sets to something other than the built-in default."""
    from edge_pose.config import SECTIONS

    changed: set[str] = set()
    for section, model in SECTIONS.items():
        table = raw.get(section)
        if not isinstance(table, dict):
            continue
        for key, info in model.model_fields.items():
            if key in table and table[key] != info.default:
                changed.add(f"{section}.{key}")
    return changed


def effective_toml(cfg: Config, path: Path | None, changed: set[str]) -> str:
    """``cfg`` as TOML for `config show`: every key, those in ``changed`` marked with their
    default; ``path`` is named in the first line (None: the built-in defaults)."""
    from edge_pose.config import SECTIONS, to_toml_dict

    origin = str(path) if path else "no file: built-in defaults"
    out = [f"# edge-pose effective configuration ({origin})"]
    if changed:
        out.append("# keys marked `# changed` differ from the built-in defaults")
    for section, values in to_toml_dict(cfg).items():
        out += ["", f"[{section}]"]
        for key, value in values.items():
            line = f"{key} = {format_value(value)}"
            if f"{section}.{key}" in changed:
                default = SECTIONS[section].model_fields[key].default
                line += f"  # changed (default {format_value(default)})"
            out.append(line)
    return "\n".join(out)
