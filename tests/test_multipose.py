"""MoveNet MultiPose (model kind ``movenet_multi``) on the real model: both people of
two_people.bmp, nobody in an empty scene, the kinds told apart in one line, and a catalog
entry that is CPU only and installed from the mirror (it has no public download)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_pose.camera.file import load_image
from edge_pose.errors import ModelError
from edge_pose.inference import models
from edge_pose.inference.movenet import MoveNet
from edge_pose.inference.multipose import PEOPLE, MoveNetMulti
from edge_pose.pose import KEYPOINT_THRESHOLD, pose_score

MIN_POSE_SCORE = 0.25  # model.min_pose_score's default: who counts as a person


@pytest.fixture(scope="module")
def multi(multipose_path: Path) -> MoveNetMulti:
    return MoveNetMulti(multipose_path, threads=2)


def test_both_people_of_two_people_are_found_apart(multi: MoveNetMulti, data_dir: Path) -> None:
    image = load_image(data_dir / "coral" / "two_people.bmp")
    found = multi.estimate(image)
    assert len(found) == PEOPLE
    scores = [d.score for d in found]
    assert scores == sorted(scores, reverse=True)  # best first
    people = [d for d in found if d.score >= MIN_POSE_SCORE]
    assert len(people) == 2, scores
    boxes = sorted((d.box for d in people), key=lambda box: box.x0)  # type: ignore[union-attr]
    left, right = boxes
    assert left.x1 < right.x0  # side by side, not overlapping
    height, width = image.shape[:2]
    for person in people:
        assert person.keypoints.shape == (17, 3)
        seen = person.keypoints[person.keypoints[:, 2] > KEYPOINT_THRESHOLD]
        assert len(seen) >= 12  # both stand in full view
        assert (seen[:, 0] >= 0).all() and (seen[:, 0] < width).all()
        assert (seen[:, 1] >= 0).all() and (seen[:, 1] < height).all()
    assert 0.55 < people[0].score < 0.7 and 0.55 < people[1].score < 0.7


def test_a_scene_without_people_gives_no_one_above_the_threshold(
    multi: MoveNetMulti, data_dir: Path
) -> None:
    found = multi.estimate(load_image(data_dir / "coral" / "cat_720p.jpg"))
    assert max(d.score for d in found) < MIN_POSE_SCORE


def test_one_person_is_one_person(multi: MoveNetMulti, data_dir: Path) -> None:
    found = multi.estimate(load_image(data_dir / "coral" / "squat.bmp"))
    assert [d.score >= MIN_POSE_SCORE for d in found].count(True) == 1
    assert multi.stage_ns[1] > 0  # invoke timed for the pipeline's stages


def test_a_region_does_not_hide_the_others(multi: MoveNetMulti, data_dir: Path) -> None:
    """The single-person crop the pipeline passes is not used: the whole frame is looked at."""
    from edge_pose.pose import Region

    image = load_image(data_dir / "coral" / "two_people.bmp")
    cropped = multi.estimate(image, Region(0, 0, 200, 200))
    assert [d.score >= MIN_POSE_SCORE for d in cropped].count(True) == 2


def test_the_kinds_are_told_apart_in_one_line(
    multipose_path: Path, lightning_path: Path
) -> None:
    with pytest.raises(ModelError, match=r"is not a MoveNet MultiPose \(kind movenet_multi\)"):
        MoveNetMulti(lightning_path)
    with pytest.raises(
        ModelError, match=r"is not a single-pose MoveNet .*a MultiPose file is kind movenet_multi"
    ):
        MoveNet(multipose_path)


def test_the_catalog_entry_is_cpu_only_and_fetched_from_the_mirror(tmp_path: Path) -> None:
    info = models.catalog()["movenet_multipose_lightning"]
    assert info.kind == "movenet_multi" and info.backend == "cpu" and not info.twin
    assert info.pinned and info.input_size == 256
    # Without a mirror it cannot be had, and the error says why and what to do.
    done = subprocess.run(
        [sys.executable, "-m", "edge_pose.cli", "models", "fetch", "movenet_multipose_lightning"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "EDGE_POSE_MODEL_MIRROR": "", "EDGE_POSE_MODEL_DIR": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 1
    assert "has no public download (models/README.md: how it is built)" in done.stderr
    assert "EDGE_POSE_MODEL_MIRROR" in done.stderr


def test_the_edge_tpu_is_refused_by_name(multipose_path: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[model]\nname = "movenet_multipose_lightning"\nbackend = "edgetpu"\n')
    done = subprocess.run(
        [sys.executable, "-m", "edge_pose.cli", "run", "--config", str(config), "--no-mqtt",
         "--no-http", "--camera", str(multipose_path.parent)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "model 'movenet_multipose_lightning' has no edgetpu build in the catalog" in done.stderr
    assert "Traceback" not in done.stderr


def test_estimate_lists_and_draws_both_people(
    multipose_path: Path, data_dir: Path, tmp_path: Path
) -> None:
    """`edge-pose estimate` with the MultiPose model: the top-level fields are the best person
    as before, ``people`` lists both apart, and the annotated image shows both skeletons."""
    import json

    import cv2
    import numpy as np

    out = tmp_path / "two.png"
    done = subprocess.run(
        [sys.executable, "-m", "edge_pose.cli", "estimate", str(data_dir / "coral" /
         "two_people.bmp"), "--model", "movenet_multipose_lightning", "--json", "--annotate",
         str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    people = result["people"]
    assert [p["id"] for p in people] == [1, 2]
    assert result["score"] == people[0]["score"] and result["person"] is True
    (_, _, lx1, _), (rx0, _, _, _) = sorted(p["box"] for p in people)
    assert lx1 < rx0
    for person in people:
        x0, y0, x1, y1 = person["box"]
        assert len(person["keypoints"]) == 17
        seen = [k for k in person["keypoints"] if k["score"] > KEYPOINT_THRESHOLD]
        # Inside its box (the JSON rounds boxes to 0.1 px, keypoints to 0.01 px).
        assert all(x0 - 0.1 <= k["x"] <= x1 + 0.1 and y0 - 0.1 <= k["y"] <= y1 + 0.1 for k in seen)
    picture = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB).astype(int)
    red = (picture[..., 0] > 200) & (picture[..., 1] < 90) & (picture[..., 2] < 90)
    middle = round((lx1 + rx0) / 2)
    assert np.count_nonzero(red[:, :middle]) > 50 and np.count_nonzero(red[:, middle:]) > 50


def test_auto_with_a_coral_plugged_in_runs_it_on_the_cpu_and_says_why(
    multipose_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A Coral is there (simulated at the sysfs/device-node boundary) but this model has no Edge
    TPU build: the CPU is a choice, said in an info line, not the warning of a broken Coral."""
    import shutil

    from test_coral import READY, Tree

    from edge_pose.config import ModelConfig
    from edge_pose.inference.backend import load_estimator

    tree = Tree(tmp_path / "root")
    tree.usb("2-1", READY, bus=2, num=4)
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copyfile(multipose_path, folder / multipose_path.name)
    cfg = ModelConfig(name="movenet_multipose_lightning", dir=str(folder), threads=2,
                      sysfs_root=str(tree.sys))  # fmt: skip
    with caplog.at_level("INFO", logger="edge_pose.inference.backend"):
        model, backend, name = load_estimator(cfg)
    assert isinstance(model, MoveNetMulti) and name == "movenet_multipose_lightning"
    assert (backend.kind, backend.reason) == (
        "cpu", "auto: movenet_multipose_lightning has no Edge TPU build"
    )  # fmt: skip
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    lines = [r.getMessage() for r in caplog.records]
    assert "auto: movenet_multipose_lightning has no Edge TPU build: running on the CPU" in lines


