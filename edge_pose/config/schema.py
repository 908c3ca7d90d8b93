"""The config's schema: one pydantic model per TOML section, and :class:`Config` holding them.

The appliance runs unattended, so a config mistake must stop it at start-up with a message the
user can act on, not surface later as a strange runtime failure. Hence pydantic v2 models with
``extra="forbid"`` (a typo such as ``fsp`` is an error, not a silently ignored key) and strict
types (``port = "1883"`` or ``fps = true`` are errors; an int is still accepted where a float is
expected, as TOML users write ``keypoints_max_rate = 30``); every string is checked for control
characters and length, and frozen models make a loaded config a value that can be compared
(a reload with an unchanged file changes nothing).

The schema says what a value may be, and needs nothing but the value: whether a file it names
is there, or a model name is in the installed catalog, is the file-check phase (files.py).
Secrets never live in the config: ``mqtt.password_file`` names a file (or a systemd credential),
so a password cannot leak through repr, logs or errors.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import socket
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from edge_pose.camera.source import SOURCE_ALLOWED, SourceError, file_path, parse_source
from edge_pose.safety.geometry import MAX_CORNERS, polygon_problem

LABELS_FILE = "labels.txt"  # a TFLite classifier's labels, beside it unless classifier.labels
MAX_TEXT = 4096  # PATH_MAX: no path, host or name in a config is longer

_DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_EDGETPU_DEVICE = re.compile(r"((usb|pci)(:\d+)?)?")
_DEVICE_ID_ALLOWED = "1-64 letters, digits, '_' or '-' (it is an MQTT topic level)"

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
    if value.startswith("~") and os.path.expanduser(value) == value:
        user = value[1:].partition("/")[0]
        who = f"user {user!r}" if user else "the home folder (HOME is not set)"
        raise _bad(f"{who} is not known on this system: write the path in full")
    return value


def _known_source_home(value: str) -> str:
    """:func:`_known_home` for the path of a file source (a live camera names no folder)."""
    path = file_path(value)
    if path is not None:
        _known_home(path)
    return value


class _Section(BaseModel):
    """A config section: strict types, no unknown keys, and strings fit for paths and logs."""

    model_config = _STRICT

    _text = field_validator("*")(_check_text)


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

    _home = field_validator("source")(_known_source_home)

    @field_validator("source")
    @classmethod
    def _check_source(cls, value: str) -> str:
        """The grammar open_camera uses, so a typo fails at load time, not when the camera opens."""
        try:
            parse_source(value)
        except SourceError:
            raise _bad(f"must be {SOURCE_ALLOWED}") from None
        return value


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


class TrackingConfig(_Section):
    """How a multi-person model's people keep their ids from frame to frame (docs/tracking.md);
    tfjs-models' tracker defaults."""

    method: Literal["boxes", "keypoints"] = "boxes"
    max_tracks: Annotated[int, Field(ge=1, le=64)] = 18
    max_age_s: Annotated[float, Field(gt=0, le=3600)] = 1.0
    min_iou: Fraction = 0.15  # method "boxes"
    min_oks: Fraction = 0.2  # method "keypoints"
    keypoint_threshold: Fraction = 0.3
    min_keypoints: Annotated[int, Field(ge=1, le=17)] = 4
    refine: bool = False  # a second look at each person with a single-pose model
    refine_model: str = "movenet_lightning_int8"


_ZONE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _-]{0,31}")
MAX_ZONES = 32


class ZoneConfig(_Section):
    """A part of the picture with a name (docs/events.md): a polygon of [x, y] corners as
    fractions of the frame's width and height, so a change of camera resolution keeps it."""

    name: str
    polygon: tuple[tuple[float, float], ...]
    lying_ok: bool = False  # lying here (a bed, a sofa) is never a fall
    inactive_after_s: float | None = Field(default=None, ge=0)  # here; 0: never

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _ZONE_NAME.fullmatch(value):
            raise _bad(
                "must be 1-32 letters, digits, spaces, '_' or '-', starting with a letter or "
                "digit (it names a Home Assistant entity)"
            )
        return value

    @field_validator("polygon", mode="before")
    @classmethod
    def _check_polygon(cls, value: Any, info: ValidationInfo) -> Any:
        """The whole polygon is checked here, in one message that names the zone: a list of
        [x, y] number pairs that make a simple polygon inside the picture."""
        name = info.data.get("name")
        zone = f"zone {name!r}" if isinstance(name, str) else "the zone"
        problem = _corners_problem(value)
        if problem is None:
            problem = polygon_problem(value)
        if problem is not None:
            raise _bad(f"{zone} {problem}")
        return tuple((float(x), float(y)) for x, y in value)


