"""Commands sent to a device over MQTT on ``<base>/set``, and their acknowledgement.

A command is a JSON object: ``{"command": "pause"}``, ``{"command": "resume"}``,
``{"command": "reset_reps"}``, ``{"command": "reset_fall"}`` or
``{"command": "keypoints_rate", "value": 10}``. The device's resulting state is published
retained on ``<base>/state``.

``reset_fall`` ends every fall that is still on (someone who fell and did not get up, or was lost
from view while down): a ``fall_recovered`` event with ``"reset": true`` per person goes out with
the next frame processed (after a ``resume`` when paused), and the retained ``<base>/pose`` says
``"fall": false`` from then on. Home Assistant's Reset fall button sends it; with no fall on it
changes nothing (the state message still acknowledges it).

Anyone who may publish to ``<base>/set`` is a remote party the device must survive, so every
message is bounded before it is looked at: at most ``MAX_COMMAND_BYTES``, parsed by pydantic's
JSON parser (nesting limited, no recursion in our code) into a strict model, and every failure is
an ``error`` event whose text echoes at most a few escaped characters of the input. Answers and
log lines are rate-limited, the queue between paho's thread and the pipeline is bounded, and
nothing raised while a command is handled reaches the pipeline. Retained messages on ``/set``
are ignored: a command left on the broker would otherwise run again at every start.
"""

from __future__ import annotations

import json
import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_pose import wire
from edge_pose.classify.events import Event
from edge_pose.ratelimit import TokenBucket

if TYPE_CHECKING:
    from edge_pose.mqtt.publisher import MqttPublisher
    from edge_pose.pipeline import Pipeline
    from edge_pose.service.document import StatusDocument

log = logging.getLogger(__name__)

NAMES = ("pause", "resume", "reset_reps", "reset_fall", "keypoints_rate")
MAX_COMMAND_BYTES = 4096  # a real command is under 60 bytes
MAX_WAITING = 32  # commands received but not yet applied; more are dropped and answered
COMMANDS_PER_S, COMMAND_BURST = 5.0, 20  # commands applied
ERRORS_PER_S, ERROR_BURST = 1.0, 5  # error events and their log lines
ECHO_CHARS = 40  # at most this much of a name from the input is echoed, escaped
NEEDS_VALUE = "keypoints_rate needs a value: messages per second >= 0 (0 = every frame)"
SHAPE = 'expected an object like {"command": "pause"}'


@dataclass(frozen=True)
class Command:
    name: str
    value: float | None = None


