"""Coral Edge TPU: find devices without opening them, load the libedgetpu delegate, check versions.

Why it is built this way:

- Devices are found from sysfs and device nodes only. Opening a Coral USB Accelerator uploads its
  firmware (it then re-enumerates, from ``1a6e:089a`` to ``18d1:9302``) and opening a PCIe one
  claims it, so ``backend = "auto"``, ``edge-pose doctor`` and the checklist look without touching
  the device. ``sysfs_root`` (config ``model.sysfs_root``) lets tests point at a fixture tree;
  device nodes are looked up in the ``dev`` folder beside it (``/sys`` -> ``/dev``).
- Device strings are the ones libedgetpu and Coral's tools use (``usb``, ``usb:N``, ``pci``,
  ``pci:N``); ``""`` picks the first device as libedgetpu does: PCIe first, then USB.
- The library is checked with ``ctypes`` before the runtime's ``load_delegate`` sees it: a file that
  is not a delegate makes the runtime raise from a half-built object (and print "Exception ignored"
  noise from its ``__del__``); here it becomes one clear line instead.
- libedgetpu is built against one TensorFlow Lite version; with another runtime it fails with
  "Unsupported data type in custom op handler" or crashes. The community builds carry the TF
  version in their package version (``16.0tf2.17.1``), which :func:`check_pairing` compares.
"""

from __future__ import annotations

import ctypes
import grp
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from edge_pose.errors import EdgePoseError

if TYPE_CHECKING:
    from collections.abc import Callable

    from edge_pose.config import ModelConfig
    from edge_pose.inference.runtime import Runtime

SYSFS = Path("/sys")
DEFAULT_LIBRARY = "libedgetpu.so.1"
# USB vendor:product -> state. The Accelerator enumerates as Global Unichip until libedgetpu has
# uploaded its firmware, then as Google.
USB_IDS: dict[str, str] = {"1a6e:089a": "bootloader", "18d1:9302": "ready"}
PCI_ID = "1ac1:089a"  # the M.2 / Mini PCIe module, as lspci shows it
DELEGATE_SYMBOL = "tflite_plugin_create_delegate"
_DEVICE = re.compile(r"(usb|pci)(?::(\d+))?")
_PACKAGE = re.compile(r"libedgetpu1-(?:legacy-)?(?:std|max)")
_TIMEOUT_S = 3.0
PROBE_TIMEOUT_S = 60.0  # a Pi Zero needs seconds to start Python, load the model and the firmware
_PROBE_MARK = "edge-pose-probe: "
_MODULE = "edge_pose.inference.edgetpu"


class EdgeTpuUnavailable(EdgePoseError):
    """``backend = "edgetpu"`` cannot work: the message is the checklist, one line per item."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings = list(findings)
        lines = [
            'cannot use the Edge TPU (model.backend = "edgetpu"); checked:',
            *(f"  {f.line()}" for f in self.findings),
            'fix the items marked FAIL, or set model.backend = "auto" (the CPU when the Edge '
            'TPU is not usable) or "cpu"',
        ]
        super().__init__("\n".join(lines))

    @property
    def failure(self) -> str:
        """The first failed item, for a one-line reason ("device: no Edge TPU found ...")."""
        failed = next((f for f in self.findings if f.ok is False), None)
        return f"{failed.name}: {failed.detail}" if failed else "unknown"


class EdgeTpuLost(EdgePoseError):
    """The Edge TPU failed while running (unplugged, reset): raised from ``infer``.

    The daemon catches it and, per ``model.on_delegate_failure``, reloads on the CPU
    (:func:`edge_pose.inference.backend.fallback_after_loss`) or exits so systemd restarts it.
    """

    def __init__(self, device: str, cause: BaseException) -> None:
        self.device = device
        self.cause = cause
        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        super().__init__(f"Edge TPU {device} failed during inference: {first}")


class DelegateError(EdgePoseError):
    """``load_delegate`` failed; the message says why in words a user can act on."""


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """The Edge TPU part of ``[model]``."""

    device: str = ""
    library: str = DEFAULT_LIBRARY
    sysfs_root: Path = SYSFS
    on_failure: str = "fallback"

    @classmethod
    def from_config(cls, model_cfg: ModelConfig | None) -> Settings:
        """From a validated ``[model]``; None (`doctor` without a usable config): the defaults."""
        if model_cfg is None:
            return cls()
        return cls(
            device=model_cfg.device,
            library=model_cfg.delegate_library,
            sysfs_root=Path(model_cfg.sysfs_root),
            on_failure=model_cfg.on_delegate_failure,
        )

    @property
    def dev_root(self) -> Path:
        return self.sysfs_root.parent / "dev"


# --------------------------------------------------------------------------- devices


@dataclass(frozen=True)
class Device:
    """One Edge TPU. ``name`` (``usb:0``) is what libedgetpu's ``device`` option takes."""

    kind: Literal["usb", "pci"]
    index: int
    path: str  # sysfs folder (USB) or device node (PCIe)
    node: str  # the node libedgetpu opens; "" when sysfs does not say
    ids: str  # vendor:product
    state: str  # USB: bootloader | ready; PCIe: "" (the driver made the node)
    speed_mbps: int | None = None  # USB link speed: 480 = USB 2, 5000 = USB 3

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.index}"

    def describe(self) -> str:
        if self.kind == "pci":
            return f"{self.name} PCIe {self.node}"
        state = "firmware not loaded yet" if self.state == "bootloader" else "ready"
        speed = f", {self.speed_mbps} Mb/s" if self.speed_mbps else ""
        return f"{self.name} USB {self.ids} ({state}{speed}) at {self.path}"


