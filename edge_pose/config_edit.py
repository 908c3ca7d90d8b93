"""`edge-pose config set KEY=VALUE ...` and `edge-pose config show`: edit and print the config.

``set`` validates the would-be configuration with :func:`~edge_pose.config.load_config` *before*
anything is written (an invalid value -> the usual one-line-per-problem error, exit 78, the file
untouched), then rewrites the file atomically (temp file in the same directory, fsync,
``os.replace``, mode and owner kept). Comments and layout are kept: only the value of the
``key = value`` line inside the right ``[section]`` (or nested ``[section.table]``) changes (a
trailing comment stays); a missing key is added at the end of its table, a missing table at the
end of the file.

The editor is line based, which is enough for edge-pose's ``[section]``/``[section.table]`` +
``key = scalar`` config and needs no TOML-writing dependency. A key written in a form it cannot
edit safely (a multi-line value, a dotted or quoted key, an inline table) is refused with its line
number; after editing, the new text is parsed again and must give exactly the intended data, else
nothing is written. ``[[zones]]`` blocks (an array of tables) are stepped over whole, whatever
they hold: their keys are not ``set``'s to change (edge_pose/config_zones.py adds and removes
whole blocks), and the keys of the tables after them edit as usual.

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
    from pydantic import BaseModel
    from pydantic.fields import FieldInfo

    from edge_pose.config import Config

CONFIG_NAME = "edge-pose.toml"
# The documented default file: the repository's copy in a source checkout, else the installed one
# (setup.cfg data_files), found like the model manifest.
SOURCE_DEFAULTS = Path(__file__).resolve().parents[1] / "config" / CONFIG_NAME
INSTALLED_DEFAULTS = Path(sys.prefix) / "share" / "edge-pose" / "config" / CONFIG_NAME

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TABLE_NAME = r"([A-Za-z0-9_-]+(?:\s*\.\s*[A-Za-z0-9_-]+)*)"  # events.fall; no quoted parts
_HEADER = re.compile(rf"\s*\[\s*{_TABLE_NAME}\s*\]\s*(#.*)?")
_ARRAY_HEADER = re.compile(rf"\s*\[\[\s*{_TABLE_NAME}\s*\]\]\s*(#.*)?")
ZONES = "zones"  # the array of tables `set` leaves alone (`config zone` edits it)
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
    info = field_info(dotted)
    if info is None:
        return None
    annotation = info.annotation
    if get_origin(annotation) is Literal:
        args = get_args(annotation)
        return str if all(isinstance(a, str) for a in args) else None
    return _SCALARS.get(annotation)


def field_info(dotted: str) -> FieldInfo | None:
    """The schema's field of a key path (``mqtt.port``, ``events.fall.confirm_s``), else None.
    A path through the zones (an array of tables) is no key path: None."""
    from edge_pose.config import Config

    model: type[BaseModel] | None = Config
    info: FieldInfo | None = None
    for part in dotted.split("."):
        info = model.model_fields.get(part) if model is not None else None
        if info is None:
            return None
        model = table_model(info.annotation)
    return info


def table_model(annotation: Any) -> type[BaseModel] | None:
    """The model of a field that is a table (a section or a table inside one), else None."""
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def format_value(value: Any) -> str:
    """A scalar, or an array of them, as TOML text."""
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
    if isinstance(value, tuple | list):  # a zone's polygon: [[x, y], ...] on one line
        return "[" + ", ".join(format_value(item) for item in value) + "]"
    raise TypeError(f"not a TOML value: {value!r}")


# --------------------------------------------------------------------------- the line editor


@dataclass
class Block:
    """One ``[[name]]`` entry of an array of tables: lines ``start`` (its header) to ``end``
    (exclusive: the next header's line, or the end of the file)."""

    name: str
    start: int
    end: int


@dataclass
class _Layout:
    """Where things are in the file: ``keys[(table, key)]`` = line index of a simple
    ``key = value`` line (``table`` is ``section`` or ``section.table``); ``ends[table]`` =
    index after which a new key goes; ``unsafe[(table, key)]`` / ``sealed[section]`` = 1-based
    line of a form we do not edit; ``blocks``: the ``[[name]]`` entries, in file order."""

    keys: dict[tuple[str, str], int] = field(default_factory=dict)
    ends: dict[str, int] = field(default_factory=dict)
    unsafe: dict[tuple[str, str], int] = field(default_factory=dict)
    sealed: dict[str, int] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)


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


