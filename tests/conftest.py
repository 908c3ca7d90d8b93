"""Shared test fixtures: real models and data from ../shared, a real Mosquitto broker.

Under CI=true a missing model, data file or broker is a failure, never a skip.
"""

from __future__ import annotations

import os
from pathlib import Path

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


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return require(DATA)


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The model directory the project installs into (filled by `edge-pose models fetch`)."""
    return Path(os.environ.get("EDGE_POSE_MODEL_DIR", REPO / "models"))


@pytest.fixture(scope="session")
def lightning_path(model_dir: Path) -> Path:
    return require(model_dir / "movenet_single_pose_lightning_ptq.tflite")
