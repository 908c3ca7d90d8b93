"""The Coral Edge TPU backend without a Coral: detection against fixture sysfs trees, the real
delegate loading code on a real shared library that is not a delegate, the real Edge TPU and CPU
models, and the mid-run fallback. Only the device (sysfs entries, device nodes) is simulated."""

from __future__ import annotations

import ctypes.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_pose.config import ModelConfig
from edge_pose.errors import EX_FAILURE, ModelError
from edge_pose.inference import edgetpu
from edge_pose.inference.backend import (
    EdgeTpuEstimator,
    fallback_after_loss,
    load_estimator,
    model_build,
)
from edge_pose.inference.edgetpu import (
    DelegateError,
    Device,
    EdgeTpuLost,
    EdgeTpuUnavailable,
    Identity,
    Settings,
)
from edge_pose.inference.movenet import MoveNet
from edge_pose.inference.runtime import resolve_runtime
from edge_pose.pose import Region

CPU_FILE = "movenet_single_pose_lightning_ptq.tflite"
TPU_FILE = "movenet_single_pose_lightning_ptq_edgetpu.tflite"
BOOTLOADER, READY = ("1a6e", "089a"), ("18d1", "9302")


# --------------------------------------------------------------------------- fixtures


class Tree:
    """A fixture root holding ``sys/`` and ``dev/`` as the kernel would lay them out."""

    def __init__(self, root: Path) -> None:
        self.sys = root / "sys"
        self.dev = root / "dev"
        (self.sys / "bus" / "usb" / "devices").mkdir(parents=True)
        self.dev.mkdir()

    def usb(self, name: str, ids: tuple[str, str], bus: int, num: int, speed: int = 5000) -> Path:
        folder = self.sys / "bus" / "usb" / "devices" / name
        folder.mkdir()
        for key, value in {
            "idVendor": ids[0],
            "idProduct": ids[1],
            "busnum": bus,
            "devnum": num,
            "speed": speed,
        }.items():
            (folder / key).write_text(f"{value}\n")
        node = self.dev / "bus" / "usb" / f"{bus:03d}" / f"{num:03d}"
        node.parent.mkdir(parents=True, exist_ok=True)
        node.touch()
        return node

    def interface(self, name: str) -> None:
        """A USB interface folder (``2-1:1.0``): no idVendor, must be ignored."""
        (self.sys / "bus" / "usb" / "devices" / name).mkdir()

    def apex(self, n: int) -> Path:
        (self.sys / "class" / "apex" / f"apex_{n}").mkdir(parents=True)
        node = self.dev / f"apex_{n}"
        node.touch()
        return node

    def pci_unbound(self, address: str) -> None:
        folder = self.sys / "bus" / "pci" / "devices" / address
        folder.mkdir(parents=True)
        (folder / "vendor").write_text("0x1ac1\n")
        (folder / "device").write_text("0x089a\n")


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path / "root")


def model_cfg(**fields: object) -> ModelConfig:
    """The real ``[model]`` section with 2 threads and ``fields``."""
    return ModelConfig(**{"threads": 2, **fields})