def find_devices(sysfs_root: Path = SYSFS) -> list[Device]:
    """Every Edge TPU present, PCIe first (libedgetpu's order for ``""``), without opening any."""
    return _pci_devices(sysfs_root) + _usb_devices(sysfs_root)


def pci_without_driver(sysfs_root: Path = SYSFS) -> list[str]:
    """PCI addresses of Coral modules the kernel sees but no apex driver serves (no /dev/apex_N):
    the usual Pi 5 state before gasket-dkms is installed."""
    found = []
    for dev in _children(sysfs_root / "bus" / "pci" / "devices"):
        ids = f"{_hex_id(dev / 'vendor')}:{_hex_id(dev / 'device')}"
        if ids == PCI_ID and not (dev / "driver").exists():
            found.append(dev.name)
    return found


def choose(requested: str, devices: Sequence[Device]) -> Device | None:
    """The device a selector means: ``""`` the first (PCIe before USB), ``usb``/``pci`` the first
    of that kind, ``usb:N``/``pci:N`` the N-th of that kind; None when there is no such device."""
    if not requested:
        return devices[0] if devices else None
    match = _DEVICE.fullmatch(requested)
    if match is None:
        return None
    kind, index = match[1], int(match[2] or 0)
    of_kind = [d for d in devices if d.kind == kind]
    return of_kind[index] if index < len(of_kind) else None


def _usb_devices(sysfs_root: Path) -> list[Device]:
    dev_root = sysfs_root.parent / "dev"
    found = []
    for entry in _children(sysfs_root / "bus" / "usb" / "devices"):
        ids = f"{_read(entry / 'idVendor')}:{_read(entry / 'idProduct')}".lower()
        if ids not in USB_IDS:
            continue
        bus, num = _int(_read(entry / "busnum")), _int(_read(entry / "devnum"))
        node = str(dev_root / "bus" / "usb" / f"{bus:03d}" / f"{num:03d}") if bus and num else ""
        speed = _int(_read(entry / "speed"))
        found.append((entry, ids, node, speed))
    found.sort(key=lambda item: _usb_order(item[0].name))
    return [
        Device("usb", i, str(entry), node, ids, USB_IDS[ids], speed)
        for i, (entry, ids, node, speed) in enumerate(found)
    ]


def _pci_devices(sysfs_root: Path) -> list[Device]:
    dev_root = sysfs_root.parent / "dev"
    names = {p.name for p in _glob(dev_root, "apex_*")}
    names |= {p.name for p in _glob(sysfs_root / "class" / "apex", "apex_*")}
    ordered = sorted(names, key=lambda n: _int(n.removeprefix("apex_")) or 0)
    return [
        Device("pci", i, str(dev_root / n), str(dev_root / n), PCI_ID, "")
        for i, n in enumerate(ordered)
    ]


def _usb_order(name: str) -> tuple[int, ...]:
    """``2-1.4`` -> (2, 1, 4): bus, then port path, close to libusb's enumeration order."""
    return tuple(_int(part) or 0 for part in re.split(r"[-.]", name))


# --------------------------------------------------------------------------- permissions


@dataclass(frozen=True)
class Identity:
    """Who opens the device: the running process by default, or the service user (doctor)."""

    name: str
    uid: int
    gids: frozenset[int]

    @classmethod
    def current(cls) -> Identity:
        import pwd

        uid = os.geteuid()
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        return cls(name, uid, frozenset({os.getegid(), *os.getgroups()}))


