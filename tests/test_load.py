"""The fleet load and fault run (benchmarks/mqtt_load.py) in its short form: real devices, a real
broker stopped and restarted mid-run; assertions on delivery, not on timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_fleet_survives_a_broker_restart(data_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "mqtt_load.py"), "--devices", "4",
         "--seconds", "14", "--outage", "5", "--json",
         "--video", str(data_dir / "tfjs" / "pose_squats.mp4")],
        capture_output=True, text=True, timeout=240, check=False,
    )
    report = json.loads(result.stdout)
    assert report["exit_codes_ok"] == 4
    assert report["events_generated"] > 0
    assert report["events_received"] == report["events_generated"]  # QoS 1: none lost
    assert report["back_online"] == 4
    # QoS 0 keypoints are dropped while the broker is away, delivered otherwise.
    assert 0.3 < report["keypoints_delivered"] <= 1.0
    assert result.returncode == 0
