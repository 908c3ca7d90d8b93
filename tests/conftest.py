"""Shared test fixtures: real models and data from ../shared, a real Mosquitto broker.

Under CI=true a missing model, data file or broker is a failure, never a skip, and a run that
skipped anything fails.

The suite runs on several pytest-xdist workers at once (pyproject.toml), so every test keeps
what it writes to itself: tmp_path, brokers on free ports, and daemons' status in a folder of
the worker's own. A test module runs on one worker, so a module-scoped fixture is built once.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest_plugins = ["mqtt_broker"]

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGE_POSE_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"
IN_CI = os.environ.get("CI", "").lower() == "true"


def require(path: Path) -> Path:
    """Return ``path`` if it exists; fail under CI, skip elsewhere."""
    if path.exists():
        return path
    message = f"test material missing: {path} (set EDGE_POSE_SHARED to the shared/ folder)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def reference_xy(data_dir: Path) -> np.ndarray:
    """squat.bmp's keypoints as pycoral found them (17 x (x, y), normalized to the image)."""
    path = data_dir / "coral" / "movenet_single_pose_lightning_ptq_reference.csv"
    rows = sorted(csv.DictReader(path.open()), key=lambda r: int(r["keypoint_id"]))
    assert len(rows) == 17
    return np.array([[float(r["keypoint_x"]), float(r["keypoint_y"])] for r in rows])


def need_tool(name: str, package: str) -> str:
    """Path of program ``name`` (also in /usr/sbin, which is not on every PATH); fail under CI,
    skip elsewhere, with the apt command that installs ``package``."""
    path = shutil.which(name) or next(
        (p for d in ("/usr/sbin", "/usr/bin") if os.access(p := f"{d}/{name}", os.X_OK)), None
    )
    if path:
        return path
    message = f"{name} is not installed: sudo apt-get install {package}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return require(DATA)


@pytest.fixture(scope="session")
def shared_models() -> Path:
    """../shared/models with the real Lightning builds, CPU and Edge TPU (the model mirror)."""
    folder = SHARED / "models"
    require(folder / "movenet_single_pose_lightning_ptq.tflite")
    require(folder / "movenet_single_pose_lightning_ptq_edgetpu.tflite")
    return folder


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The model directory the project installs into (filled by `edge-pose models fetch`)."""
    return Path(os.environ.get("EDGE_POSE_MODEL_DIR", REPO / "models"))


@pytest.fixture(scope="session")
def lightning_path(model_dir: Path) -> Path:
    return require(model_dir / "movenet_single_pose_lightning_ptq.tflite")


@pytest.fixture(scope="session")
def multipose_path(model_dir: Path) -> Path:
    """MoveNet MultiPose, installed as a user installs it (`edge-pose models fetch NAME`, from
    $EDGE_POSE_MODEL_MIRROR: it has no public download) when it is not there yet."""
    path = model_dir / "movenet_multipose_lightning_256_f16.tflite"
    if not path.exists():
        subprocess.run(
            [sys.executable, "-m", "edge_pose.cli", "models", "fetch",
             "movenet_multipose_lightning"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    return require(path)


# --------------------------------------------------------------------------- parallel workers

@pytest.fixture(scope="session", autouse=True)
def worker_status_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where every `edge-pose run` a test starts writes status.json unless told otherwise: a
    folder of this worker's own as ``$RUNTIME_DIRECTORY`` (as systemd sets it), not
    /run/edge-pose. A run refuses a status folder that another live run uses, so daemons of two
    workers, or a real service on the machine, would otherwise make each other fail."""
    folder = tmp_path_factory.mktemp("runtime")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RUNTIME_DIRECTORY", str(folder))
        # The web view of every run on a free port: workers' daemons must not fight over 8080.
        patch.setenv("EDGE_POSE_HTTP_PORT", "0")
        yield folder


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under CI=true a skipped test fails the run: CI is the whole suite, never a part of it."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if not IN_CI or reporter is None or hasattr(session.config, "workerinput"):
        return
    skipped = reporter.stats.get("skipped", [])
    if skipped and session.exitstatus == pytest.ExitCode.OK:
        reporter.line("")  # the progress line is still open
        reporter.write_sep("=", f"CI=true: {len(skipped)} skipped, which fails the run", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --------------------------------------------------------------------------- not as root

NOBODY = 65534


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A temporary directory any user may enter (tmp_path is private to the user running pytest)."""
    path = Path(tempfile.mkdtemp(prefix="edge-pose-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_unprivileged(*args: str) -> subprocess.CompletedProcess:
    """``python -m edge_pose.cli ARGS`` as a user who is not root.

    Root reads every file whatever its permissions, so under root (CI runs as root) the command
    runs as nobody through setpriv; otherwise as the current user.
    """
    command = [sys.executable, "-m", "edge_pose.cli", *args]
    if os.geteuid() == 0:
        command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                   *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