def _table(name: str) -> str:
    """A header's table name without the spaces TOML allows around its dots."""
    return ".".join(part.strip() for part in name.split("."))


def _parses(text: str) -> bool:
    try:
        tomllib.loads(text)
    except (ValueError, RecursionError):  # TOMLDecodeError is a ValueError
        return False
    return True


def _block_end(lines: list[str], start: int, name: str) -> int:
    """Where the ``[[name]]`` entry starting at line ``start`` ends: at the first later line
    that opens a table (a line starting with '[' once the entry so far reads as TOML on its own,
    so a multi-line array's rows are not taken for headers), other than ``[name.x]``, a table
    of this entry; else at the end of the file."""
    for j in range(start + 1, len(lines)):
        line = lines[j].rstrip("\r\n")
        if not line.lstrip().startswith("["):
            continue
        sub = _HEADER.fullmatch(line)
        if sub and _table(sub[1]).startswith(f"{name}."):
            continue
        if _parses("".join(lines[start:j])):
            return j
    if not _parses("".join(lines[start:])):
        raise EditError(
            f"line {start + 1}: the [[{name}]] entry starting here does not read as TOML on its "
            "own: this file cannot be edited safely, edit it by hand"
        )
    return len(lines)


def scan(lines: list[str]) -> _Layout:
    """Where the tables, keys and ``[[array]]`` entries of ``lines`` are; EditError for a form
    after which no line can be trusted (a value spanning lines, a header that is not plain)."""
    layout = _Layout()
    section: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i].rstrip("\r\n")
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        header = _HEADER.fullmatch(line)
        if header:
            section = _table(header[1])
            layout.ends[section] = i
            i += 1
            continue
        array = _ARRAY_HEADER.fullmatch(line)
        if array:  # stepped over whole: the next line is a header or the end of the file
            name = _table(array[1])
            end = _block_end(lines, i, name)
            layout.blocks.append(Block(name, i, end))
            i = end
            continue
        match = _KEY_LINE.fullmatch(line)
        if match and section is not None and _split_value(match[4]) is not None:
            layout.keys[(section, match[2])] = i
            layout.ends[section] = i
            i += 1
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
                f"line {i + 1}: {stripped[:60]!r}: only plain [section], [section.table] and "
                "[[zones]] headers can be edited safely, edit this file by hand"
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
        i += 1
    return layout


def _unsafe_line(layout: _Layout, dotted: str) -> int | None:
    """The line of a form we do not edit that defines ``dotted`` or a table on its way."""
    parts = dotted.split(".")
    if parts[0] in layout.sealed:
        return layout.sealed[parts[0]]
    for n in range(1, len(parts)):
        where = layout.unsafe.get((".".join(parts[:n]), parts[n]))
        if where is not None:
            return where
    return None


def edit_text(text: str, changes: dict[str, Any]) -> str:
    """``text`` with each key path (``section.key``, ``section.table.key``) in ``changes`` set
    to its value (see the module doc). Raises EditError when a key cannot be edited safely."""
    lines = text.splitlines(keepends=True)
    layout = scan(lines)
    arrays = {block.name.split(".")[0] for block in layout.blocks} | {ZONES}
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    replaced: dict[int, str] = {}
    added: dict[int, list[str]] = {}  # insert after line index
    new_sections: dict[str, list[str]] = {}
    for dotted, value in changes.items():
        section, _, key = dotted.rpartition(".")
        if section.split(".")[0] in arrays:
            raise EditError(
                f"{dotted}: the [[{section.split('.')[0]}]] entries are not edited with "
                "`config set`: use `edge-pose config zone add|remove|list`"
            )
        where = _unsafe_line(layout, dotted)
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
        roots = list(dict.fromkeys(name.split(".")[0] for name in new_sections))
        for section in sorted(  # a section before its tables: [events], then [events.fall]
            new_sections, key=lambda name: (roots.index(name.split(".")[0]), name.count("."))
        ):
            append_lines(out, [f"[{section}]", *new_sections[section]], newline)
    return "".join(out)


def append_lines(out: list[str], block: list[str], newline: str) -> None:
    """Add ``block`` (lines without their ending) at the end of ``out`` (a file's lines with
    their endings), after a blank line unless ``out`` ends with one or is empty."""
    if out and not out[-1].endswith(("\n", "\r")):
        out[-1] += newline
    if out and out[-1].strip():
        out.append(newline)
    out.extend(line + newline for line in block)


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
        if re.split(r"[.\[]", dotted, maxsplit=1)[0].strip() == ZONES:
            raise ValueError(
                f"{shown(dotted)}: zones are not changed with `config set`: use `edge-pose "
                "config zone add NAME --polygon ...` or `config zone remove NAME` "
                "(`config zone list` shows them)"
            )
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
        *tables, key = dotted.split(".")
        table = expected
        for name in tables:
            table = table.setdefault(name, {})
        table[key] = value
    check_reads_back(path, new_text, expected)
    if created or new_text != text:
        write_atomic(path, new_text.encode("utf-8"))
    return path, created, cfg