def test_a_non_square_build_runs_without_black_bars(tmp_path: Path) -> None:
    """A W x H build (models/convert_multipose.py --height 192) is accepted and fed a frame of
    its own aspect without black bars. The stand-in model outputs the mean of its input
    everywhere, so a white 4:3 frame reads 255 only if no bar was added (a square input would
    read 255 * 192 / 256); a single-pose kind stays square only."""
    from tflite_builder import write_shape_model

    from edge_pose.inference.crop import full_frame

    region = full_frame(640, 480, 256 / 192)
    assert (region.x0, region.y0, region.x1, region.y1) == (0.0, 0.0, 640.0, 480.0)
    wide = full_frame(960, 540, 256 / 192)  # 16:9 into 4:3: bars above and below
    assert wide.x0 == 0.0 and wide.width == 960.0 and wide.height == 720.0
    assert full_frame(640, 480) == full_frame(640, 480, 1.0)
    white = np.full((480, 640, 3), 255, np.uint8)
    for (height, width), expected in (((192, 256), 255.0), ((256, 256), 255.0 * 192 / 256)):
        path = write_shape_model(tmp_path / f"multi_{width}x{height}.tflite",
                                 (1, height, width, 3), (1, 6, 56))  # fmt: skip
        model = MoveNetMulti(path, threads=1)
        assert (model.input_width, model.input_height) == (width, height)
        assert model.estimate(white)[0].score == pytest.approx(expected, abs=0.5)
    single = write_shape_model(tmp_path / "single.tflite", (1, 192, 256, 3), (1, 1, 17, 3))
    with pytest.raises(ModelError, match="is not a single-pose MoveNet"):
        MoveNet(single, threads=1)


