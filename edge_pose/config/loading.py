"""Reading a config: a TOML file or pipe, bounded, plus the command line's overrides, validated
together into one :class:`~edge_pose.config.schema.Config` or one ConfigError.

A config path may name anything (a FIFO nobody writes to, /dev/zero, a huge or deeply nested
file, a text in another encoding): every way reading can fail is one line naming the file, and
nothing hangs or eats memory. Every problem is collected and raised as one
:class:`~edge_pose.errors.ConfigError` with one line per problem: ``FILE: section.key = VALUE:
what is allowed``; CLI overrides are validated with the file and marked ``(from the command
line)``. A config whose values are valid is then checked against the installed model catalog
(:func:`~edge_pose.config.files.model_name_problem`), located the same way.
"""

from __future__ import annotations

import os
import re
import select
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edge_pose.config.files import MODEL_NAME_KEY, model_name_problem
from edge_pose.config.messages import describe, error_key
from edge_pose.config.schema import SECTIONS, Config
from edge_pose.errors import ConfigError, printable

DEFAULT_CONFIG_PATH = Path("/etc/edge-pose/config.toml")
CLI_NOTE = " (from the command line)"
MAX_CONFIG_BYTES = 1 << 20  # a real config is a few KB
PIPE_WAIT_S = 10  # for the first bytes of a config given as a pipe
MAX_NESTING = 64  # arrays/inline tables open at once; a valid config needs 2 ([[x]] headers)


def load_config(path: Path | None = None, overrides: Mapping[str, object] | None = None) -> Config:
    """Read ``path`` (default: DEFAULT_CONFIG_PATH if present, else built-in defaults), apply
    ``overrides`` (dotted key paths from CLI flags) and validate everything together.

    Raises ConfigError with one line per problem; never lets a traceback or pydantic text through.
    """
    path = config_path(path)
    raw: dict[str, Any] = _read_toml(path) if path is not None else {}
    where = f"{path}: " if path is not None else ""
    problems: list[str] = []
    from_cli = _apply_overrides(raw, overrides or {}, problems)
    for section in SECTIONS:  # build defaults inside validation, so their errors get a key path
        raw.setdefault(section, {})
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        found = [(error_key(err), describe(err)) for err in exc.errors(include_url=False)]
        name = raw["model"].get("name") if isinstance(raw["model"], dict) else None
        if isinstance(name, str) and MODEL_NAME_KEY not in (key for key, _ in found):
            _add_in_field_order(found, MODEL_NAME_KEY, model_name_problem(name))
        problems += [_located(key, line, where, from_cli) for key, line in found]
    else:
        if (unknown := model_name_problem(cfg.model.name)) is not None:
            problems.append(_located(MODEL_NAME_KEY, unknown, where, from_cli))
        if not problems:
            return cfg
    raise ConfigError([printable(line) for line in problems])


def _add_in_field_order(found: list[tuple[str, str]], key: str, line: str | None) -> None:
    """Put ``line`` about ``key`` among pydantic's ``found`` problems where pydantic would have
    listed it (the order of the sections and their fields), so a config with several mistakes
    lists them all, in the same order, whichever phase found them."""
    if line is None:
        return
    order = _field_order(key)
    at = next((i for i, (other, _) in enumerate(found) if _field_order(other) > order), len(found))
    found.insert(at, (key, line))


def _field_order(key: str) -> tuple[int, int]:
    """Where ``section.field`` comes in the schema (unknown names last)."""
    section, _, name = key.partition(".")
    sections = list(Config.model_fields)
    if section not in sections:
        return (len(sections), 0)
    annotation = Config.model_fields[section].annotation
    fields = list(getattr(annotation, "model_fields", {}))
    return (sections.index(section), fields.index(name) if name in fields else len(fields))


def _located(key: str, line: str, where: str, from_cli: set[str]) -> str:
    """``line`` about ``key`` marked with where its value came from: the file or the CLI."""
    if key in from_cli:
        return line + CLI_NOTE
    return where + line


def config_path(path: Path | None) -> Path | None:
    """The file a config comes from: ``path``, else DEFAULT_CONFIG_PATH if present, else None."""
    if path is None and _present(DEFAULT_CONFIG_PATH):
        return DEFAULT_CONFIG_PATH
    return path


def _present(path: Path) -> bool:
    """Whether ``path`` exists; an unsearchable /etc/edge-pose counts as present, so the user is
    told "permission denied" instead of silently running on built-in defaults."""
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True
    return True


