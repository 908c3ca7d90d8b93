"""`edge-pose doctor`: one screen that says what is wrong with this device's set-up, and the fix.

Why it is built this way:

- Each check stands alone and never raises: a check that crashes is reported as that check
  failing, so one broken part never hides the others.
- Each check sits beside the subsystem it checks and asks it, instead of knowing its rules a
  second time: ``camera/checks.py``, ``inference/checks.py`` (runtime, models, Edge TPU),
  ``config/checks.py``, ``classify/checks.py``, ``mqtt/checks.py`` and ``service/checks.py``
  (Python, OS, service user and groups, power and heat, systemd). This module holds what they
  share (:class:`Check`, :class:`Context`), the order they run in, and the report. Adding a
  check is one function in its subsystem's checks module and one line in :func:`_in_order`.
- Nothing is opened that the service would hold: the Edge TPU is looked at through sysfs and its
  library (not opened), the Pi camera through ``Picamera2.global_camera_info()`` (lists, does not
  start). The MQTT check connects with its own client id (the service's would kick the running
  service off the broker), with the configured TLS and credentials, and a short timeout.
- Status ``fail`` is for what stops the service from working as configured (exit code 1);
  ``warn`` is for what works but should be fixed (a Coral that ``auto`` cannot use, throttling);
  ``info`` is context. Exit code 0 means nothing required is broken.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from edge_pose.errors import EX_FAILURE, EX_OK, ConfigError
from edge_pose.inference import edgetpu

if TYPE_CHECKING:  # `edge-pose --help` imports this module for DEFAULT_TIMEOUT_S: keep it light
    from edge_pose.config import Config
    from edge_pose.inference.runtime import Runtime

Status = Literal["ok", "warn", "fail", "info"]
DEFAULT_TIMEOUT_S = 3.0
_MARK = {"ok": "ok", "warn": "warn", "fail": "FAIL", "info": "--"}


@dataclass
class Check:
    """One line of the report; ``fix`` is shown for warn and fail."""

    name: str
    status: Status
    summary: str
    fix: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    """What the checks share: the config (None when invalid) and the Edge TPU look-up."""

    cfg: Config | None
    config_file: Path | None
    config_problems: list[str]
    timeout: float
    who: edgetpu.Identity
    who_note: str
    tpu_settings: edgetpu.Settings
    tpu: edgetpu.Diagnosis | None = None

    @property
    def backend(self) -> str:
        return self.cfg.model.backend if self.cfg is not None else "auto"

    def diagnose(self, runtime: Runtime | None) -> edgetpu.Diagnosis:
        """The Edge TPU look-up, done once and shared by the checks that need it."""
        if self.tpu is None:
            self.tpu = edgetpu.diagnose(self.tpu_settings, runtime, who=self.who)
        return self.tpu

    def tpu_devices(self) -> list[edgetpu.Device]:
        return edgetpu.find_devices(self.tpu_settings.sysfs_root)


CheckFunction = Callable[[Context], Check | list[Check]]


def not_checked(name: str) -> Check:
    """The line of a check that needs the config, when the config is invalid."""
    return Check(name, "info", "not checked: the config is invalid")


# --------------------------------------------------------------------------- running


def _in_order() -> tuple[tuple[str, CheckFunction], ...]:
    """Every check, in the order a user would fix things, with the name a crash of it is
    reported under. (Imported here, not at the top: each checks module imports this one.)"""
    from edge_pose.camera import checks as camera
    from edge_pose.classify import checks as classify
    from edge_pose.config import checks as config
    from edge_pose.inference import checks as inference
    from edge_pose.mqtt import checks as mqtt
    from edge_pose.service import checks as service
    from edge_pose.web import checks as web

    return (
        ("python", service.python_version),
        ("os", service.operating_system),
        ("runtime", inference.runtime),
        ("numpy", inference.numpy_version),
        ("config", config.config_file),
        ("models", inference.models),
        ("classifier", classify.classifier),
        ("camera", camera.camera),
        ("edgetpu", inference.edge_tpu),
        ("groups", service.service_user),
        ("mqtt", mqtt.broker),
        ("web", web.web),
        ("system", service.power_and_heat),
        ("service", service.systemd_unit),
    )


def run_checks(config: Path | None, timeout: float = DEFAULT_TIMEOUT_S) -> list[Check]:
    """Every check, in the order a user would fix things."""
    from edge_pose.config import config_path, load_config
    from edge_pose.service.checks import service_identity

    file = config_path(config)
    try:
        cfg: Config | None = load_config(config)
        problems: list[str] = []
    except ConfigError as exc:
        cfg, problems = None, exc.problems
    who, note = service_identity()
    settings = edgetpu.Settings.from_config(cfg.model if cfg is not None else None)
    return run_context(Context(cfg, file, problems, timeout, who, note, settings))


def run_context(ctx: Context) -> list[Check]:
    """The checks for an assembled context (tests give it a fixture sysfs tree)."""
    checks: list[Check] = []
    for name, check in _in_order():
        try:
            result = check(ctx)
        except Exception as exc:  # a doctor that crashes helps nobody: report it, go on
            result = Check(
                name,
                "fail",
                f"the check itself failed: {type(exc).__name__}: {exc}",
                "report this as a bug in edge-pose",
            )
        checks.extend(result if isinstance(result, list) else [result])
    return checks


# --------------------------------------------------------------------------- report


def exit_code(checks: Sequence[Check]) -> int:
    return EX_FAILURE if any(c.status == "fail" for c in checks) else EX_OK


def format_text(checks: Sequence[Check], config_file: Path | None) -> str:
    lines = [f"edge-pose doctor (config: {config_file or 'built-in defaults'})"]
    for c in checks:
        lines.append(f"{_MARK[c.status]:<5} {c.name:<14} {c.summary}")
        if c.fix and c.status in ("warn", "fail"):
            lines.append(f"{'':<5} {'':<14} fix: {c.fix}")
    failed = [c.name for c in checks if c.status == "fail"]
    warned = [c.name for c in checks if c.status == "warn"]
    if failed:
        lines.append(f"{len(failed)} required item(s) broken: {', '.join(failed)}")
    else:
        note = f" ({len(warned)} warning(s))" if warned else ""
        lines.append(f"nothing required is broken{note}")
    return "\n".join(lines)


def to_json(checks: Sequence[Check], config_file: Path | None) -> dict[str, Any]:
    return {
        "ok": exit_code(checks) == EX_OK,
        "config": str(config_file) if config_file else None,
        "failed": [c.name for c in checks if c.status == "fail"],
        "checks": [asdict(c) for c in checks],
    }
