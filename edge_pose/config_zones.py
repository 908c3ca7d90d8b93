"""`edge-pose config zone add | remove | list`: the ``[[zones]]`` entries of the config file.

A zone is a ``[[zones]]`` block (docs/configuration.md): ``add`` appends one at the end of the
file, ``remove`` deletes exactly one, from its header to its last line (comment and blank
lines after it belong to what follows, and stay). Like ``config set``
(edge_pose.config_edit), the would-be file is checked as the service checks it before
anything is written (a bad polygon, a name used twice, a zone that is not there: one line,
exit 78, the file untouched), must read back as exactly the intended data, and is written
atomically; a missing file is created from the documented defaults.

What the command line says is parsed here (:func:`parse_polygon`, :func:`parse_seconds`):
a corner that is not ``x,y`` or a number that is not one is a usage error (exit 2) in one
line; whether the corners make a zone (inside the picture, not crossing) is the schema's
(edge_pose/safety/geometry.py), in its words.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_pose.config_edit import (
    ZONES,
    EditError,
    append_lines,
    check_reads_back,
    defaults_file,
    format_value,
    scan,
    shown,
    validate_text,
    write_atomic,
)
from edge_pose.errors import ConfigError
from edge_pose.safety.geometry import MAX_CORNERS

if TYPE_CHECKING:
    from edge_pose.config import Config
    from edge_pose.config.schema import ZoneConfig

MAX_POLYGON_TEXT = 4096  # 64 corners with 15 digits each fit in well under this
POLYGON_EXAMPLE = '"0.1,0.6 0.45,0.6 0.45,0.95 0.1,0.95"'
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")  # ASCII only
_HOW = (
    f"write each corner as x,y (fractions 0 to 1 of the picture's width and height), corners "
    f"separated by spaces, e.g. --polygon {POLYGON_EXAMPLE}"
)


# --------------------------------------------------------------------------- the command line


def parse_polygon(text: str) -> tuple[tuple[float, float], ...]:
    """``"x,y x,y x,y ..."`` -> the corners; ValueError (one line: what, where, how) for text
    that is not 3 to 64 pairs of finite numbers. Spaces around a comma and ';' between
    corners are allowed."""
    if len(text) > MAX_POLYGON_TEXT:
        raise ValueError(
            f"is {len(text)} characters long: a zone has at most {MAX_CORNERS} corners "
            f"(at most {MAX_POLYGON_TEXT} characters); {_HOW}"
        )
    # Only ASCII spaces, tabs and ';' separate: any other character (a newline, NEL, a control
    # character) is part of a corner, and a corner holding one is no x,y pair.
    tokens = [t for t in re.split(r"[ \t;]+", re.sub(r"[ \t]*,[ \t]*", ",", text)) if t]
    if not 3 <= len(tokens) <= MAX_CORNERS:
        raise ValueError(
            f"{shown(text)} has {len(tokens)} corner(s): a zone needs 3 to {MAX_CORNERS}; {_HOW}"
        )
    corners = []
    for n, token in enumerate(tokens, 1):
        parts = token.split(",")
        if len(parts) != 2:
            raise ValueError(f"corner {n} {shown(token)} is not x,y: {_HOW}")
        pair = []
        for axis, part in zip("xy", parts, strict=True):
            if not _NUMBER.fullmatch(part):
                raise ValueError(f"corner {n} {shown(token)}: {axis} is not a number: {_HOW}")
            value = float(part)
            if not math.isfinite(value):
                raise ValueError(
                    f"corner {n} {shown(token)}: {axis} is too large to be a number: {_HOW}"
                )
            pair.append(value + 0.0)  # -0.0 -> 0.0
        corners.append((pair[0], pair[1]))
    return tuple(corners)


def parse_seconds(text: str) -> float:
    """``--inactive-after``: a finite number of seconds >= 0 (0: never inactive here)."""
    if not _NUMBER.fullmatch(text.strip()) or text.strip().startswith("-"):
        raise ValueError(
            f"{shown(text)} is not a number of seconds >= 0 (0: never report inactivity here)"
        )
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{shown(text)} is too large to be a number of seconds")
    return value + 0.0


# --------------------------------------------------------------------------- add, remove


@dataclass
class _Source:
    """The file to edit: its path, its text (the documented defaults when it is missing),
    whether it is created, and its config as it is now."""

    path: Path
    text: str
    created: bool
    cfg: Config


def _read(path: Path) -> _Source:
    from edge_pose.config import DEFAULT_CONFIG_PATH, load_config, read_config_text

    created = not path.exists()
    if created and not path.parent.exists() and path != DEFAULT_CONFIG_PATH:
        raise EditError(f"{path}: the folder {path.parent} does not exist (check --config)")
    source = defaults_file() if created else path
    text = read_config_text(source)
    return _Source(path, text, created, load_config(source))  # an invalid file: not rewritten


def _find(cfg: Config, name: str) -> ZoneConfig | None:
    """The zone called ``name`` (names are compared as the schema does: case-insensitively)."""
    return next((z for z in cfg.zones if z.name.casefold() == name.casefold()), None)


def add_zone(
    path: Path,
    name: str,
    polygon: tuple[tuple[float, float], ...],
    lying_ok: bool = False,
    inactive_after_s: float | None = None,
) -> tuple[Path, bool, Config]:
    """Append a ``[[zones]]`` entry to ``path`` (created from the documented defaults when
    missing). Returns (path, whether it was created, the new Config). Raises ConfigError
    (invalid, or the name is taken; nothing written), EditError, OSError."""
    src = _read(path)
    if (taken := _find(src.cfg, name)) is not None:
        raise ConfigError(
            [
                f"zone {shown(name)} is already in {path} (as {taken.name!r}): choose another "
                f"name, or first `edge-pose config zone remove {_arg(taken.name)}`"
            ]
        )
    entry: dict[str, Any] = {"name": name, "polygon": [list(p) for p in polygon]}
    entry["lying_ok"] = lying_ok
    if inactive_after_s is not None:
        entry["inactive_after_s"] = inactive_after_s
    if problems := _zone_problems(entry, len(src.cfg.zones)):
        raise ConfigError(problems)  # before the text: a 1 MB name makes no 1 MB file
    lines = src.text.splitlines(keepends=True)
    layout = scan(lines)
    if ZONES in layout.sealed:  # `zones = [...]` on one line: [[zones]] cannot follow it
        raise EditError(
            f"{path}: line {layout.sealed[ZONES]} defines the zones as an inline array, which "
            "cannot be edited safely: edit it by hand (or write each zone as a [[zones]] block)"
        )
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    block = [f"[[{ZONES}]]", *(f"{key} = {format_value(v)}" for key, v in entry.items())]
    append_lines(lines, block, newline)
    new_text = "".join(lines)
    cfg = _validated(path, new_text, len(src.cfg.zones))
    expected = tomllib.loads(src.text)
    expected.setdefault(ZONES, []).append(entry)
    check_reads_back(path, new_text, expected)
    write_atomic(path, new_text.encode("utf-8"))
    return path, src.created, cfg


def remove_zone(path: Path, name: str) -> tuple[Path, Config, str]:
    """Delete the ``[[zones]]`` entry called ``name`` from ``path``. Returns (path, the new
    Config, the zone's name as the file spells it). Raises ConfigError (no such zone, or the
    file is invalid; nothing written), EditError, OSError."""
    if not path.exists():
        raise ConfigError([f"zone {shown(name)}: {path} does not exist, so it has no zones"])
    src = _read(path)
    zone = _find(src.cfg, name)
    if zone is None:
        names = ", ".join(repr(z.name) for z in src.cfg.zones)
        listed = f"its zones: {names}" if names else "it has no zones"
        raise ConfigError(
            [f"zone {shown(name)} is not in {path} ({listed}; see `edge-pose config zone list`)"]
        )
    lines = src.text.splitlines(keepends=True)
    blocks = [b for b in scan(lines).blocks if b.name == ZONES]
    block = next((b for b in blocks if _block_name(lines, b.start, b.end) == zone.name), None)
    if block is None:
        raise EditError(
            f"zone {zone.name!r}: {path} does not write it as a [[zones]] block of its own, "
            "which cannot be edited safely: edit it by hand"
        )
    start, end = block.start, block.end
    while end > start + 1 and _is_filler(lines[end - 1]):
        end -= 1  # trailing comments and blank lines belong to what follows
    if start == 0 or _blank(lines[start - 1]):  # one blank line stays between its neighbours
        while end < len(lines) and _blank(lines[end]):
            end += 1
        if end == len(lines) and start > 0:
            start -= 1  # the blank line `add` put before it
    new_text = "".join(lines[:start] + lines[end:])
    cfg = _validated(path, new_text, None)
    expected = tomllib.loads(src.text)
    expected[ZONES] = [z for z in expected[ZONES] if z.get("name") != zone.name]
    if not expected[ZONES]:
        del expected[ZONES]
    check_reads_back(path, new_text, expected)
    write_atomic(path, new_text.encode("utf-8"))
    return path, cfg, zone.name


def _zone_problems(entry: dict[str, Any], index: int) -> list[str]:
    """What the schema says of the new zone on its own, as the lines a file would get, marked
    as coming from the command line."""
    from pydantic import ValidationError

    from edge_pose.config.loading import CLI_NOTE
    from edge_pose.config.messages import describe
    from edge_pose.config.schema import ZoneConfig
    from edge_pose.errors import printable

    try:
        ZoneConfig.model_validate(entry)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            err["loc"] = (ZONES, index, *err["loc"])
            problems.append(printable(describe(err)) + CLI_NOTE)
        return problems
    return []


def _validated(path: Path, text: str, new: int | None) -> Config:
    """``text`` checked as ``path``; problems about the new zone (entry ``new``) come from the
    command line, not from the file, and are marked so."""
    try:
        return validate_text(path, text)
    except ConfigError as exc:
        if new is None:
            raise
        ours = f"{path}: {ZONES}[{new}]."
        raise ConfigError(
            [
                f"{line.removeprefix(f'{path}: ')} (from the command line)"
                if line.startswith(ours)
                else line
                for line in exc.problems
            ]
        ) from None


def _block_name(lines: list[str], start: int, end: int) -> object:
    """The ``name`` of the ``[[zones]]`` entry in ``lines[start:end]`` (None: it has none)."""
    try:
        entries = tomllib.loads("".join(lines[start:end])).get(ZONES)
    except ValueError:
        return None
    return entries[0].get("name") if isinstance(entries, list) and len(entries) == 1 else None


def _blank(line: str) -> bool:
    return not line.strip()


def _is_filler(line: str) -> bool:
    return not line.strip() or line.lstrip().startswith("#")


def _arg(name: str) -> str:
    """``name`` as a shell argument (zone names are letters, digits, spaces, '_' and '-')."""
    return f"'{name}'" if " " in name else name


# --------------------------------------------------------------------------- list


def zone_lines(cfg: Config) -> list[str]:
    """One line per zone: its name, corners (as --polygon takes them) and flags."""
    out = []
    for zone in cfg.zones:
        corners = " ".join(f"{_num(x)},{_num(y)}" for x, y in zone.polygon)
        flags = ["lying ok" if zone.lying_ok else "lying is a fall"]
        if zone.inactive_after_s is None:
            after = _num(cfg.events.inactivity.after_s)
            flags.append(f"inactive after {after} s (events.inactivity.after_s)")
        elif zone.inactive_after_s == 0:
            flags.append("never inactive")
        else:
            flags.append(f"inactive after {_num(zone.inactive_after_s)} s")
        out.append(f'{zone.name}: {len(zone.polygon)} corners "{corners}", {", ".join(flags)}')
    return out


def _num(value: float) -> str:
    text = repr(value)
    return text.removesuffix(".0")