def _read_toml(path: Path) -> dict[str, Any]:
    """Parse the file; every way this can fail becomes one ConfigError line naming the file."""
    text = read_config_text(path)
    if (line := _too_deep(text)) is not None:
        raise ConfigError(
            [
                f"{path}: {_where(text, line)}arrays or inline tables nested more than "
                f"{MAX_NESTING} deep: a config value is a string, a number or true/false"
            ]
        )
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = re.search(r"\s*\(at (?:line (\d+), column (\d+)|(end of document))\)$", message)
        position = "position unknown"
        if found:
            message = message[: found.start()]
            position = "end of file" if found[3] else f"line {found[1]}, column {found[2]}"
        raise ConfigError([f"{path}: {position}: TOML syntax error: {message}"]) from None
    except ValueError:  # an integer beyond Python's digit limit is not a TOMLDecodeError
        found = _LONG_NUMBER.search(text)
        line = text.count("\n", 0, found.start()) + 1 if found else None
        raise ConfigError(
            [f"{path}: {_where(text, line)}a number of thousands of digits: too long to be a value"]
        ) from None


# Strings and comments (whose brackets do not count), brackets and line ends.
_TOKENS = re.compile(r"\"(?:\\.|[^\"\\\n])*\"|'[^'\n]*'|#[^\n]*|[\[\]{}\n]")
_LONG_NUMBER = re.compile(r"[\d_]{1000,}")  # only to find the line of the one that failed
_LINE_KEY = re.compile(r"\s*([A-Za-z0-9_.-]{1,64})\s*=")


def _too_deep(text: str) -> int | None:
    """The line where arrays or inline tables nest deeper than MAX_NESTING: the TOML parser
    recurses once per level, and a few hundred brackets end it in a RecursionError."""
    depth, line = 0, 1
    for token in _TOKENS.finditer(text):
        char = token[0]
        if char == "\n":
            line += 1
        elif char in "[{":
            depth += 1
            if depth > MAX_NESTING:
                return line
        elif char in "]}":
            depth = max(0, depth - 1)
    return None


def _where(text: str, line: int | None) -> str:
    """``line N (key): `` for a message about that line of ``text`` ("" when unknown)."""
    if line is None:
        return ""
    key = _LINE_KEY.match(text.splitlines()[line - 1])
    return f"line {line}" + (f" ({key[1]})" if key else "") + ": "


def _read_pipe(path: Path) -> bytes:
    """A pipe or FIFO read to its end (bounded), unless nothing arrives for PIPE_WAIT_S: a named
    FIFO that no program writes to would otherwise wait forever."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # opening a FIFO blocks until a writer
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if not poller.poll(PIPE_WAIT_S * 1000):
            raise ConfigError(
                [f"{path}: a pipe nothing was written to in {PIPE_WAIT_S} s (no writer?)"]
            )
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_CONFIG_BYTES and (chunk := os.read(fd, 1 << 16)):
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_config_text(path: Path) -> str:
    """The text of a config file (also for `config set`, which edits it); a file that cannot
    be one (missing, unreadable, over 1 MiB, not UTF-8, a BOM, a pipe nobody writes to) is a
    ConfigError."""
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError
        if stat.S_ISSOCK(mode):
            raise ConfigError([f"{path}: a socket, expected a TOML config file"])
        if stat.S_ISFIFO(mode):  # `--config /dev/stdin`, `<(...)`: fine while someone writes
            data = _read_pipe(path)
        else:
            with path.open("rb") as file:  # bounded: /dev/zero never ends (/dev/null is fine)
                data = file.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError([f"{path}: too large for a config file (at most 1 MiB)"])
    except FileNotFoundError:
        raise ConfigError(
            [
                f"config file not found: {path} "
                "(create it from config/edge-pose.toml or pass --config)"
            ]
        ) from None
    except PermissionError:
        raise ConfigError(
            [
                f"{path}: permission denied reading the config file "
                "(fix its permissions or run as a user that may read it)"
            ]
        ) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory, expected a TOML config file"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the config file: {exc.strerror}"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (bad byte at offset {exc.start})"]) from None
    if text.startswith("\ufeff"):
        raise ConfigError(
            [f"{path}: starts with a byte-order mark (BOM): save it as UTF-8 without BOM"]
        )
    return text


def _apply_overrides(
    raw: dict[str, Any], overrides: Mapping[str, object], problems: list[str]
) -> set[str]:
    """Put ``section.key`` overrides into ``raw``; returns the key paths that came from the CLI."""
    applied: set[str] = set()
    for dotted, value in overrides.items():
        section, *tables, key = dotted.split(".") if "." in dotted else (dotted, "")
        if not key or len(tables) > 1:
            problems.append(
                f"{dotted}: not a config key (expected section.key, e.g. camera.fps)" + CLI_NOTE
            )
            continue
        if section not in SECTIONS:
            problems.append(
                f"{dotted}: unknown section [{section}] (known sections: "
                f"{', '.join(SECTIONS)})" + CLI_NOTE
            )
            continue
        table = raw.setdefault(section, {})
        for name in tables:  # [events.fall]: a table inside the section
            table = table.setdefault(name, {}) if isinstance(table, dict) else None
        if isinstance(table, dict):  # else the file's own error about the table is reported
            table[key] = value
            applied.add(dotted)
    return applied