def access(node: str, who: Identity) -> tuple[bool | None, str]:
    """Whether ``who`` may read and write ``node`` by its mode bits (what libusb and the apex
    driver need), and a sentence saying why; None when the node is missing."""
    try:
        st = os.stat(node)
    except OSError:
        return None, f"device node {node} does not exist"
    group = _group_name(st.st_gid)
    mode = st.st_mode & 0o777
    if who.uid == 0:
        allowed = True
    elif st.st_uid == who.uid:
        allowed = mode & 0o600 == 0o600
    elif st.st_gid in who.gids:
        allowed = mode & 0o060 == 0o060
    else:
        allowed = mode & 0o006 == 0o006
    verb = "may" if allowed else "may not"
    return allowed, f"{who.name} {verb} open {node} (group {group}, mode {mode:04o})"


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


# --------------------------------------------------------------------------- library


@dataclass(frozen=True)
class Library:
    """What is known about the delegate library without running it on a device."""

    name: str  # as configured
    path: str | None  # the file found, None when not found
    looked_in: tuple[str, ...]
    is_delegate: bool = False
    runtime_version: str = ""  # edgetpu_version(): "BuildLabel(...), RuntimeVersion(14)"
    package: str = ""  # "libedgetpu1-std 16.0tf2.17.1-1.bookworm" when dpkg knows the file
    error: str = ""  # why it could not be loaded

    @property
    def package_version(self) -> str:
        """The package version, e.g. ``16.0tf2.17.1-1.bookworm`` (it names the TF build)."""
        return self.package.partition(" ")[2]

    def describe(self) -> str:
        if self.path is None:
            return f"{self.name} not found (looked in {', '.join(self.looked_in)})"
        what = self.package or self.runtime_version or "version unknown"
        return f"{self.name} -> {self.path} ({what})"


def inspect_library(name: str = DEFAULT_LIBRARY) -> Library:
    """Find ``name`` as the dynamic loader would, load it with ctypes and read its version."""
    path, looked_in = find_library(name)
    if path is None:
        return Library(name, None, looked_in)
    try:
        lib = ctypes.CDLL(path)
    except OSError as exc:
        return Library(name, path, looked_in, error=str(exc))
    is_delegate = hasattr(lib, DELEGATE_SYMBOL)
    runtime_version = ""
    if is_delegate and hasattr(lib, "edgetpu_version"):
        lib.edgetpu_version.restype = ctypes.c_char_p
        lib.edgetpu_version.argtypes = []
        raw = lib.edgetpu_version()
        runtime_version = raw.decode("utf-8", "replace") if raw else ""
    return Library(name, path, looked_in, is_delegate, runtime_version, _package_of(path))


def find_library(name: str) -> tuple[str | None, tuple[str, ...]]:
    """The file ``name`` resolves to, and where it was looked for (for the user, if missing)."""
    if "/" in name:
        path = Path(name).expanduser()
        return (str(path) if path.is_file() else None), (str(path.parent),)
    dirs = _library_dirs()
    for folder in dirs:
        candidate = Path(folder) / name
        if candidate.is_file():
            return str(candidate), tuple(dirs)
    cached = _ldconfig(name)
    return cached, (*dirs, "the ldconfig cache")


def _library_dirs() -> list[str]:
    multiarch = sysconfig.get_config_var("MULTIARCH") or f"{platform.machine()}-linux-gnu"
    env = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    dirs = [*env, "/usr/local/lib", f"/usr/lib/{multiarch}", f"/lib/{multiarch}", "/usr/lib"]
    return list(dict.fromkeys(os.path.normpath(d) for d in dirs if os.path.isdir(d)))


def _ldconfig(name: str) -> str | None:
    exe = shutil.which("ldconfig") or next(
        (p for p in ("/sbin/ldconfig", "/usr/sbin/ldconfig") if os.access(p, os.X_OK)), None
    )
    if exe is None:
        return None
    out = _run([exe, "-p"])
    for line in out.splitlines():
        soname, _, target = line.strip().partition(" => ")
        if soname.split(" (")[0] == name and target:
            return target
    return None


def _package_of(path: str) -> str:
    """``package version`` of the Debian package that installed ``path`` ("" if none)."""
    if shutil.which("dpkg-query") is None:
        return ""
    for candidate in dict.fromkeys((path, os.path.realpath(path))):
        owner = _run(["dpkg-query", "-S", candidate]).partition(":")[0].strip()
        if _PACKAGE.fullmatch(owner):
            version = _run(["dpkg-query", "-W", "-f=${Version}", owner]).strip()
            return f"{owner} {version}" if version else owner
    return ""


