"""`edge-pose doctor` on this machine, as a real subprocess: every item reported, and the exit code
following what is broken (a real Mosquitto running, stopped, refusing a password). The Edge TPU
items are also checked in-process against a fixture sysfs tree (the device is simulated)."""

from __future__ import annotations

import ctypes.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from mqtt_broker import MosquittoBroker, free_port

from edge_pose import doctor
from edge_pose.config import load_config
from edge_pose.inference import edgetpu

DOCTOR = [sys.executable, "-m", "edge_pose.cli", "doctor"]
NAMES = [
    "python",
    "os",
    "runtime",
    "numpy",
    "config",
    "model",
    "classifier",
    "camera",
    "libedgetpu",
    "edge tpu",
    "tpu access",
    "tpu versions",
    "service user",
    "mqtt",
    "web",
    "system",
    "service",
]


def run_doctor(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DOCTOR, "--config", str(config), "--timeout", "3", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write_config(path: Path, video: Path, model_dir: Path, port: int, extra: str = "") -> Path:
    path.write_text(
        f'[camera]\nsource = "{video}"\n'
        f'[model]\ndir = "{model_dir}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\n{extra}'
    )
    return path


def report(result: subprocess.CompletedProcess[str]) -> dict:
    doc = json.loads(result.stdout)
    doc["by_name"] = {c["name"]: c for c in doc["checks"]}
    return doc


@pytest.fixture
def video(data_dir: Path) -> Path:
    return data_dir / "tfjs" / "pose_squats.mp4"


def test_exit_code_follows_the_broker(
    mosquitto: MosquittoBroker, video: Path, lightning_path: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "c.toml", video, lightning_path.parent, mosquitto.port)
    running = run_doctor(config, "--json")
    up = report(running)
    assert [c["name"] for c in up["checks"]] == NAMES
    for name in ("python", "runtime", "numpy", "config", "model", "camera", "mqtt"):
        assert up["by_name"][name]["status"] == "ok", up["by_name"][name]
    assert up["by_name"]["mqtt"]["summary"] == f"127.0.0.1:{mosquitto.port} accepted a connection"
    assert running.returncode == (1 if up["failed"] else 0), running.stderr
    assert up["ok"] is (running.returncode == 0)

    mosquitto.stop()
    stopped = run_doctor(config, "--json")
    down = report(stopped)
    assert stopped.returncode == 1
    assert down["ok"] is False
    assert down["failed"] == sorted({*up["failed"], "mqtt"}, key=NAMES.index)  # only MQTT changed
    mqtt = down["by_name"]["mqtt"]
    assert mqtt["status"] == "fail" and "cannot connect to 127.0.0.1" in mqtt["summary"]
    assert "mosquitto" in mqtt["fix"]

    text = run_doctor(config)
    assert text.returncode == 1
    lines = text.stdout.splitlines()
    assert lines[0] == f"edge-pose doctor (config: {config})"
    fail = next(i for i, line in enumerate(lines) if line.startswith("FAIL  mqtt "))
    assert lines[fail + 1].strip().startswith("fix: start the broker")
    assert "mqtt" in lines[-1] and "broken" in lines[-1]
    for name in NAMES:
        assert any(line[6:].startswith(name) for line in lines), name


def test_broker_refusing_the_password(video: Path, lightning_path: Path, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    with MosquittoBroker(tmp_path / "broker", users={"pose": "right"}) as broker:
        secret.write_text("wrong\n")
        extra = f'username = "pose"\npassword_file = "{secret}"\n'
        config = write_config(tmp_path / "c.toml", video, lightning_path.parent, broker.port, extra)
        refused = report(run_doctor(config, "--json"))["by_name"]["mqtt"]
        assert refused["status"] == "fail" and "refused the connection" in refused["summary"]
        assert "mqtt.password_file" in refused["fix"]
        secret.write_text("right\n")
        accepted = report(run_doctor(config, "--json"))["by_name"]["mqtt"]
        assert accepted["status"] == "ok" and accepted["summary"].endswith("as pose")


def test_missing_model_and_closed_port(video: Path, tmp_path: Path) -> None:
    empty = tmp_path / "no-models"
    empty.mkdir()
    config = write_config(tmp_path / "c.toml", video, empty, free_port())
    result = run_doctor(config, "--json")
    doc = report(result)
    assert result.returncode == 1
    model = doc["by_name"]["model"]
    assert (
        model["status"] == "fail"
        and model["fix"] == f"edge-pose models fetch movenet_lightning_int8 --dir {empty}"
    )
    assert {"model", "mqtt"} <= set(doc["failed"])


def test_classifier_that_cannot_load(video: Path, lightning_path: Path, tmp_path: Path) -> None:
    extra = '[classifier]\ntype = "knn"\npath = "/no/such/poses.knn"\n'
    config = write_config(tmp_path / "c.toml", video, lightning_path.parent, free_port())
    config.write_text(config.read_text() + extra)
    doc = report(run_doctor(config, "--json"))
    classifier = doc["by_name"]["classifier"]
    assert classifier["status"] == "fail" and "/no/such/poses.knn" in classifier["summary"]
    assert "classifier" in doc["failed"]
    config.write_text(config.read_text().replace(extra, ""))
    rules = report(run_doctor(config, "--json"))["by_name"]["classifier"]
    assert rules["status"] == "ok" and "built-in pose rules" in rules["summary"]


def test_invalid_config(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[camera]\nfsp = 30\n")
    result = run_doctor(config, "--json")
    doc = report(result)
    assert result.returncode == 1
    assert doc["by_name"]["config"]["status"] == "fail"
    assert "camera.fsp: unknown key" in doc["by_name"]["config"]["summary"]
    assert doc["by_name"]["config"]["summary"].count(str(config)) == 1  # named once
    for name in ("model", "classifier", "camera", "mqtt"):
        assert doc["by_name"][name]["status"] == "info"
        assert "config is invalid" in doc["by_name"][name]["summary"]
    assert doc["by_name"]["runtime"]["status"] == "ok"  # the rest is still looked at


# --------------------------------------------------------------------------- Edge TPU items


def tpu_checks(backend: str, sysfs: Path, library: str, video: Path) -> dict[str, doctor.Check]:
    cfg = load_config(
        None, {"model.backend": backend, "mqtt.enabled": False, "camera.source": str(video)}
    )
    settings = edgetpu.Settings(sysfs_root=sysfs, library=library)
    who = edgetpu.Identity.current()
    ctx = doctor.Context(cfg, None, [], 1.0, who, "", settings)
    return {c.name: c for c in doctor.run_context(ctx)}


@pytest.fixture
def coral_usb(tmp_path: Path) -> Path:
    """A fixture sysfs tree with one Coral USB Accelerator after first use."""
    device = tmp_path / "sys" / "bus" / "usb" / "devices" / "2-1"
    device.mkdir(parents=True)
    for key, value in {"idVendor": "18d1", "idProduct": "9302", "busnum": 2, "devnum": 4}.items():
        (device / key).write_text(f"{value}\n")
    node = tmp_path / "dev" / "bus" / "usb" / "002" / "004"
    node.parent.mkdir(parents=True)
    node.touch()
    return tmp_path / "sys"


@pytest.fixture(scope="module")
def not_a_delegate() -> str:
    name = ctypes.util.find_library("z") or ctypes.util.find_library("c")
    path = edgetpu.find_library(name)[0] if name else None
    if path is None:
        pytest.fail("no libz or libc to stand in for a library that is not a delegate")
    return path


def test_edgetpu_items_with_backend_edgetpu(coral_usb: Path, not_a_delegate: str, video: Path):
    checks = tpu_checks("edgetpu", coral_usb, not_a_delegate, video)
    assert checks["libedgetpu"].status == "fail"
    assert "is not a TF Lite delegate" in checks["libedgetpu"].summary
    assert checks["edge tpu"].status == "ok" and checks["edge tpu"].summary.startswith("usb:0 USB")
    assert checks["edge tpu"].data["chosen"] == "usb:0"
    assert [d["name"] for d in checks["edge tpu"].data["devices"]] == ["usb:0"]
    assert checks["tpu access"].status == "ok"
    assert doctor.exit_code(list(checks.values())) == 1


def test_edgetpu_items_with_backend_auto(
    coral_usb: Path, not_a_delegate: str, video: Path, tmp_path: Path
) -> None:
    present = tpu_checks("auto", coral_usb, not_a_delegate, video)
    assert present["libedgetpu"].status == "warn"  # auto still works, on the CPU
    empty = tmp_path / "empty" / "sys"
    empty.mkdir(parents=True)
    absent = tpu_checks("auto", empty, "libedgetpu-not-here.so.1", video)
    assert absent["edge tpu"].status == "info"
    assert absent["edge tpu"].summary.startswith("none found, so the CPU is used")
    assert absent["libedgetpu"].status == "info"
    assert absent["libedgetpu"].summary.endswith("(only needed with a Coral)")


def test_own_classifier_whose_labels_miss_the_rep_pair(
    video: Path,
    lightning_path: Path,
    data_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A k-NN trained on ML Kit's fitness labels with the default rep_down/rep_up (the rules'
    names): reps could never count. doctor warns naming the keys and the labels, and the
    pipeline logs it once at start; with two of its labels as the pair, neither does."""
    from edge_pose.classify.knn import KnnClassifier
    from edge_pose.classify.samples import load_csv
    from edge_pose.track import Temporal

    knn = tmp_path / "fitness.knn"
    KnnClassifier(load_csv(data_dir / "mlkit" / "fitness_pose_samples.csv")).save(knn)
    extra = f'[classifier]\ntype = "knn"\npath = "{knn}"\n'
    config = write_config(tmp_path / "c.toml", video, lightning_path.parent, free_port(), extra)
    check = report(run_doctor(config, "--json"))["by_name"]["classifier"]
    assert check["status"] == "warn", check
    assert "classifier.rep_down = 'squat_down' and classifier.rep_up = 'standing'" in check["fix"]
    assert "squats_down" in check["fix"] and "never counted" in check["fix"]
    with caplog.at_level("WARNING"):
        Temporal.from_config(load_config(config))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "classifier.rep_up = 'standing'" in warnings[0], warnings

    paired = extra + 'rep_down = "squats_down"\nrep_up = "squats_up"\n'
    config = write_config(tmp_path / "c.toml", video, lightning_path.parent, free_port(), paired)
    assert report(run_doctor(config, "--json"))["by_name"]["classifier"]["status"] == "ok"
    caplog.clear()
    with caplog.at_level("WARNING"):
        Temporal.from_config(load_config(config))
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