def shown(text: str, limit: int = 40) -> str:
    """``text`` from the command line as one short, safe piece of a message line."""
    quoted = repr(text)  # control characters escaped
    return quoted if len(quoted) <= limit else quoted[: limit - 4] + "...'"


def check_reads_back(path: Path, new_text: str, expected: dict[str, Any]) -> None:
    """EditError unless ``new_text`` parses to ``expected``: a bug in the editor must never
    write a file that says something else than was asked."""
    try:
        got = tomllib.loads(new_text)
    except tomllib.TOMLDecodeError as exc:
        got = {"error": str(exc)}
    if got != expected:
        raise EditError(f"{path}: the edited file would not read back as intended; not written")


def validate_text(path: Path, text: str) -> Config:
    """The config ``text`` would be as ``path``, checked as the service checks it at start-up
    (:func:`~edge_pose.config.load_config`, then the files it names): for edits that are not
    key overrides (a zone added or removed). Problems name ``path``; ConfigError."""
    from edge_pose.config import file_problems, load_config

    fd = os.memfd_create("edge-pose-config", os.MFD_CLOEXEC)  # no file on disk to clean up
    try:
        data = text.encode("utf-8")
        while data:
            data = data[os.write(fd, data) :]
        fake = Path(f"/proc/self/fd/{fd}")
        try:
            cfg = load_config(fake)
        except ConfigError as exc:
            raise ConfigError(
                [line.replace(str(fake), str(path), 1) for line in exc.problems]
            ) from None
    finally:
        os.close(fd)
    if problems := file_problems(cfg):
        raise ConfigError(problems)
    return cfg


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
    """Key paths the file sets to something other than the built-in default (``zones`` when
    it has any: there are none by default)."""
    from edge_pose.config import Config

    changed: set[str] = set()
    _changed(raw, Config, "", changed)
    return changed


def _changed(table: dict[str, Any], model: type[BaseModel], prefix: str, out: set[str]) -> None:
    for key, info in model.model_fields.items():
        if key not in table:
            continue
        value, dotted = table[key], f"{prefix}{key}"
        inner = table_model(info.annotation)
        if inner is not None:
            if isinstance(value, dict):
                _changed(value, inner, f"{dotted}.", out)
        elif key == ZONES and not prefix:
            if value:
                out.add(dotted)
        elif value != info.default:
            out.add(dotted)


def effective_toml(cfg: Config, path: Path | None, changed: set[str]) -> str:
    """``cfg`` as TOML for `config show`: every key, those in ``changed`` marked with their
    default; ``path`` is named in the first line (None: the built-in defaults). A zone's
    ``inactive_after_s`` left unset is left out (TOML has no null)."""
    from edge_pose.config import to_toml_dict

    origin = str(path) if path else "no file: built-in defaults"
    out = [f"# edge-pose effective configuration ({origin})"]
    if changed:
        out.append("# keys marked `# changed` differ from the built-in defaults")
    for section, values in to_toml_dict(cfg).items():
        if isinstance(values, dict):
            _table_lines(out, section, values, changed)
            continue
        for n, entry in enumerate(values):  # the zones: [[zones]] entries
            note = "  # changed (default: no zones)" if n == 0 and section in changed else ""
            out += ["", f"[[{section}]]{note}"]
            out += [f"{k} = {format_value(v)}" for k, v in entry.items() if v is not None]
    return "\n".join(out)


def _table_lines(out: list[str], name: str, values: dict[str, Any], changed: set[str]) -> None:
    """``[name]`` and its keys, then its tables as ``[name.table]``."""
    out += ["", f"[{name}]"]
    for key, value in values.items():
        if isinstance(value, dict):
            continue
        line = f"{key} = {format_value(value)}"
        dotted = f"{name}.{key}"
        info = field_info(dotted)
        if dotted in changed and info is not None:
            line += f"  # changed (default {format_value(info.default)})"
        out.append(line)
    for key, value in values.items():
        if isinstance(value, dict):
            _table_lines(out, f"{name}.{key}", value, changed)