# --------------------------------------------------------------------------- versions


@dataclass(frozen=True)
class Pairing:
    """Whether the runtime and libedgetpu are a known good pair: known | mismatch | unknown."""

    status: Literal["known", "mismatch", "unknown"]
    detail: str
    fix: str = ""


def check_pairing(runtime_name: str, runtime_version: str, libedgetpu_version: str) -> Pairing:
    """Compare the TF Lite version libedgetpu was built for with the runtime in use.

    Known pairs: a community build ``16.0tfX.Y.Z`` with tflite-runtime (or tensorflow) X.Y, e.g.
    tflite-runtime 2.17.1 with libedgetpu 16.0tf2.17.1 on Bookworm; Google's own libedgetpu 16.0
    with tflite-runtime 2.5 (Python <= 3.9). Google's builds are known to fail with
    tflite-runtime >= 2.12. LiteRT (ai-edge-litert) does not number its releases after
    TensorFlow, so with it the pair is reported as unknown: loading the delegate decides.
    """
    runtime = f"{runtime_name} {runtime_version}"
    if not libedgetpu_version:
        return Pairing(
            "unknown",
            f"{runtime}; libedgetpu version unknown (not installed from a .deb package)",
            "install libedgetpu from a package that names its TF version (docs/coral.md)",
        )
    lib = f"libedgetpu {libedgetpu_version}"
    built_for = re.search(r"tf(\d+)\.(\d+)(?:\.(\d+))?", libedgetpu_version, re.IGNORECASE)
    ours = _major_minor(runtime_version)
    if runtime_name == "ai-edge-litert":
        target = f"TF {built_for[1]}.{built_for[2]}" if built_for else "TF 2.5"
        return Pairing(
            "unknown",
            f"{runtime} with {lib} (built for {target}): not a verified pair",
            "if the delegate fails, install the tflite-runtime that libedgetpu was built for "
            "(docs/coral.md, supported pairings)",
        )
    if built_for is not None:
        theirs = (int(built_for[1]), int(built_for[2]))
        wanted = built_for[0].lower().removeprefix("tf")
        if ours == theirs:
            return Pairing("known", f"{runtime} with {lib}: built for each other")
        return Pairing(
            "mismatch",
            f"{runtime} with {lib}: libedgetpu was built for TF {wanted}",
            f"pip install tflite-runtime=={wanted}, or install the libedgetpu built for "
            f"{runtime_version} (docs/coral.md)",
        )
    if ours is not None and ours <= (2, 5):
        return Pairing("known", f"{runtime} with {lib}: Coral's own pairing")
    if ours is not None and ours >= (2, 12):
        return Pairing(
            "mismatch",
            f"{runtime} with {lib}: Google's libedgetpu is built for TF 2.5 and fails with "
            "TF Lite 2.12 and later",
            "install a community libedgetpu built for your runtime, e.g. 16.0tf2.17.1 with "
            "tflite-runtime 2.17.1 (docs/coral.md)",
        )
    return Pairing("unknown", f"{runtime} with {lib}: not a verified pair")


def _major_minor(version: str) -> tuple[int, int] | None:
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match[1]), int(match[2])) if match else None


# --------------------------------------------------------------------------- delegate


def load_delegate(runtime: Runtime, library: Library, device: str) -> object:
    """The libedgetpu delegate for ``device`` through ``runtime`` (the module that will build the
    interpreter: a delegate must come from the same runtime). pycoral's loader is used when it is
    installed and pairs with the runtime in use (tflite-runtime) and the library is the default.
    Raises DelegateError with a sentence a user can act on."""
    if library.path is None:
        raise DelegateError(f"{library.describe()}: install libedgetpu (docs/coral.md)")
    if library.error:
        raise DelegateError(f"cannot load {library.path}: {library.error}")
    if not library.is_delegate:
        raise DelegateError(
            f"{library.path} is not a TF Lite delegate (it has no {DELEGATE_SYMBOL}): "
            f"set model.delegate_library to {DEFAULT_LIBRARY}"
        )
    options = {"device": device} if device else {}
    try:
        loader = _pycoral_loader(runtime, library)
        if loader is not None:
            return loader(options)
        return runtime.module.load_delegate(library.path, options)
    except (ValueError, OSError, AttributeError, RuntimeError) as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise DelegateError(
            f"{text} (device {device or 'any'}): libedgetpu could not open the Edge TPU; "
            "is it in use by another process, or does libedgetpu not match the runtime?"
        ) from exc