@pytest.fixture
def both_models(tmp_path: Path, shared_models: Path) -> Path:
    """A model directory with the CPU build and its Edge TPU twin, as `models fetch` makes it."""
    folder = tmp_path / "models"
    folder.mkdir()
    for name in (CPU_FILE, TPU_FILE):
        shutil.copyfile(shared_models / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def not_a_delegate() -> str:
    """A real shared library that is not a TF Lite delegate."""
    name = ctypes.util.find_library("z") or ctypes.util.find_library("c")
    if name is None:
        pytest.fail("neither libz nor libc found by ctypes.util.find_library")
    path, _ = edgetpu.find_library(name)
    assert path is not None, name
    return path


# --------------------------------------------------------------------------- detection


def test_no_device(tree: Tree) -> None:
    tree.interface("usb1")
    assert edgetpu.find_devices(tree.sys) == []
    assert edgetpu.choose("", []) is None


def test_usb_before_first_use(tree: Tree) -> None:
    node = tree.usb("2-1", BOOTLOADER, bus=2, num=3)
    tree.interface("2-1:1.0")
    (dev,) = edgetpu.find_devices(tree.sys)
    assert (dev.name, dev.ids, dev.state, dev.node) == (
        "usb:0",
        "1a6e:089a",
        "bootloader",
        str(node),
    )
    assert dev.speed_mbps == 5000
    assert "firmware not loaded yet" in dev.describe()


def test_usb_after_first_use(tree: Tree) -> None:
    node = tree.usb("2-1", READY, bus=2, num=4, speed=480)
    (dev,) = edgetpu.find_devices(tree.sys)
    assert (dev.name, dev.ids, dev.state, dev.node) == ("usb:0", "18d1:9302", "ready", str(node))
    assert "480 Mb/s" in dev.describe()


def test_two_usb_devices_in_port_order(tree: Tree) -> None:
    tree.usb("2-1.10", READY, bus=2, num=7)
    tree.usb("2-1.2", BOOTLOADER, bus=2, num=5)
    devices = edgetpu.find_devices(tree.sys)
    assert [(d.name, d.path.rsplit("/", 1)[1]) for d in devices] == [
        ("usb:0", "2-1.2"),
        ("usb:1", "2-1.10"),
    ]


def test_pcie(tree: Tree) -> None:
    node = tree.apex(0)
    (dev,) = edgetpu.find_devices(tree.sys)
    assert (dev.name, dev.kind, dev.node, dev.ids) == ("pci:0", "pci", str(node), "1ac1:089a")


def test_pcie_module_without_driver_is_not_a_device(tree: Tree) -> None:
    tree.pci_unbound("0000:01:00.0")
    assert edgetpu.find_devices(tree.sys) == []
    assert edgetpu.pci_without_driver(tree.sys) == ["0000:01:00.0"]
    d = edgetpu.diagnose(Settings(sysfs_root=tree.sys), resolve_runtime())
    device = next(f for f in d.findings if f.name == "device")
    assert device.ok is False and "apex (gasket) driver is not loaded" in device.detail
    assert "gasket-dkms" in device.fix


LAYOUTS = {
    "none": [],
    "usb-before": [("usb", "2-1", BOOTLOADER)],
    "usb-after": [("usb", "2-1", READY)],
    "two-usb": [("usb", "1-1", READY), ("usb", "2-1", BOOTLOADER)],
    "pcie": [("pci", 0, None)],
    "pcie+usb": [("usb", "2-1", READY), ("pci", 0, None)],
}


@pytest.mark.parametrize(
    ("layout", "requested", "chosen"),
    [
        ("none", "", None),
        ("none", "usb", None),
        ("usb-before", "", "usb:0"),
        ("usb-before", "usb", "usb:0"),
        ("usb-before", "usb:1", None),
        ("usb-before", "pci", None),
        ("usb-after", "", "usb:0"),
        ("usb-after", "usb:0", "usb:0"),
        ("two-usb", "", "usb:0"),
        ("two-usb", "usb:1", "usb:1"),
        ("two-usb", "usb:2", None),
        ("pcie", "", "pci:0"),
        ("pcie", "pci", "pci:0"),
        ("pcie", "usb", None),
        ("pcie+usb", "", "pci:0"),  # libedgetpu tries PCIe first
        ("pcie+usb", "usb", "usb:0"),
        ("pcie+usb", "pci:0", "pci:0"),
    ],
)
def test_chosen_device_string(tree: Tree, layout: str, requested: str, chosen: str | None) -> None:
    for i, (kind, where, ids) in enumerate(LAYOUTS[layout]):
        if kind == "usb":
            tree.usb(str(where), ids, bus=i + 1, num=2)
        else:
            tree.apex(int(where))
    device = edgetpu.choose(requested, edgetpu.find_devices(tree.sys))
    assert (device.name if device else None) == chosen


def test_device_finding_names_what_is_present(tree: Tree) -> None:
    tree.usb("2-1", READY, bus=2, num=4)
    d = edgetpu.diagnose(Settings(device="usb:1", sysfs_root=tree.sys), resolve_runtime())
    device = next(f for f in d.findings if f.name == "device")
    assert device.ok is False
    assert "model.device = 'usb:1' but only usb:0 found" in device.detail


# --------------------------------------------------------------------------- permissions


def test_access_by_mode_and_group(tree: Tree) -> None:
    node = tree.usb("2-1", READY, bus=2, num=4)
    os.chmod(node, 0o660)
    gid = os.stat(node).st_gid
    member = Identity("pi", 4242, frozenset({gid}))
    stranger = Identity("guest", 4243, frozenset({gid + 1}))
    assert edgetpu.access(str(node), member)[0] is True
    allowed, why = edgetpu.access(str(node), stranger)
    assert allowed is False and "guest may not open" in why and "mode 0660" in why
    assert edgetpu.access(str(node), Identity("root", 0, frozenset()))[0] is True
    assert edgetpu.access(str(tree.dev / "missing"), member)[0] is None


def test_permission_finding_says_which_group(tree: Tree) -> None:
    node = tree.apex(0)
    os.chmod(node, 0o660)
    stranger = Identity("guest", 4243, frozenset({os.stat(node).st_gid + 1}))
    d = edgetpu.diagnose(Settings(sysfs_root=tree.sys), resolve_runtime(), who=stranger)
    permission = next(f for f in d.findings if f.name == "permission")
    assert permission.ok is False and "usermod -aG apex guest" in permission.fix


# --------------------------------------------------------------------------- versions


@pytest.mark.parametrize(
    ("runtime", "version", "libedgetpu", "status"),
    [
        ("tflite-runtime", "2.17.1", "16.0tf2.17.1-1.bookworm", "known"),
        ("tflite-runtime", "2.17.0", "16.0TF2.17.1-1.trixie", "known"),
        ("tflite-runtime", "2.16.1", "16.0tf2.17.1-1.bookworm", "mismatch"),
        ("tflite-runtime", "2.5.0.post1", "16.0", "known"),
        ("tflite-runtime", "2.17.1", "16.0", "mismatch"),
        ("ai-edge-litert", "2.3.0", "16.0tf2.17.1-1.trixie", "unknown"),
        ("tflite-runtime", "2.17.1", "", "unknown"),
    ],
)
def test_pairings(runtime: str, version: str, libedgetpu: str, status: str) -> None:
    pairing = edgetpu.check_pairing(runtime, version, libedgetpu)
    assert pairing.status == status
    if status == "mismatch":
        assert "docs/coral.md" in pairing.fix


def test_mismatch_names_both_ways_out() -> None:
    pairing = edgetpu.check_pairing("tflite-runtime", "2.16.1", "16.0tf2.17.1-1.bookworm")
    assert "tflite-runtime==2.17.1" in pairing.fix and "2.16.1" in pairing.fix


# --------------------------------------------------------------------------- the library


def test_missing_library_says_where_it_looked() -> None:
    lib = edgetpu.inspect_library("libedgetpu-not-here.so.1")
    assert lib.path is None and lib.looked_in
    assert "looked in" in lib.describe()
    with pytest.raises(DelegateError, match="not found"):
        edgetpu.load_delegate(resolve_runtime(), lib, "usb:0")


def test_a_library_that_is_not_a_delegate(not_a_delegate: str) -> None:
    lib = edgetpu.inspect_library(not_a_delegate)
    assert lib.path == not_a_delegate and lib.is_delegate is False and not lib.error
    with pytest.raises(DelegateError, match="is not a TF Lite delegate"):
        edgetpu.load_delegate(resolve_runtime(), lib, "usb:0")


def test_a_soname_is_found_like_the_loader_does(not_a_delegate: str) -> None:
    path, _looked_in = edgetpu.find_library(Path(not_a_delegate).name)
    assert path is not None and Path(path).name == Path(not_a_delegate).name


def test_is_edgetpu_model(shared_models: Path) -> None:
    assert edgetpu.is_edgetpu_model(shared_models / TPU_FILE)
    assert not edgetpu.is_edgetpu_model(shared_models / CPU_FILE)


# --------------------------------------------------------------------------- backends


def test_auto_without_a_device_runs_on_the_cpu(tree: Tree, both_models: Path) -> None:
    cfg = model_cfg(dir=str(both_models), sysfs_root=str(tree.sys))
    model, backend, name = load_estimator(cfg)
    assert (backend.kind, backend.reason, name) == ("cpu", "auto: no Edge TPU found", cfg.name)
    assert backend.delegate.startswith("XNNPACK") and backend.runtime == str(resolve_runtime())
    assert model.infer(np.zeros((192, 192, 3), np.uint8), Region(0, 0, 192, 192)).shape == (17, 3)


def test_auto_with_an_edgetpu_model_and_no_device_uses_the_cpu_twin(
    tree: Tree, both_models: Path
) -> None:
    cfg = model_cfg(
        name="movenet_lightning_int8_edgetpu", dir=str(both_models), sysfs_root=str(tree.sys)
    )
    _model, backend, name = load_estimator(cfg)
    assert (backend.kind, name) == ("cpu", "movenet_lightning_int8")


def test_auto_falls_back_when_the_delegate_does_not_load(
    tree: Tree, both_models: Path, not_a_delegate: str, caplog: pytest.LogCaptureFixture
) -> None:
    tree.usb("2-1", READY, bus=2, num=4)
    cfg = model_cfg(dir=str(both_models), sysfs_root=str(tree.sys), delegate_library=not_a_delegate)
    with caplog.at_level("WARNING", logger="edge_pose.inference.backend"):
        _model, backend, name = load_estimator(cfg)
        load_estimator(cfg)  # a reload: the reason is not logged again
    assert (backend.kind, name) == ("cpu", "movenet_lightning_int8")
    assert backend.reason.startswith("auto: Edge TPU present but not usable (delegate library:")
    assert "not a TF Lite delegate" in backend.reason
    assert sum("not usable" in r.getMessage() for r in caplog.records) == 1


def test_auto_without_a_device_reports_the_cpu_model_error_as_it_is(
    tree: Tree, tmp_path: Path
) -> None:
    """No Edge TPU: the CPU was the only choice, so its error needs no prefix about a choice."""
    cfg = model_cfg(dir=str(tmp_path), sysfs_root=str(tree.sys))
    with pytest.raises(ModelError) as excinfo:
        load_estimator(cfg)
    message = str(excinfo.value)
    assert not message.startswith("auto:")
    assert "edge-pose models fetch movenet_lightning_int8" in message


def test_auto_with_an_unusable_device_and_no_cpu_build_says_both(
    tree: Tree, tmp_path: Path, not_a_delegate: str
) -> None:
    tree.usb("2-1", READY, bus=2, num=4)
    cfg = model_cfg(dir=str(tmp_path), sysfs_root=str(tree.sys), delegate_library=not_a_delegate)
    with pytest.raises(ModelError) as excinfo:
        load_estimator(cfg)
    message = str(excinfo.value)
    assert message.startswith("auto: Edge TPU present but not usable (")
    assert ", and the CPU build is not available: " in message
    assert "edge-pose models fetch movenet_lightning_int8" in message


def test_auto_with_a_device_but_no_edgetpu_build(
    tree: Tree, tmp_path: Path, shared_models: Path, not_a_delegate: str
) -> None:
    tree.usb("2-1", READY, bus=2, num=4)
    only_cpu = tmp_path / "cpu-only"
    only_cpu.mkdir()
    shutil.copyfile(shared_models / CPU_FILE, only_cpu / CPU_FILE)
    cfg = model_cfg(dir=str(only_cpu), sysfs_root=str(tree.sys), delegate_library=not_a_delegate)
    _model, backend, _name = load_estimator(cfg)
    assert backend.kind == "cpu"
    with pytest.raises(EdgeTpuUnavailable) as excinfo:
        load_estimator(cfg.model_copy(update={"backend": "edgetpu"}))
    assert "edge-pose models fetch movenet_lightning_int8_edgetpu" in str(excinfo.value)


def test_explicit_edgetpu_without_a_device_lists_the_checks(tree: Tree, both_models: Path) -> None:
    cfg = model_cfg(
        backend="edgetpu",
        dir=str(both_models),
        sysfs_root=str(tree.sys),
        delegate_library="libedgetpu-not-here.so.1",
    )
    with pytest.raises(EdgeTpuUnavailable) as excinfo:
        load_estimator(cfg)
    error = excinfo.value
    assert error.exit_code == EX_FAILURE
    text = str(error)
    for item in (
        "[FAIL] delegate library:",
        "[FAIL] device: no Edge TPU found",
        "[--] permission: not checked",
        "versions:",
        "[ok] model:",
    ):
        assert item in text, text
    assert "1a6e:089a / 18d1:9302" in text and "apex_*" in text
    assert 'model.backend = "auto"' in text
    assert error.failure.startswith("delegate library:")


def test_explicit_edgetpu_with_a_library_that_is_not_a_delegate(
    tree: Tree, both_models: Path, not_a_delegate: str
) -> None:
    tree.usb("2-1", BOOTLOADER, bus=2, num=3)
    cfg = model_cfg(
        backend="edgetpu",
        dir=str(both_models),
        sysfs_root=str(tree.sys),
        delegate_library=not_a_delegate,
    )
    with pytest.raises(EdgeTpuUnavailable) as excinfo:
        load_estimator(cfg)
    text = str(excinfo.value)
    assert f"[FAIL] delegate library: {not_a_delegate} is not a TF Lite delegate" in text
    assert "[ok] device: usb:0 USB 1a6e:089a (firmware not loaded yet" in text
    assert "[ok] permission:" in text


def test_edgetpu_model_on_the_cpu_names_the_twin(both_models: Path, shared_models: Path) -> None:
    cfg = model_cfg(name="movenet_lightning_int8_edgetpu", backend="cpu", dir=str(both_models))
    with pytest.raises(ModelError, match="use its CPU build 'movenet_lightning_int8'"):
        load_estimator(cfg)
    by_path = model_cfg(name=str(shared_models / TPU_FILE), backend="cpu")
    with pytest.raises(ModelError, match="use its CPU build 'movenet_lightning_int8'"):
        load_estimator(by_path)


def test_a_renamed_edgetpu_model_fails_in_the_interpreter(
    tmp_path: Path, shared_models: Path
) -> None:
    renamed = tmp_path / "pose.tflite"
    shutil.copyfile(shared_models / TPU_FILE, renamed)
    with pytest.raises(ModelError, match="compiled for the Coral Edge TPU"):
        load_estimator(model_cfg(name=str(renamed), backend="cpu"))


def test_model_build_finds_twins(both_models: Path, tmp_path: Path, shared_models: Path) -> None:
    assert model_build("edgetpu", "movenet_lightning_int8", both_models) == (
        "movenet_lightning_int8_edgetpu",
        both_models / TPU_FILE,
    )
    _name, path = model_build("cpu", str(both_models / TPU_FILE), both_models)
    assert path == both_models / CPU_FILE
    own = tmp_path / "own"
    own.mkdir()
    shutil.copyfile(shared_models / CPU_FILE, own / "pose.tflite")
    with pytest.raises(ModelError, match="compile it with edgetpu_compiler"):
        model_build("edgetpu", str(own / "pose.tflite"), own)
    shutil.copyfile(shared_models / TPU_FILE, own / "pose_edgetpu.tflite")
    assert model_build("edgetpu", str(own / "pose.tflite"), own)[1] == own / "pose_edgetpu.tflite"


# --------------------------------------------------------------------------- mid-run failure


def _lost(lightning_path: Path) -> EdgeTpuLost:
    """A real invoke failure: the interpreter refuses to run while a view of its buffers lives."""
    model = EdgeTpuEstimator(MoveNet(lightning_path, threads=1), "usb:0")
    image = np.zeros((192, 192, 3), np.uint8)
    assert model.estimate(image, Region(0, 0, 192, 192))[0].keypoints.shape == (17, 3)
    view = model.interpreter.tensor(model.interpreter.get_output_details()[0]["index"])()
    with pytest.raises(EdgeTpuLost) as excinfo:
        model.estimate(image, Region(0, 0, 192, 192))
    del view
    return excinfo.value


def test_a_failing_invoke_becomes_edgetpu_lost(lightning_path: Path) -> None:
    lost = _lost(lightning_path)
    assert lost.device == "usb:0" and isinstance(lost.cause, RuntimeError)
    assert str(lost).startswith("Edge TPU usb:0 failed during inference: ")


def test_fallback_after_loss(lightning_path: Path, model_dir: Path) -> None:
    lost = _lost(lightning_path)
    cfg = model_cfg(name="movenet_lightning_int8_edgetpu", dir=str(model_dir))
    model, backend, name = fallback_after_loss(cfg, lost)
    assert (backend.kind, name) == ("cpu", "movenet_lightning_int8")
    assert backend.reason.startswith("fallback: Edge TPU usb:0 failed during inference")
    assert model.infer(np.zeros((192, 192, 3), np.uint8), Region(0, 0, 192, 192)).shape == (17, 3)
    with pytest.raises(EdgeTpuLost) as excinfo:
        fallback_after_loss(model_cfg(dir=str(model_dir), on_delegate_failure="exit"), lost)
    assert excinfo.value is lost


# --------------------------------------------------------------------------- the probe


def test_probe_runs_the_model_in_a_child(lightning_path: Path, not_a_delegate: str) -> None:
    assert edgetpu.probe(None, "", lightning_path) is None
    failure = edgetpu.probe(not_a_delegate, "usb:0", lightning_path)
    assert failure is not None and "is not a TF Lite delegate" in failure


def test_probe_failure_texts() -> None:
    crash = edgetpu.probe_failure(-11, "")
    assert "SIGSEGV" in crash and "does not match" in crash
    assert edgetpu.probe_failure(1, "noise\nedge-pose-probe: Failed to load delegate\n") == (
        "Failed to load delegate"
    )


# --------------------------------------------------------------------------- the service


def _real_coral_present() -> bool:
    return bool(edgetpu.find_devices())


def test_run_with_explicit_edgetpu_exits_1_with_the_checklist(
    data_dir: Path, model_dir: Path, tmp_path: Path
) -> None:
    if _real_coral_present():
        pytest.skip("a real Edge TPU is attached: this test needs a machine without one")
    video = data_dir / "tfjs" / "pose_squats.mp4"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_pose.cli",
            "run",
            "--backend",
            "edgetpu",
            "--no-mqtt",
            "--camera",
            str(video),
            "--no-realtime",
            "--max-frames",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "EDGE_POSE_MODEL_DIR": str(model_dir)},
        cwd=tmp_path,
    )
    assert result.returncode == EX_FAILURE, result.stderr
    assert "edge-pose: error: cannot use the Edge TPU" in result.stderr
    assert "[FAIL] device: no Edge TPU found" in result.stderr
    assert "Traceback" not in result.stderr