def test_a_file_outside_the_catalog_runs_as_the_kind_its_tensors_say(tmp_path: Path) -> None:
    """A model built by the user (a non-square MultiPose, say) given by path: the kind whose
    tensors it has runs it; a file of no kind gets single-pose's error, which names the other."""
    from tflite_builder import write_shape_model

    from edge_pose.inference.backend import estimator_class

    multi = write_shape_model(tmp_path / "mine.tflite", (1, 160, 256, 3), (1, 6, 56))
    model = estimator_class(None)(multi, threads=1, delegates=None, cpu_twin=None, runtime="auto")
    assert isinstance(model, MoveNetMulti) and model.max_people == PEOPLE
    odd = write_shape_model(tmp_path / "odd.tflite", (1, 192, 192, 3), (1, 10))
    with pytest.raises(ModelError, match=r"not a single-pose MoveNet.*kind movenet_multi"):
        estimator_class(None)(odd, threads=1, delegates=None, cpu_twin=None, runtime="auto")


def test_refine_looks_again_at_each_person_with_single_pose(
    multipose_path: Path, lightning_path: Path, data_dir: Path, tmp_path: Path
) -> None:
    """tracking.refine: both people of a wide two-person frame (made from the shared clips)
    are still found, each now with single-pose's keypoints on their crop (higher scores, still
    on their own side), and the stage times count both models; a single-pose model is never
    wrapped; a refine_model that finds several people is refused by name."""
    from scenes import load_clips, side_by_side

    from edge_pose.config import load_config
    from edge_pose.inference.refine import Refined, refined

    image = side_by_side(load_clips(data_dir))(0)[0]
    multi = MoveNetMulti(multipose_path, threads=2)
    first = [d for d in multi.estimate(image) if d.score >= 0.25]
    model = Refined(multi, MoveNet(lightning_path, threads=2), 0.25)
    again = [d for d in model.estimate(image) if d.score >= 0.25]
    assert len(first) == len(again) == 2 and model.max_people == PEOPLE
    assert again[0].score >= again[1].score  # best first, on one measure
    for before in first:
        box = before.box
        assert box is not None
        (after,) = [d for d in again if box.x0 - 20 <= d.keypoints[:, 0].mean() <= box.x1 + 20]
        assert after.score > pose_score(before.keypoints[:, 2]) + 0.05  # the same measure
        assert after.region != before.region  # a crop, not the whole frame
    assert model.stage_ns[1] > multi.stage_ns[1]  # two single-pose invokes on top
    cfg = load_config(None, {"tracking.refine": True, "model.dir": str(lightning_path.parent)})
    single = MoveNet(lightning_path, threads=1)
    assert refined(single, cfg) is single
    assert isinstance(refined(multi, cfg), Refined)
    assert refined(multi, load_config(None, {})) is multi  # off by default
    wrong = load_config(
        None, {"tracking.refine": True, "tracking.refine_model": str(multipose_path)}
    )
    with pytest.raises(ModelError, match=r"tracking\.refine_model = .* finds several people"):
        refined(multi, wrong)


def test_estimate_looks_once_with_a_multi_person_model(multi: MoveNetMulti, data_dir: Path) -> None:
    """A still through MultiPose is one look: the crop re-look is single-pose's way, and
    MultiPose would only repeat its whole-frame look."""
    from edge_pose.estimate import estimate_people
    from edge_pose.inference.estimator import Wrapped

    class Counting(Wrapped):
        calls = 0

        def estimate(self, image, region=None):  # type: ignore[no-untyped-def]
            Counting.calls += 1
            return self.inner.estimate(image, region)

    people = estimate_people(Counting(multi), load_image(data_dir / "coral" / "two_people.bmp"))
    assert Counting.calls == 1 and sum(p.person for p in people) == 2