def _pycoral_loader(
    runtime: Runtime, library: Library
) -> Callable[[dict[str, str]], object] | None:
    if getattr(runtime, "name", "") != "tflite-runtime" or library.name != DEFAULT_LIBRARY:
        return None
    try:
        from pycoral.utils.edgetpu import load_edgetpu_delegate  # type: ignore[import-not-found]
    except Exception:  # pycoral absent, or built for another tflite_runtime
        return None
    return load_edgetpu_delegate


def list_edge_tpus() -> list[dict[str, str]] | None:
    """pycoral's own device list (libedgetpu's enumeration) when pycoral is installed, else None."""
    try:
        from pycoral.utils.edgetpu import list_edge_tpus as pycoral_list
    except Exception:
        return None
    try:
        return [dict(d) for d in pycoral_list()]
    except Exception:
        return None


def probe(
    library_path: str | None,
    device: str,
    model_path: Path,
    *,
    runtime: str = "auto",
    timeout: float = PROBE_TIMEOUT_S,
) -> str | None:
    """Load the delegate and run the model once in a child process: None if that worked, else why.

    A libedgetpu built for another TF Lite version may crash the process (SIGSEGV) instead of
    raising, so a pair that is not known to work is tried where a crash costs a second, not the
    service. ``library_path`` None runs the model without a delegate (a check of the probe).
    """
    library = library_path or ""
    command = [sys.executable, "-m", _MODULE, "--probe", str(model_path), device, library, runtime]
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return f"loading the delegate and model did not finish within {timeout:.0f} s"
    except OSError as exc:
        return f"cannot start the delegate probe: {exc}"
    if result.returncode == 0:
        return None
    return probe_failure(result.returncode, result.stderr)


def probe_failure(returncode: int, stderr: str) -> str:
    """What a failed probe means: a signal is the runtime crashing, else the child's own message."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return (
            f"the runtime crashed ({name}) loading the delegate and model: libedgetpu does not "
            "match the TF Lite runtime"
        )
    lines = stderr.splitlines()
    marked = [ln.removeprefix(_PROBE_MARK) for ln in lines if ln.startswith(_PROBE_MARK)]
    lines = marked or [ln for ln in lines if ln.strip()]
    return lines[-1].strip() if lines else f"the delegate probe exited with status {returncode}"


def _probe_main(model_path: str, device: str, library: str, runtime_name: str) -> int:
    from edge_pose.inference.runtime import make_interpreter, resolve_runtime

    runtime = resolve_runtime(runtime_name)
    delegates = [load_delegate(runtime, inspect_library(library), device)] if library else []
    interpreter = make_interpreter(model_path, 1, delegates, runtime_name)
    interpreter.invoke()
    return 0


# --------------------------------------------------------------------------- diagnosis


@dataclass(frozen=True)
class Finding:
    """One line of the checklist: ``ok`` True / False, None = could not be checked."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = {True: "ok", False: "FAIL", None: "--"}[self.ok]
        fix = f"; fix: {self.fix}" if self.fix and self.ok is not True else ""
        return f"[{mark}] {self.name}: {self.detail}{fix}"


@dataclass
class Diagnosis:
    """Everything looked at for the Edge TPU, as findings in the order a user would fix them."""

    settings: Settings
    library: Library
    devices: list[Device]
    chosen: Device | None
    pairing: Pairing
    findings: list[Finding] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """Worth trying ``load_delegate``: no finding failed."""
        return all(f.ok is not False for f in self.findings)


def looked_for(settings: Settings) -> str:
    usb = " / ".join(USB_IDS)
    return (
        f"USB {usb} under {settings.sysfs_root / 'bus/usb/devices'}, "
        f"PCIe {settings.dev_root / 'apex_*'}"
    )