def test_auto_reason_is_in_the_status_file(data_dir: Path, model_dir: Path, tmp_path: Path) -> None:
    if _real_coral_present():
        pytest.skip("a real Edge TPU is attached: this test needs a machine without one")
    config = tmp_path / "config.toml"
    config.write_text(f'[status]\ndir = "{tmp_path / "status"}"\n')
    video = data_dir / "tfjs" / "pose_squats.mp4"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_pose.cli",
            "run",
            "--config",
            str(config),
            "--no-mqtt",
            "--camera",
            str(video),
            "--no-realtime",
            "--max-frames",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "EDGE_POSE_MODEL_DIR": str(model_dir)},
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads((tmp_path / "status" / "status.json").read_text())
    assert doc["backend"]["kind"] == "cpu"
    assert doc["backend"]["reason"] == "auto: no Edge TPU found"
    assert "auto: no Edge TPU found" in result.stderr


def test_device_descriptions_are_one_line() -> None:
    usb = Device(
        "usb", 1, "/sys/bus/usb/devices/2-1", "/dev/bus/usb/002/004", "18d1:9302", "ready", 5000
    )
    pci = Device("pci", 0, "/dev/apex_0", "/dev/apex_0", "1ac1:089a", "")
    assert usb.describe() == "usb:1 USB 18d1:9302 (ready, 5000 Mb/s) at /sys/bus/usb/devices/2-1"
    assert pci.describe() == "pci:0 PCIe /dev/apex_0"
