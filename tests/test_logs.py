"""Logging under journald: one line per record with a <N> priority prefix, no per-frame lines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_with_journal_stream(args: list[str], tmp_path: Path) -> list[str]:
    """Run edge-pose with stderr on a file and JOURNAL_STREAM naming that file, as systemd
    does when stderr is connected to the journal."""
    log = tmp_path / "stderr.log"
    code = (
        "import os, sys\n"
        "st = os.fstat(2)\n"
        "os.environ['JOURNAL_STREAM'] = f'{st.st_dev}:{st.st_ino}'\n"
        "from edge_pose.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    with log.open("w") as stderr:
        subprocess.run([sys.executable, "-c", code, *args], stderr=stderr, check=False,
                       stdout=subprocess.DEVNULL, timeout=120,
                       env={**os.environ, "RUNTIME_DIRECTORY": str(tmp_path)})
    return log.read_text().splitlines()


def test_journal_lines_carry_syslog_priorities(tmp_path: Path, data_dir: Path) -> None:
    lines = run_with_journal_stream(
        ["run", "--no-mqtt", "--no-realtime", "--camera", str(data_dir / "tfjs" / "pose_1.mp4")],
        tmp_path,
    )
    assert lines and all(line[:3] in ("<6>", "<4>", "<3>", "<7>") for line in lines), lines
    assert any(line.startswith("<6>") and "stopped after 120 frames" in line for line in lines)
    # 120 frames, a handful of lines: nothing is logged per frame at INFO.
    assert len(lines) < 15


def test_errors_are_priority_3_without_the_journal_they_are_plain(tmp_path: Path) -> None:
    lines = run_with_journal_stream(["run", "--no-mqtt", "--camera", "/no/such.mp4"], tmp_path)
    assert any(line.startswith("<3>edge-pose: error: camera source not found: /no/such.mp4")
               for line in lines)
    plain = subprocess.run([sys.executable, "-m", "edge_pose.cli", "run", "--no-mqtt",
                            "--camera", "/no/such.mp4"], capture_output=True, text=True,
                           timeout=120, check=False,
                           env={**os.environ, "RUNTIME_DIRECTORY": str(tmp_path)})
    assert plain.returncode == 1
    assert not any(line.startswith("<") for line in plain.stderr.splitlines())
    assert "edge-pose: error: camera source not found: /no/such.mp4" in plain.stderr