def diagnose(
    settings: Settings,
    runtime: Runtime | None,
    *,
    who: Identity | None = None,
    library: Library | None = None,
) -> Diagnosis:
    """Check library, device, permission and versions without opening the device."""
    lib = library if library is not None else inspect_library(settings.library)
    devices = find_devices(settings.sysfs_root)
    chosen = choose(settings.device, devices)
    rt_name = getattr(runtime, "name", "") or "no runtime"
    rt_version = getattr(runtime, "version", "") or ""
    pairing = check_pairing(rt_name, rt_version, lib.package_version)
    findings = [
        _library_finding(lib),
        _device_finding(settings, devices, chosen),
        _permission_finding(chosen, who or Identity.current()),
    ]
    if lib.is_delegate:
        ok = {"known": True, "mismatch": False, "unknown": None}[pairing.status]
        findings.append(Finding("versions", ok, pairing.detail, pairing.fix))
    else:
        findings.append(Finding("versions", None, f"{rt_name} {rt_version}; no libedgetpu to pair"))
    return Diagnosis(settings, lib, devices, chosen, pairing, findings)


def _library_finding(lib: Library) -> Finding:
    if lib.path is None:
        return Finding(
            "delegate library",
            False,
            lib.describe(),
            "install the Edge TPU runtime libedgetpu (docs/coral.md) or set "
            "model.delegate_library to its path",
        )
    if lib.error:
        return Finding(
            "delegate library",
            False,
            f"{lib.path} cannot be loaded: {lib.error}",
            "reinstall libedgetpu for this architecture (and libusb-1.0-0)",
        )
    if not lib.is_delegate:
        return Finding(
            "delegate library",
            False,
            f"{lib.path} is not a TF Lite delegate (no {DELEGATE_SYMBOL})",
            f"set model.delegate_library to {DEFAULT_LIBRARY} (or the path of libedgetpu)",
        )
    return Finding("delegate library", True, lib.describe())


def _device_finding(settings: Settings, devices: list[Device], chosen: Device | None) -> Finding:
    if chosen is not None:
        others = [d.name for d in devices if d is not chosen]
        extra = f" (also present: {', '.join(others)})" if others else ""
        return Finding("device", True, f"{chosen.describe()}{extra}")
    unbound = pci_without_driver(settings.sysfs_root)
    if unbound:
        return Finding(
            "device",
            False,
            f"PCIe Coral {', '.join(unbound)} found but no {settings.dev_root / 'apex_0'}: "
            "the apex (gasket) driver is not loaded",
            "install gasket-dkms, on a Pi 5 set the PCIe overlays, reboot (docs/coral.md)",
        )
    if devices:
        present = ", ".join(d.name for d in devices)
        return Finding(
            "device",
            False,
            f"model.device = {settings.device!r} but only {present} found",
            f'set model.device to one of {present} or to "" (first found)',
        )
    return Finding(
        "device",
        False,
        f"no Edge TPU found (looked for {looked_for(settings)})",
        "plug the Coral USB Accelerator into a USB 3 port (lsusb shows 1a6e:089a or "
        "18d1:9302); for M.2/PCIe install gasket-dkms so /dev/apex_0 appears (docs/coral.md)",
    )


def _permission_finding(chosen: Device | None, who: Identity) -> Finding:
    if chosen is None:
        return Finding("permission", None, "not checked (no device)")
    if not chosen.node:
        return Finding("permission", None, f"{chosen.name}: sysfs names no device node")
    allowed, why = access(chosen.node, who)
    if allowed:
        return Finding("permission", True, why)
    group = "apex" if chosen.kind == "pci" else "plugdev"
    return Finding(
        "permission",
        False if allowed is False else None,
        why,
        f"add {who.name} to the {group} group (sudo usermod -aG {group} {who.name}) and install "
        "deploy/udev/60-edge-pose-coral.rules; then log in again or restart the service",
    )


# --------------------------------------------------------------------------- helpers


def is_edgetpu_model(path: Path) -> bool:
    """Whether a .tflite file holds the Edge TPU custom op (edgetpu_compiler's output)."""
    try:
        return b"edgetpu-custom-op" in path.read_bytes()
    except OSError:
        return False


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir())
    except OSError:
        return []


def _glob(folder: Path, pattern: str) -> list[Path]:
    try:
        return list(folder.glob(pattern))
    except OSError:
        return []


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return ""


def _hex_id(path: Path) -> str:
    return _read(path).lower().removeprefix("0x")


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _run(command: list[str]) -> str:
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout if result.returncode == 0 else ""


if __name__ == "__main__":  # the child side of probe()
    if len(sys.argv) != 6 or sys.argv[1] != "--probe":
        sys.exit("usage: python -m edge_pose.inference.edgetpu --probe MODEL DEVICE LIB RUNTIME")
    try:
        sys.exit(_probe_main(*sys.argv[2:]))
    except Exception as exc:  # the parent reads the message; a signal death needs no handling
        text = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{_PROBE_MARK}{text}", file=sys.stderr)
        sys.exit(1)
