"""TOML -> typed, validated configuration.

The appliance runs unattended, so a config mistake must stop it at start-up with a message the
user can act on, not surface later as a strange runtime failure. Hence:

- pydantic v2 models with ``extra="forbid"`` (a typo such as ``fsp`` is an error, not a silently
  ignored key) and strict types (``port = "1883"`` or ``fps = true`` are errors; an int is still
  accepted where a float is expected, as TOML users write ``keypoints_max_rate = 30``);
- every problem is collected and raised as one :class:`~edge_pose.errors.ConfigError` with one line
  per problem: ``FILE: section.key = VALUE: what is allowed``; CLI overrides are validated with
  the file and marked ``(from the command line)``;
- secrets never live in the config: ``mqtt.password_file`` names a file (or a systemd credential),
  read only by :func:`read_password`, so a password cannot leak through repr, logs or errors.
"""

from __future__ import annotations

import difflib
import glob
import logging
import os
import re
import select
import socket
import stat
import tempfile
import tomllib
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from edge_pose.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = Path("/etc/edge-pose/config.toml")
STATUS_DIR_NAME = "edge-pose"
SYSTEM_STATUS_DIR = Path("/run") / STATUS_DIR_NAME
CLI_NOTE = " (from the command line)"
MAX_CONFIG_BYTES = 1 << 20  # a real config is a few KB
PIPE_WAIT_S = 10  # for the first bytes of a config given as a pipe
LABELS_FILE = "labels.txt"  # a TFLite classifier's labels, beside it unless classifier.labels
_MAX_REPR = 60
MAX_TEXT = 4096  # PATH_MAX: no path, host or name in a config is longer
MAX_NESTING = 64  # arrays/inline tables open at once; a valid config needs 2 ([[x]] headers)

_DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PICAMERA = re.compile(r"picamera2(:\d+)?")
_EDGETPU_DEVICE = re.compile(r"((usb|pci)(:\d+)?)?")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_DEVICE_ID_ALLOWED = "1-64 letters, digits, '_' or '-' (it is an MQTT topic level)"
_SOURCE_ALLOWED = (
    "picamera2, picamera2:N, file:PATH, v4l2:/dev/videoN or a path to a video/image file"
)

_STRICT = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


def _bad(message: str, **context: Any) -> PydanticCustomError:
    """A validation error whose text is used as is; ``key``/``value`` name the offending key when
    a model validator (which pydantic locates at the section) checks several keys together."""
    return PydanticCustomError("config", message, context or None)


Size = Annotated[int, Field(ge=16, le=4096)]
Fraction = Annotated[float, Field(ge=0, le=1)]


