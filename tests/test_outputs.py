"""Outputs that would destroy or pollute inputs are usage errors (exit 2) before any work:
`classifier train -o` inside its SOURCE folder, `estimate --annotate x.png` for several images.
The real CLI on real files; what is on disk afterwards is checked, not only the exit code."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

EDGE_POSE = [sys.executable, "-m", "edge_pose.cli"]


def cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EDGE_POSE, *map(str, args)], capture_output=True, text=True, timeout=180, cwd=cwd
    )


def digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and its content hash (what must not change)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def training(tmp_path: Path, data_dir: Path) -> Path:
    """A training folder: two classes of one image each."""
    source = tmp_path / "poses"
    for label, image in [("squat", "coral/squat.bmp"), ("warrior", "tfjs/pose.jpg")]:
        (source / label).mkdir(parents=True)
        (source / label / Path(image).name).write_bytes((data_dir / image).read_bytes())
    return source


@pytest.mark.parametrize(
    "output",
    [
        "poses/squat/squat.bmp",  # over a training image (what the review saw overwritten)
        "poses/squat/new.json",  # a new file in a class folder
        "poses/classifier.json",  # beside the class folders
        "poses/../poses/warrior/pose.jpg",  # the same, spelled another way
        "link/squat/squat.bmp",  # through a symbolic link to the folder
    ],
)
def test_train_output_inside_the_source_folder_is_refused(
    training: Path, output: str
) -> None:
    (training.parent / "link").symlink_to(training)
    before = digest(training)
    proc = cli("classifier", "train", "poses", "-o", output, cwd=training.parent)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "inside the input folder" in lines[0] and output in lines[0]
    assert digest(training) == before


def test_train_output_outside_the_source_folder_is_written(training: Path) -> None:
    output = training.parent / "classifier.json"
    proc = cli("classifier", "train", training, "-o", output, "--json")
    assert proc.returncode == 0, proc.stderr
    assert output.is_file() and '"squat"' in output.read_text()


@pytest.mark.parametrize("name", ["x.png", "x.JPG", "out/x.webp", "x.tiff"])
def test_several_images_annotated_into_an_image_name_is_a_usage_error(
    tmp_path: Path, data_dir: Path, name: str
) -> None:
    images = [data_dir / "coral" / "squat.bmp", data_dir / "tfjs" / "pose.jpg"]
    (tmp_path / "out").mkdir()
    proc = cli("estimate", *images, "--annotate", name, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "2 images need a folder" in lines[0]
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("name", ["annotated", "annotated.d"])
def test_several_images_annotated_into_a_folder_name_make_the_folder(
    tmp_path: Path, data_dir: Path, name: str
) -> None:
    images = [data_dir / "coral" / "squat.bmp", data_dir / "tfjs" / "pose.jpg"]
    proc = cli("estimate", *images, "--annotate", name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(tmp_path / name)) == ["pose_pose.png", "squat_pose.png"]
