"""Config errors in words: a pydantic error turned into one line a user can act on.

A config problem surfaces as a journal line on a headless device, so each line says where
(``section.key``), what was found (the value, cut to what a line can show, control characters
escaped) and what is allowed (the range, the choices, the type, a did-you-mean for a typo),
never pydantic's own wording. The schema's own checks raise messages that are used as they are.
"""

from __future__ import annotations

import difflib
from typing import Any, get_args

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from edge_pose.config.schema import SECTIONS, Config

_MAX_REPR = 60
_NOUNS: dict[object, str] = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "a string",
}


def error_key(err: ErrorDetails) -> str:
    """The key an error is about, as the config's readers write it: ``camera.fps``,
    ``events.fall.confirm_s``, ``zones[0].polygon`` (the section alone for a whole section),
    never a part inside a value."""
    keep: list[str] = []
    model: type[BaseModel] | None = Config
    for part in _location(err):
        keep.append(part)
        if part.startswith("["):
            continue
        info = model.model_fields.get(part) if model is not None else None
        model = _table_of(info.annotation) if info is not None else None
        if model is None:
            break
    return _dotted(tuple(keep))


def _location(err: ErrorDetails) -> tuple[str, ...]:
    """The key path of an error; a cross-field check (model validator) names its own key.
    An unknown key's name is the file's, of any length: cut to what a line can show; the
    index of an array's entry reads ``[0]``."""
    loc = tuple(
        f"[{part}]" if isinstance(part, int) else _shorten(str(part)) for part in err["loc"]
    )
    ctx = err.get("ctx") or {}
    return (*loc, ctx["key"]) if err["type"] == "config" and "key" in ctx else loc


def _dotted(loc: tuple[str, ...]) -> str:
    """A key path as the config's readers write it: ``events.fall.confirm_s``, ``zones[0].name``."""
    return ".".join(loc).replace(".[", "[")


def describe(err: ErrorDetails) -> str:
    """One pydantic error -> ``path = value: what is allowed`` (no pydantic wording)."""
    loc = _location(err)
    kind, value, ctx = err["type"], err["input"], err.get("ctx") or {}
    if "key" in ctx:
        value = ctx["value"]
    dotted = _dotted(loc)
    if kind == "extra_forbidden":
        return _unknown(loc, value)
    if kind == "model_type":
        table = f"must be a table ([{dotted}] section), not {_kind(value)}"
        return problem_line(dotted, value, table)
    allowed, bounds = _allowed(loc)
    if kind == "config":
        message = err["msg"]
    elif kind == "greater_than_equal":
        message = f"must be >= {_num(bounds[0])}" + _range_note(bounds)
    elif kind == "less_than_equal":
        message = f"must be <= {_num(bounds[1])}" + _range_note(bounds)
    elif kind == "finite_number":
        message = f"must be {allowed}, not nan or inf"
    elif kind == "literal_error":
        message = f"must be one of: {', '.join(_literal_values(loc))}"
    elif kind.endswith("_type"):
        message = f"must be {allowed}, not {_kind(value)}" + _type_hint(kind, value)
    else:
        message = str(err["msg"]).replace("\n", " ")
    return problem_line(dotted, value, message)


def problem_line(key: str, value: Any, message: str) -> str:
    """``section.key = VALUE: message``, the form of every problem with a value."""
    return f"{key} = {_short(value)}: {message}"


def _unknown(loc: tuple[str, ...], value: Any) -> str:
    """Unknown section or key: list what is known and suggest the closest name (typos)."""
    sections = list(SECTIONS)
    if len(loc) == 1:
        name = loc[0]
        if isinstance(value, dict):
            return (
                f"[{name}]: unknown section{_did_you_mean(name, sections)} "
                f"(known sections: {', '.join(sections)})"
            )
        homes = [s for s, model in SECTIONS.items() if name in model.model_fields]
        hint = f" (did you mean to put it under [{homes[0]}]?)" if homes else ""
        return (
            f"{name}: unknown key at the top level: keys belong in a section{hint} "
            f"(known sections: {', '.join(sections)})"
        )
    section, key = loc[0], loc[-1]
    parent = _model(loc[:-1])
    known = list(parent.model_fields) if parent is not None else []
    dotted = _dotted(loc)
    table = _dotted(tuple(part for part in loc[:-1] if not part.startswith("[")))
    if loc[1:2] and loc[1].startswith("["):  # an entry of an array of tables
        table = f"[{table}]"
    if section == "mqtt" and "password" in key and key != "password_file":
        return (
            f"{dotted}: unknown key: the config never holds secrets; put the password in a "
            "file and set mqtt.password_file (or use a systemd credential)"
        )
    return (
        f"{dotted}: unknown key{_did_you_mean(key, known)} "
        f"(known keys in [{table}]: {', '.join(known)})"
    )


def _did_you_mean(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _field(loc: tuple[str, ...]) -> FieldInfo | None:
    """The schema's field at a key path (through nested tables and arrays of tables)."""
    model = _model(loc[:-1])
    return model.model_fields.get(loc[-1]) if model is not None and loc else None


def _model(loc: tuple[str, ...]) -> type[BaseModel] | None:
    """The table (a pydantic model) at a key path: ``()`` is the whole config."""
    model: type[BaseModel] | None = Config
    for part in loc:
        if part.startswith("["):  # an entry of an array of tables: same model
            continue
        info = model.model_fields.get(part) if model is not None else None
        if info is None:
            return None
        model = _table_of(info.annotation)
    return model


def _table_of(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds: itself, or the entries of a tuple of them."""
    for kind in (annotation, *get_args(annotation)):
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return kind
    return None


def _allowed(loc: tuple[str, ...]) -> tuple[str, tuple[float | None, float | None]]:
    """What a field accepts, in words, and its (lower, upper) bounds."""
    field = _field(loc)
    if field is None:
        return "valid", (None, None)
    lo = next((m.ge for m in field.metadata if hasattr(m, "ge")), None)
    hi = next((m.le for m in field.metadata if hasattr(m, "le")), None)
    noun = _NOUNS.get(field.annotation, "valid")
    if lo is not None and hi is not None:
        noun += f" from {_num(lo)} to {_num(hi)}"
    elif lo is not None:
        noun += f" >= {_num(lo)}"
    return noun, (lo, hi)


def _range_note(bounds: tuple[float | None, float | None]) -> str:
    lo, hi = bounds
    return f" (allowed: {_num(lo)} to {_num(hi)})" if lo is not None and hi is not None else ""


def _literal_values(loc: tuple[str, ...]) -> list[str]:
    field = _field(loc)
    return [str(v) for v in getattr(field.annotation, "__args__", ())] if field else []


def _type_hint(kind: str, value: Any) -> str:
    if isinstance(value, str) and kind in ("int_type", "float_type", "bool_type"):
        return " (remove the quotes)"
    if kind == "string_type" and isinstance(value, int | float | bool):
        return " (put it in quotes)"
    if kind == "float_type" and isinstance(value, int) and not isinstance(value, bool):
        return " this large (it has no float value)"
    return ""


def _kind(value: Any) -> str:
    for types, name in (
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a number"),
        (str, "a string"),
        (dict, "a table"),
        (list, "an array"),
    ):
        if isinstance(value, types):
            return name
    return "a date/time" if hasattr(value, "isoformat") else type(value).__name__


def _num(x: float | None) -> str:
    return f"{x:g}" if x is not None else "?"


def _short(value: Any) -> str:
    return _shorten(repr(value))


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."