def _check_text(value: Any) -> Any:
    """Every string of the config: no control character (a NUL cannot be in a path or host name
    and crashes the call that gets it; escapes and newlines forge terminal and log lines) and
    no more than MAX_TEXT characters."""
    if not isinstance(value, str):
        return value
    if len(value) > MAX_TEXT:
        raise _bad(f"is {len(value)} characters long: at most {MAX_TEXT}")
    bad = next((c for c in value if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        raise _bad(
            f"must not contain control characters (found U+{ord(bad):04X} at position "
            f"{value.index(bad)}): remove it"
        )
    return value


def _known_home(value: str) -> str:
    """A path starting with ``~user`` names a user that exists: expanding an unknown one fails
    where the path is used (the camera, the password), as a crash instead of this message."""
    path = value.removeprefix("file:")
    if path.startswith("~") and os.path.expanduser(path) == path:
        user = path[1:].partition("/")[0]
        who = f"user {user!r}" if user else "the home folder (HOME is not set)"
        raise _bad(f"{who} is not known on this system: write the path in full")
    return value


class _Section(BaseModel):
    """A config section: strict types, no unknown keys, and strings fit for paths and logs."""

    model_config = _STRICT

    _text = field_validator("*")(_check_text)


# --------------------------------------------------------------------------- models


class DeviceConfig(_Section):
    """Who this device is: ``id`` is the MQTT topic level and the Home Assistant device id."""

    id: str = Field(default="", validate_default=True)  # "" -> host name, resolved on load

    @field_validator("id")
    @classmethod
    def _resolve_id(cls, value: str) -> str:
        """Default to the host name (its first label: dots would read as a domain, not an id)."""
        if value:
            if not _DEVICE_ID.fullmatch(value):
                raise _bad(f"must be {_DEVICE_ID_ALLOWED}")
            return value
        host = socket.gethostname()
        derived = host.split(".", 1)[0]
        if not _DEVICE_ID.fullmatch(derived):
            raise _bad(
                f"the host name {host!r} is not a usable device id: set device.id to "
                f"{_DEVICE_ID_ALLOWED}"
            )
        return derived


class CameraConfig(_Section):
    """Where frames come from and at what size/rate (the ISP or decoder scales, not Python)."""

    source: str = "picamera2"
    width: Size = 640
    height: Size = 480
    fps: Annotated[int, Field(ge=1, le=240)] = 30
    realtime: bool = True
    loop: bool = False

    _home = field_validator("source")(_known_home)

    @field_validator("source")
    @classmethod
    def _check_source(cls, value: str) -> str:
        """Mirror open_camera's parsing so a typo fails at load time, not when the camera opens."""
        if _PICAMERA.fullmatch(value):
            return value
        if value.startswith("v4l2:"):
            if value.removeprefix("v4l2:").startswith("/dev/"):
                return value
        elif value.startswith("file:"):
            if value.removeprefix("file:"):
                return value
        elif value and not _SCHEME.match(value) and not value.lower().startswith("picamera"):
            return value  # a plain path; whether it exists is the camera's business
        raise _bad(f"must be {_SOURCE_ALLOWED}")


class ModelConfig(_Section):
    """Which MoveNet build runs where; ``dir`` = "" uses the default model directory."""

    name: str = "movenet_lightning_int8"
    backend: Literal["auto", "cpu", "edgetpu"] = "auto"
    device: str = ""
    threads: Annotated[int, Field(ge=1, le=64)] = 4
    min_pose_score: Fraction = 0.25
    dir: str = ""
    crop: bool = True
    runtime: Literal["auto", "ai-edge-litert", "tflite-runtime", "tensorflow"] = "auto"
    delegate_library: str = "libedgetpu.so.1"
    sysfs_root: str = "/sys"
    on_delegate_failure: Literal["fallback", "exit"] = "fallback"

    _home = field_validator("name", "dir")(_known_home)

    @field_validator("delegate_library")
    @classmethod
    def _check_library(cls, value: str) -> str:
        if not value or ("/" in value and not value.startswith("/")):
            raise _bad("must be a library name (libedgetpu.so.1) or an absolute path")
        return value

    @field_validator("sysfs_root")
    @classmethod
    def _check_sysfs(cls, value: str) -> str:
        if not value.startswith("/"):
            raise _bad("must be an absolute path (normally /sys)")
        return value

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        """A catalog name or a .tflite path; an unknown name would otherwise fail only at run."""
        if value.endswith(".tflite"):
            return value
        from edge_pose.inference.models import catalog  # lazy: config stays cheap to import

        try:
            names = sorted(catalog())
        except ModelError:  # no manifest: resolve_model reports that when the model is loaded
            return value
        if value not in names:
            raise _bad(f"must be a catalog model ({', '.join(names)}) or a path to a .tflite file")
        return value

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        if not _EDGETPU_DEVICE.fullmatch(value):
            raise _bad("must be '' (first Edge TPU found), usb, usb:N, pci or pci:N")
        return value


class MqttConfig(_Section):
    """Broker connection. Only the *path* of the password is kept here (see read_password)."""

    enabled: bool = True
    host: str = "localhost"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    topic_prefix: str = "edge-pose"
    username: str = ""
    password_file: str = ""
    tls: bool = False
    ca_file: str = ""
    certfile: str = ""
    keyfile: str = ""
    keepalive: Annotated[int, Field(ge=5, le=3600)] = 60
    keypoints_max_rate: Annotated[float, Field(ge=0)] = 30.0
    stats_interval: Annotated[float, Field(ge=5)] = 60.0
    client_id: str = ""
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    compact_keypoints: bool = False
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    discovery_status_topic: str = "homeassistant/status"

    _home = field_validator("password_file", "ca_file", "certfile", "keyfile")(_known_home)

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        if not value or any(c.isspace() for c in value):
            raise _bad("must be a host name or IP address (not empty, no spaces)")
        if "://" in value:
            raise _bad(
                "must be a host name or IP address, not a URL: drop the scheme "
                "(TLS is mqtt.tls, the port mqtt.port)"
            )
        if value.startswith("["):
            raise _bad(
                "must be a host name or IP address: write an IPv6 address without brackets "
                "(the port goes in mqtt.port)"
            )
        name, colon, port = value.rpartition(":")
        if colon and port.isdigit() and ":" not in name:  # one colon: not an IPv6 address
            raise _bad(f"must be a host name or IP address: put the port in mqtt.port = {port}")
        return value

    @field_validator("topic_prefix", "discovery_prefix", "discovery_status_topic")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        """Wildcards, empty levels or a '$' start would make topics unsubscribable or reserved."""
        levels = value.split("/")
        if (
            not value
            or "" in levels
            or "+" in value
            or "#" in value
            or "\0" in value
            or value.startswith("$")
        ):
            raise _bad(
                "must be one or more MQTT topic levels separated by '/', without '+', '#', "
                "a leading '$', a leading or trailing '/' or empty levels"
            )
        return value

    @field_validator("client_id")
    @classmethod
    def _check_client_id(cls, value: str) -> str:
        if any(c.isspace() for c in value):
            raise _bad("must not contain spaces ('' = edge-pose-<device id>)")
        return value

    @model_validator(mode="after")
    def _check_pairs(self) -> MqttConfig:
        """Settings that only make sense together; silently ignoring one would weaken security."""
        if bool(self.certfile) != bool(self.keyfile):
            key = "keyfile" if self.certfile else "certfile"
            raise _bad(
                "certfile and keyfile go together: set both (client certificate) or neither",
                key=key,
                value="",
            )
        for key in ("ca_file", "certfile"):
            if getattr(self, key) and not self.tls:
                raise _bad(
                    "is only used with TLS: set mqtt.tls = true (or clear it)",
                    key=key,
                    value=getattr(self, key),
                )
        if self.password_file and not self.username:
            raise _bad(
                "a password needs a user name: set mqtt.username",
                key="password_file",
                value=self.password_file,
            )
        return self


Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]


class SmoothingConfig(_Section):
    """One Euro filter on keypoints (MoveNet's video-pipeline defaults) and crop low-pass."""

    enabled: bool = True
    frequency: Positive = 30.0
    min_cutoff: Positive = 2.5
    beta: NonNegative = 30.0  # MoveNet uses 300: too little smoothing (docs/smoothing.md)
    derivative_cutoff: Positive = 2.5
    threshold_cutoff: Positive = 0.5
    threshold_beta: NonNegative = 5.0
    crop_alpha: Fraction = 0.9


class ClassifierConfig(_Section):
    """Which classifier labels poses, how labels are stabilised, and which pair counts reps."""

    type: Literal["rules", "knn", "tflite", "none"] = "rules"
    path: str = ""  # knn: the trained classifier file; tflite: the model
    labels: str = ""  # tflite: labels.txt, one label per line
    ema_window: Annotated[int, Field(ge=1, le=100)] = 10
    ema_alpha: Annotated[float, Field(gt=0, le=1)] = 0.2
    enter_threshold: Fraction = 0.6
    exit_threshold: Fraction = 0.4
    unknown_after_s: NonNegative = 1.0
    rep_down: str = "squat_down"  # entering this label starts a repetition...
    rep_up: str = "standing"  # ...and reaching this one completes it ("" = no counting)
    rep_name: str = "squat"
    person_enter_s: NonNegative = 0.3
    person_leave_s: NonNegative = 1.0

    _home = field_validator("path", "labels")(_known_home)

    @model_validator(mode="after")
    def _check_thresholds(self) -> ClassifierConfig:
        if self.exit_threshold > self.enter_threshold:
            raise _bad(
                "must be <= enter_threshold (hysteresis: leave a label below a lower score)",
                key="exit_threshold",
                value=self.exit_threshold,
            )
        if self.type in ("knn", "tflite") and not self.path:
            raise _bad(f"classifier.type = {self.type!r} needs a file", key="path", value="")
        return self


class StatusConfig(_Section):
    """Where status.json goes; "" = resolved at run time by :func:`resolve_status_dir`."""

    dir: str = ""
    min_fps: NonNegative = 0.0  # below this processed rate `edge-pose status` says degraded

    _home = field_validator("dir")(_known_home)


class Config(BaseModel):
    """The whole configuration, one attribute per TOML section."""

    model_config = _STRICT

    device: DeviceConfig = Field(default_factory=DeviceConfig)
    camera: CameraConfig = Field(default_factory=CameraConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    smoothing: SmoothingConfig = Field(default_factory=SmoothingConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    status: StatusConfig = Field(default_factory=StatusConfig)

    @model_validator(mode="after")
    def _fill_client_id(self) -> Config:
        """Derive the MQTT client id from the device id so two devices never kick each other off."""
        if not self.mqtt.client_id:
            mqtt = self.mqtt.model_copy(update={"client_id": f"edge-pose-{self.device.id}"})
            object.__setattr__(self, "mqtt", mqtt)  # frozen model: fill in once, while building
        return self


SECTIONS: dict[str, type[BaseModel]] = {
    name: field.annotation
    for name, field in Config.model_fields.items()  # type: ignore[misc]
}


# --------------------------------------------------------------------------- loading


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
        for err in exc.errors(include_url=False):
            cli = ".".join(_location(err)[:2]) in from_cli
            line = ("" if cli else where) + _describe(err) + (CLI_NOTE if cli else "")
            problems.append(line)
    else:
        if not problems:
            return cfg
    raise ConfigError([_printable(line) for line in problems])


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
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
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
        section, _, key = dotted.partition(".")
        if not key or "." in key:
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
        if isinstance(table, dict):  # else the file's own error about [section] is reported
            table[key] = value
            applied.add(dotted)
    return applied


# --------------------------------------------------------------------------- messages


def _printable(line: str) -> str:
    """``line`` with control characters escaped: a quoted key may hold a NUL, an escape
    sequence or a newline, which must not reach a terminal or a log line as they are."""
    return _CONTROL.sub(lambda c: ascii(c[0])[1:-1], line)


def _location(err: Mapping[str, Any]) -> tuple[str, ...]:
    """The key path of an error; a cross-field check (model validator) names its own key.
    An unknown key's name is the file's, of any length: cut to what a line can show."""
    loc = tuple(_shorten(str(part)) for part in err["loc"])
    ctx = err.get("ctx") or {}
    return (*loc, ctx["key"]) if err["type"] == "config" and "key" in ctx else loc


def _describe(err: Mapping[str, Any]) -> str:
    """One pydantic error -> ``path = value: what is allowed`` (no pydantic wording)."""
    loc = _location(err)
    kind, value, ctx = err["type"], err["input"], err.get("ctx") or {}
    if "key" in ctx:
        value = ctx["value"]
    dotted = ".".join(loc)
    if kind == "extra_forbidden":
        return _unknown(loc, value)
    if kind == "model_type":
        return (
            f"{dotted} = {_short(value)}: must be a table ([{dotted}] section), not {_kind(value)}"
        )
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
    return f"{dotted} = {_short(value)}: {message}"


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
    known = list(SECTIONS[section].model_fields) if section in SECTIONS else []
    dotted = ".".join(loc)
    if section == "mqtt" and "password" in key and key != "password_file":
        return (
            f"{dotted}: unknown key: the config never holds secrets; put the password in a "
            "file and set mqtt.password_file (or use a systemd credential)"
        )
    return (
        f"{dotted}: unknown key{_did_you_mean(key, known)} "
        f"(known keys in [{section}]: {', '.join(known)})"
    )


def _did_you_mean(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _field(loc: tuple[str, ...]) -> Any:
    model = SECTIONS.get(loc[0])
    return model.model_fields.get(loc[1]) if model is not None and len(loc) == 2 else None


def _allowed(loc: tuple[str, ...]) -> tuple[str, tuple[float | None, float | None]]:
    """What a field accepts, in words, and its (lower, upper) bounds."""
    field = _field(loc)
    if field is None:
        return "valid", (None, None)
    lo = next((m.ge for m in field.metadata if hasattr(m, "ge")), None)
    hi = next((m.le for m in field.metadata if hasattr(m, "le")), None)
    noun = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        field.annotation, "valid"
    )
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


# --------------------------------------------------------------------------- run-time helpers


def _password_path(mqtt: MqttConfig) -> Path:
    """Where ``password_file`` is: a relative name in ``$CREDENTIALS_DIRECTORY`` when it is
    there (a systemd credential), else the path as given."""
    path = Path(mqtt.password_file).expanduser()
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if not path.is_absolute() and creds and (Path(creds) / path).is_file():
        return Path(creds) / path
    return path


def read_password(mqtt: MqttConfig) -> str | None:
    """The MQTT password from ``mqtt.password_file`` (None if unset), trailing newline removed.

    A relative name is looked up in ``$CREDENTIALS_DIRECTORY`` first, so systemd's
    ``LoadCredential=mqtt-password:/etc/edge-pose/mqtt-password`` works with
    ``password_file = "mqtt-password"``. Errors name the file, never its content.
    """
    if not mqtt.password_file:
        return None
    path = _password_path(mqtt)
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    where = f"mqtt.password_file = {mqtt.password_file!r}: password file {path}"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"{where} not found"]) from None
    except PermissionError:
        raise ConfigError(
            [
                f"{where}: permission denied (the service user must be able to read "
                "it; or pass it as a systemd credential)"
            ]
        ) from None
    except OSError as exc:
        raise ConfigError([f"{where}: cannot read it: {exc.strerror}"]) from None
    try:
        password = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ConfigError([f"{where}: not UTF-8 text"]) from None
    if not password:
        raise ConfigError([f"{where} is empty"])
    if not creds or not path.is_relative_to(creds):
        try:
            if path.stat().st_mode & 0o004:
                log.warning("password file %s is readable by every user: chmod 600 it", path)
        except OSError:
            pass
    return password


FILE_HINT = " (correct the path, or create the file first)"


def file_problems(cfg: Config) -> list[str]:
    """Files the config names that are not there: what `validate` and `config set` check
    beyond the values, so a mistyped path is caught before the service needs the file."""
    return mqtt_file_problems(cfg.mqtt) + classifier_file_problems(cfg.classifier)


def run_warnings(cfg: Config) -> list[str]:
    """What `run` would refuse on this machine although the config itself is valid: a camera
    file or device that is not here, a relative camera path, a model that is not installed.

    Warnings, not errors: `validate` and `config set` may run on another machine than the
    device (a config prepared on a laptop), and the messages are the ones `run` gives."""
    return _camera_warnings(cfg.camera.source) + _model_warnings(cfg.model)


def _camera_warnings(source: str) -> list[str]:
    where = f"camera.source = {source!r}"
    if _PICAMERA.fullmatch(source):
        return []
    if source.startswith("v4l2:"):
        device = source.removeprefix("v4l2:")
        return [] if os.path.exists(device) else [f"{where}: no {device} on this machine"]
    spec = source.removeprefix("file:")
    if not os.path.isabs(os.path.expanduser(spec)):
        return [
            f"{where}: a relative path: the service resolves it from its working directory "
            "(/), not from here: write the path in full"
        ]
    if any(ch in spec for ch in "*?["):
        return [] if glob.glob(spec) else [f"{where}: the pattern matches no files"]
    path = os.path.expanduser(spec)
    if not os.path.exists(path):  # a folder this user may not search is the service's business
        return [f"{where}: camera source not found: {path} (give a video, image, folder or glob)"]
    return []


def _model_warnings(model: ModelConfig) -> list[str]:
    from edge_pose.inference.models import default_model_dir, resolve_model

    try:
        resolve_model(model.name, default_model_dir(model.dir))
    except ModelError as exc:
        return [f"model.name = {model.name!r}: {exc}"]
    except OSError:  # a folder this user may not search: the service may, nothing to tell
        pass
    return []


def classifier_file_problems(classifier: ClassifierConfig) -> list[str]:
    """The trained classifier file (and a TFLite model's labels) when one is configured."""
    if classifier.type not in ("knn", "tflite"):
        return []
    problems = []
    path = Path(classifier.path).expanduser()
    if not path.is_file():
        problems.append(f"classifier.path = {classifier.path!r}: no such file{FILE_HINT}")
    if classifier.type == "tflite":
        labels = Path(classifier.labels).expanduser() if classifier.labels else None
        if labels is not None and not labels.is_file():
            problems.append(f"classifier.labels = {classifier.labels!r}: no such file{FILE_HINT}")
        elif labels is None and path.is_file() and not (path.parent / LABELS_FILE).is_file():
            problems.append(
                f"classifier.labels = '': no labels.txt beside {path} (set classifier.labels)"
            )
    return problems


def mqtt_file_problems(mqtt: MqttConfig) -> list[str]:
    """The files ``[mqtt]`` names that are not there, one line each (empty: all present).

    The service finds the same when it starts and stops with exit 78; `validate` and
    `config set` ask first, so a mistyped path is caught before it is installed. A relative
    ``password_file`` is looked up as the service looks it up (``$CREDENTIALS_DIRECTORY``, then
    the working directory); when it is in neither it is taken for a systemd credential name,
    which only the service can resolve, and left to the service.
    """
    if not mqtt.enabled:
        return []
    problems = tls_file_problems(mqtt)
    if mqtt.password_file:
        path = _password_path(mqtt)  # found where the service looks (credentials first)
        creds = os.environ.get("CREDENTIALS_DIRECTORY")
        relative_credential = not path.is_absolute() and bool(creds)
        if path.is_file():
            if os.access(path, os.R_OK):
                # Empty or not UTF-8, as the service would find it. A file this user may not
                # read (root:edge-pose 0640, checked by someone else) is the service's to read.
                try:
                    read_password(mqtt)
                except ConfigError as exc:
                    problems += exc.problems
        elif path.is_absolute() or relative_credential:
            where = f" nor a credential in {creds}" if relative_credential else ""
            problems.append(
                f"mqtt.password_file = {mqtt.password_file!r}: no such file{where}{FILE_HINT}"
            )
    return problems


def tls_file_problems(mqtt: MqttConfig) -> list[str]:
    """The TLS files (with ``mqtt.tls``) that are missing or do not load as PEM, each named:
    the TLS library itself says only "PEM lib"."""
    if not mqtt.tls:
        return []
    problems = [
        f"mqtt.{key} = {value!r}: no such file{FILE_HINT}"
        for key in ("ca_file", "certfile", "keyfile")
        if (value := getattr(mqtt, key)) and not os.path.isfile(value)
    ]
    return problems or _tls_load_problems(mqtt)


def _tls_load_problems(mqtt: MqttConfig) -> list[str]:
    import ssl

    problems = []
    if mqtt.ca_file:
        try:
            ssl.create_default_context(cafile=mqtt.ca_file)
        except (OSError, ValueError) as exc:
            problems.append(
                f"mqtt.ca_file = {mqtt.ca_file!r}: not a CA certificate in PEM format ({exc})"
            )
    if mqtt.certfile:
        try:
            ssl.create_default_context().load_cert_chain(mqtt.certfile, mqtt.keyfile or None)
        except (OSError, ValueError) as exc:
            problems.append(
                f"mqtt.certfile = {mqtt.certfile!r}, mqtt.keyfile = {mqtt.keyfile!r}: not a "
                f"client certificate and its private key in PEM format ({exc})"
            )
    return problems


def status_dir_candidates(cfg: Config) -> list[Path]:
    """Every place status.json may live, in order of preference (for readers such as
    ``edge-pose status``, which may not be able to write where the daemon writes)."""
    if cfg.status.dir:
        return [Path(cfg.status.dir).expanduser()]
    found: list[Path] = []
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:
        found.append(Path(runtime))
    found.append(SYSTEM_STATUS_DIR)
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(xdg):
        found.append(Path(xdg) / STATUS_DIR_NAME)
    found.append(Path(tempfile.gettempdir()) / f"{STATUS_DIR_NAME}-{os.getuid()}")
    return list(dict.fromkeys(found))


def resolve_status_dir(cfg: Config) -> Path:
    """Where the daemon writes status.json: ``status.dir``, else ``$RUNTIME_DIRECTORY`` (systemd
    RuntimeDirectory=), else /run/edge-pose if writable or creatable, else
    ``$XDG_RUNTIME_DIR/edge-pose``, else a per-user temp dir. Only tests; creates nothing."""
    if cfg.status.dir:
        return Path(cfg.status.dir).expanduser()
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:
        return Path(runtime)
    if _writable_or_creatable(SYSTEM_STATUS_DIR):
        return SYSTEM_STATUS_DIR
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(xdg):
        return Path(xdg) / STATUS_DIR_NAME
    return Path(tempfile.gettempdir()) / f"{STATUS_DIR_NAME}-{os.getuid()}"


def _writable_or_creatable(path: Path) -> bool:
    if path.is_dir():
        return os.access(path, os.W_OK | os.X_OK)
    return not path.exists() and os.access(path.parent, os.W_OK | os.X_OK)


def to_toml_dict(cfg: Config) -> dict[str, dict[str, Any]]:
    """The effective config as plain TOML-able data, e.g. for ``edge-pose validate --json``.

    Secrets are not in the config at all: ``password_file`` is shown as the path it is."""
    return cfg.model_dump(mode="python")
