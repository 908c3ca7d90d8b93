"""CPU temperature and Raspberry Pi throttling, for status.json and `edge-pose status`.

Standard library only and cheap: the daemon samples these about once a second.

- Temperature comes from ``/sys/class/thermal/thermal_zone*/temp`` (millidegrees Celsius). On a
  Raspberry Pi the SoC zone is typed ``cpu-thermal``; elsewhere the first zone whose type looks like
  a CPU is used, else ``thermal_zone0``.
- Throttling comes from ``vcgencmd get_throttled`` (``throttled=0x50005``), when that command is
  present and allowed to talk to the firmware (``/dev/vcio``: the ``video`` group). The firmware's
  sysfs file ``soc:firmware/get_throttled`` is not read: recent Raspberry Pi kernels mark it
  deprecated and print a kernel warning with a stack trace when it is read.

  Starting a process costs a few milliseconds on a Pi, so :class:`SystemMonitor` asks vcgencmd
  at most every ``throttle_interval_s`` seconds (throttling changes slowly), while the temperature
  (one small sysfs read) is read on every sample.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge_pose.service.document import SystemStatus

SYSFS = Path("/sys")
VCGENCMD = "vcgencmd"

# Bits of `vcgencmd get_throttled` (Raspberry Pi documentation, "get_throttled").
THROTTLE_BITS: dict[int, str] = {
    0: "under-voltage",
    1: "arm-frequency-capped",
    2: "throttled",
    3: "soft-temperature-limit",
    16: "under-voltage-occurred",
    17: "arm-frequency-capped-occurred",
    18: "throttled-occurred",
    19: "soft-temperature-limit-occurred",
}
THROTTLED_NOW_MASK = 0xF  # bits 0-3: the condition is active right now
THROTTLED_OCCURRED_MASK = 0xF0000  # bits 16-19: it happened since boot

_CPU_ZONE_TYPES = ("cpu-thermal", "cpu_thermal", "x86_pkg_temp", "soc-thermal", "soc_thermal")


def cpu_temperature_c(root: Path = SYSFS) -> float | None:
    """The CPU temperature in degrees Celsius (one decimal), or None where none is exposed."""
    zones = sorted((root / "class" / "thermal").glob("thermal_zone*"), key=_zone_number)
    if not zones:
        return None
    kinds = {zone: (_read_text(zone / "type") or "").lower() for zone in zones}
    chosen = next((z for z in zones if kinds[z] in _CPU_ZONE_TYPES), None)
    if chosen is None:
        chosen = next((z for z in zones if "cpu" in kinds[z] or "soc" in kinds[z]), zones[0])
    raw = _read_text(chosen / "temp")
    try:
        milli = int(raw) if raw is not None else None
    except ValueError:
        return None
    if milli is None or not -50_000 < milli < 200_000:  # a driver error value, not a reading
        return None
    return round(milli / 1000, 1)


def _zone_number(zone: Path) -> int:
    suffix = zone.name.removeprefix("thermal_zone")
    return int(suffix) if suffix.isdigit() else 1 << 30


def decode_throttled(value: int) -> list[str]:
    """The names of the bits set in a get_throttled value, low bits (active now) first."""
    return [name for bit, name in THROTTLE_BITS.items() if value & (1 << bit)]


def parse_throttled(text: str) -> int | None:
    """``throttled=0x50005`` (vcgencmd) or a bare hex number -> int; None if not recognised."""
    text = text.strip()
    if "=" in text:
        key, _, text = text.partition("=")
        if key.strip() != "throttled":
            return None
    try:
        return int(text.strip(), 16)
    except ValueError:
        return None


def throttled(
    command: Sequence[str] | None = None, timeout: float = 2.0
) -> tuple[str, list[str]] | None:
    """``("0x50005", ["under-voltage", "throttled", ...])`` from ``vcgencmd get_throttled``.

    None when vcgencmd is not installed, fails (no access to /dev/vcio, not a Pi) or prints
    something unexpected. ``command`` replaces ``["vcgencmd", "get_throttled"]`` (tests).
    Never raises.
    """
    if command is None:
        exe = shutil.which(VCGENCMD)
        if exe is None:
            return None
        command = [exe, "get_throttled"]
    try:
        result = subprocess.run(
            list(command),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if result.returncode != 0:
        return None
    value = parse_throttled(result.stdout)
    if value is None:
        return None
    return f"{value:#x}", decode_throttled(value)


class SystemMonitor:
    """The ``system`` part of status.json, cheap enough to call once a second.

    ``sample()`` -> ``{"cpu_temp_c": float|None, "throttled": "0x0"|None,
    "throttled_flags": [...]}``; vcgencmd runs at most every ``throttle_interval_s`` seconds
    (and not at all where it is not installed).
    """

    def __init__(
        self,
        *,
        root: Path = SYSFS,
        throttle_command: Sequence[str] | None = None,
        throttle_interval_s: float = 10.0,
    ) -> None:
        self._root = root
        self._command = throttle_command
        self._interval = throttle_interval_s
        self._next_throttle = 0.0
        self._throttle: tuple[str, list[str]] | None = None
        self._has_vcgencmd = throttle_command is not None or shutil.which(VCGENCMD) is not None

    def sample(self) -> SystemStatus:
        now = time.monotonic()
        if self._has_vcgencmd and now >= self._next_throttle:
            self._throttle = throttled(self._command)
            self._next_throttle = now + self._interval
        value, flags = self._throttle if self._throttle is not None else (None, [])
        return {
            "cpu_temp_c": cpu_temperature_c(self._root),
            "throttled": value,
            "throttled_flags": list(flags),
        }


def _read_text(path: Path) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read(64).strip()
    except OSError:
        return None


__all__ = [
    "THROTTLED_NOW_MASK",
    "THROTTLED_OCCURRED_MASK",
    "THROTTLE_BITS",
    "SystemMonitor",
    "cpu_temperature_c",
    "decode_throttled",
    "parse_throttled",
    "throttled",
]


def process_memory_mb(status_file: Path = Path("/proc/self/status")) -> dict[str, float | None]:
    """This process's resident memory now and at its peak (VmRSS, VmHWM), in MB.

    VmHWM counts only since the program started (unlike ``ru_maxrss``, which for a child of a
    big process also counts the parent's pages it shared before ``exec``).
    """
    values: dict[str, float | None] = {"rss_mb": None, "peak_rss_mb": None}
    keys = {"VmRSS:": "rss_mb", "VmHWM:": "peak_rss_mb"}
    try:
        for line in status_file.read_text().splitlines():
            fields = line.split()
            if fields and fields[0] in keys:
                values[keys[fields[0]]] = round(int(fields[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return values