class _CommandMessage(BaseModel):
    """The JSON shape of a command; strict, so ``"5"`` or ``true`` is no number."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    command: Literal["pause", "resume", "reset_reps", "reset_fall", "keypoints_rate"]
    value: float | None = Field(default=None, ge=0, allow_inf_nan=False)


def echo(text: object, limit: int = ECHO_CHARS) -> str:
    """``text`` cut to ``limit`` characters and quoted with every control character escaped, so
    what a publisher sends can neither flood nor forge a log line or an event."""
    text = str(text)
    shown = repr(text[:limit])[1:-1]  # escaped: \n, \x1b, \u202e ...
    cut = len(text) > limit or len(shown) > limit
    return f"'{shown[:limit]}'" + ("..." if cut else "")


def parse_command(payload: bytes) -> Command:
    """The command in a ``<base>/set`` payload; ValueError with a message for the error event."""
    if len(payload) > MAX_COMMAND_BYTES:
        raise ValueError(f"{len(payload)} bytes is too long for a command "
                         f"(at most {MAX_COMMAND_BYTES})")
    try:
        message = _CommandMessage.model_validate_json(payload)
    except ValidationError as exc:
        raise ValueError(_describe(exc)) from None
    if message.command != "keypoints_rate":
        if "value" in message.model_fields_set:
            raise ValueError(f"{message.command!r} takes no value")
        return Command(message.command)
    if message.value is None:
        raise ValueError(NEEDS_VALUE)
    return Command(message.command, message.value)


def _describe(exc: ValidationError) -> str:
    """One short line for the first kind of problem pydantic found, echoing little and escaped."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        why = first["msg"].removeprefix("Invalid JSON: ")
        return f"not JSON ({why})"
    unknown = [str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden"]
    if unknown:
        shown = ", ".join(echo(name) for name in unknown[:3])
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        return f"unknown field(s) {shown}{more} (known: command, value)"
    where = first["loc"][0] if first["loc"] else None
    if where == "command":
        given = first.get("input")
        if isinstance(given, str):
            return f"unknown command {echo(given)} (known: {', '.join(NAMES)})"
        return SHAPE
    if where == "value":
        return NEEDS_VALUE
    return SHAPE


class RemoteControl:
    """The MQTT side of a running pipeline: commands in on ``<base>/set``, state out on
    ``<base>/state`` (retained), stats out on ``<base>/stats`` every ``stats_interval`` s.

    paho delivers commands on its own thread; they wait in a bounded queue until ``tick`` runs
    on the pipeline's thread, so they never race with frame processing.
    """

    def __init__(
        self, publisher: MqttPublisher, pipeline: Pipeline, device_id: str, stats_interval: float
    ) -> None:
        self.publisher = publisher
        self.pipeline = pipeline
        self.device_id = device_id
        self.stats_interval = stats_interval
        self._inbox: queue.Queue[bytes] = queue.Queue(MAX_WAITING)
        self._overflow = 0  # commands dropped because the queue was full (written by paho)
        self._commands = TokenBucket(COMMANDS_PER_S, COMMAND_BURST)
        self._errors = TokenBucket(ERRORS_PER_S, ERROR_BURST)
        self._next_stats = time.monotonic() + stats_interval
        publisher.subscribe(wire.SET, self._receive, retained=False)
        self.publish_state(None)

    def _receive(self, payload: bytes) -> None:
        """paho's thread: hand the payload on, never block it."""
        try:
            self._inbox.put_nowait(payload)
        except queue.Full:
            self._overflow += 1

    def tick(self, status: Callable[[], StatusDocument | None]) -> None:
        """Apply waiting commands; publish stats when due (``status``: the latest status doc)."""
        for _ in range(MAX_WAITING):
            try:
                payload = self._inbox.get_nowait()
            except queue.Empty:
                break
            self.handle(payload)
        if self._overflow:
            dropped, self._overflow = self._overflow, 0
            self._reject(f"{dropped} command(s) dropped: more than {MAX_WAITING} waiting")
        now = time.monotonic()
        if now >= self._next_stats:
            self._next_stats = now + self.stats_interval
            doc = status()
            if doc is not None:
                self.publisher.publish(wire.STATS, json.dumps(wire.stats_payload(doc)), qos=0)

    def handle(self, payload: bytes) -> None:
        """One message from ``<base>/set``: applied, or answered with an error event. Whatever
        goes wrong stays here: the pipeline that calls this must keep running."""
        if not payload:  # an empty message clears a retained command: nothing to do
            return
        if not self._commands.allow():
            self._reject(f"too many commands: at most {COMMANDS_PER_S:g} per second "
                         f"(bursts of {COMMAND_BURST})")
            return
        try:
            command = parse_command(payload)
        except ValueError as exc:
            self._reject(str(exc))
            return
        try:
            self.apply(command)
        except Exception as exc:  # a defect of ours must not stop the device
            self._reject(f"{command.name} failed: {type(exc).__name__}: {echo(exc, 200)}")

    def apply(self, command: Command) -> None:
        pipeline = self.pipeline
        if command.name in ("pause", "resume"):
            pipeline.paused = command.name == "pause"
        elif command.name == "reset_reps":
            pipeline.temporal.reset_reps()
        elif command.name == "reset_fall":
            # Out with the next frame, as the events of people dropped between frames are;
            # that frame's pose message then says "fall": false.
            temporal = pipeline.temporal
            temporal.pending += temporal.reset_fall()
        elif command.name == "keypoints_rate" and command.value is not None:
            self.publisher.set_keypoints_rate(command.value)
        log.info("MQTT command: %s%s", command.name,
                 "" if command.value is None else f" {command.value:g}")
        self.publish_state(command.name)

    def _reject(self, why: str) -> None:
        """An error event and a warning, at most ``ERROR_BURST`` then one a second; the next one
        that passes says how many were held back."""
        if not self._errors.allow():
            return
        held = self._errors.take_suppressed()
        if held:
            why += f" ({held} more rejected commands not answered)"
        log.warning("MQTT command rejected: %s", why)
        self._event({"type": "error", "error": f"command rejected: {why}"})

    def publish_state(self, last_command: str | None) -> None:
        spoken = self.pipeline.temporal.spoken_of()
        state = wire.state_json(
            paused=self.pipeline.paused, keypoints_rate=self.publisher.keypoints_rate,
            reps=None if spoken is None else spoken.reps, command=last_command,
            ts=time.time(),
        )  # fmt: skip
        self.publisher.publish(wire.STATE, state, qos=1, retain=True)

    def _event(self, event: Event) -> None:
        payload = wire.event_json(self.device_id, time.time(), event)
        self.publisher.publish(wire.EVENT, payload, qos=1)