def _corners_problem(value: Any) -> str | None:
    """What keeps ``value`` from being a list of [x, y] number pairs (None: it is one)."""
    if not isinstance(value, list):
        return f"must be an array of [x, y] pairs, not {type(value).__name__}"
    if len(value) > MAX_CORNERS:
        return f"has {len(value)} corners: at most {MAX_CORNERS}"
    for i, point in enumerate(value, 1):
        numbers = isinstance(point, list) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in point
        )
        if not numbers or len(point) != 2:
            return f"corner {i} is {_short_repr(point)}: each corner is [x, y], two numbers"
        if not all(math.isfinite(v) for v in point):
            return f"corner {i} is {_short_repr(point)}: x and y must be finite numbers"
    return None


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class FallConfig(_Section):
    """The fall detector's thresholds (docs/events.md says how each was measured); lengths are
    in body-size units: the person's torso length while standing."""

    enabled: bool = True
    window_s: Annotated[float, Field(gt=0, le=10)] = 1.5  # the descent happens within this
    min_drop: Annotated[float, Field(gt=0, le=5)] = 0.4  # hips fall at least this far...
    min_turn_deg: Annotated[float, Field(gt=0, le=90)] = 50.0  # ...and the torso turns this much
    upright_deg: Annotated[float, Field(gt=0, le=90)] = 30.0  # standing: torso within this
    lying_deg: Annotated[float, Field(gt=0, le=90)] = 55.0  # down: torso turned this far...
    low_drop: Annotated[float, Field(gt=0, le=5)] = 1.0  # ...or the hips this far below standing
    confirm_s: Annotated[float, Field(ge=0, le=600)] = 3.0  # down this long before `fall`
    recover_s: Annotated[float, Field(ge=0, le=600)] = 2.0  # standing this long: recovered
    snapshot: bool = True  # a JPEG of the confirmed fall on <base>/snapshot

    @model_validator(mode="after")
    def _check_angles(self) -> FallConfig:
        if self.lying_deg <= self.upright_deg:
            raise _bad(
                "must be more than upright_deg (a torso cannot be both upright and down)",
                key="lying_deg",
                value=self.lying_deg,
            )
        return self


class InactivityConfig(_Section):
    """``inactive`` when a person seen has not moved for a while (a zone may override it)."""

    enabled: bool = True
    after_s: Annotated[float, Field(gt=0, le=7 * 86400)] = 600.0
    min_move: Annotated[float, Field(gt=0, le=5)] = 0.2  # body-size units that count as moving


class EventsConfig(_Section):
    """The safety events: zones, falls and inactivity (docs/events.md)."""

    zone_dwell_s: Annotated[float, Field(ge=0, le=60)] = 0.5  # in or out this long: an event
    fall: FallConfig = Field(default_factory=FallConfig)
    inactivity: InactivityConfig = Field(default_factory=InactivityConfig)


class HttpConfig(_Section):
    """The built-in web view, status API and metrics (docs/web.md).

    Loopback by default. Serving the camera's picture to the network without a password is
    refused unless ``allow_anonymous`` says so in so many words: a stream of a home is private.
    """

    enabled: bool = True
    bind: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080  # 0: a free port, status says which
    stream_fps: Annotated[float, Field(gt=0, le=30)] = 5.0
    jpeg_quality: Annotated[int, Field(ge=10, le=95)] = 80
    password_file: str = ""  # HTTP Basic auth, user "edge-pose"
    allow_anonymous: bool = False
    certfile: str = ""  # with keyfile: HTTPS
    keyfile: str = ""

    _home = field_validator("password_file", "certfile", "keyfile")(_known_home)

    @field_validator("bind")
    @classmethod
    def _check_bind(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise _bad(
                "must be an IP address of this machine: 127.0.0.1 (this machine only), "
                "0.0.0.0 (every IPv4 network), :: (every network) or one interface's address"
            ) from None
        return value

    @property
    def loopback(self) -> bool:
        """Only this machine can connect."""
        return ipaddress.ip_address(self.bind).is_loopback

    @model_validator(mode="after")
    def _check_exposure(self) -> HttpConfig:
        if bool(self.certfile) != bool(self.keyfile):
            key = "keyfile" if self.certfile else "certfile"
            raise _bad(
                "certfile and keyfile go together: set both (HTTPS) or neither", key=key, value=""
            )
        exposed = self.enabled and not self.loopback
        if exposed and not self.password_file and not self.allow_anonymous:
            raise _bad(
                "serves the camera to the network without a password: set "
                "http.password_file (edge-pose config set "
                "http.password_file=/etc/edge-pose/http-password), bind to 127.0.0.1, or set "
                "http.allow_anonymous = true",
                key="bind",
                value=self.bind,
            )
        return self


class StatusConfig(_Section):
    """Where status.json goes; "" = resolved at run time
    (:func:`edge_pose.service.status_dir.writer_status_dir`)."""

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
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    status: StatusConfig = Field(default_factory=StatusConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    zones: tuple[ZoneConfig, ...] = ()

    @field_validator("zones", mode="before")
    @classmethod
    def _zones_as_tuple(cls, value: Any) -> Any:
        """``[[zones]]`` arrives as a list of tables; bounded, as a config is hostile input."""
        if isinstance(value, list):
            if len(value) > MAX_ZONES:
                raise _bad(f"has {len(value)} zones: at most {MAX_ZONES}")
            return tuple(value)
        return value

    @model_validator(mode="after")
    def _check_zone_names(self) -> Config:
        seen: set[str] = set()
        for index, zone in enumerate(self.zones):
            key = zone.name.casefold()
            if key in seen:
                raise _bad(
                    f"zone {zone.name!r} is defined twice: give each zone its own name",
                    key=f"zones[{index}].name", value=zone.name,
                )  # fmt: skip
            seen.add(key)
        return self

    @model_validator(mode="after")
    def _fill_client_id(self) -> Config:
        """Derive the MQTT client id from the device id so two devices never kick each other off."""
        if not self.mqtt.client_id:
            mqtt = self.mqtt.model_copy(update={"client_id": f"edge-pose-{self.device.id}"})
            object.__setattr__(self, "mqtt", mqtt)  # frozen model: fill in once, while building
        return self


# The [section] tables (``zones`` is an array of tables, not a section).
SECTIONS: dict[str, type[BaseModel]] = {
    name: field.annotation  # type: ignore[misc]
    for name, field in Config.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
}


def to_toml_dict(cfg: Config) -> dict[str, dict[str, Any]]:
    """The effective config as plain TOML-able data, e.g. for ``edge-pose validate --json``.

    Secrets are not in the config at all: ``password_file`` is shown as the path it is."""
    return cfg.model_dump(mode="python")

