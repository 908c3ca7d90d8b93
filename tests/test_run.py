"""`edge-pose run` end to end: real model, real video, real Mosquitto, real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mqtt_broker import Subscriber, start_run

from edge_pose.pose import KEYPOINT_NAMES

EDGE_POSE = [sys.executable, "-m", "edge_pose.cli"]


def edge_pose(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*EDGE_POSE, *args], capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )


def keypoint_messages(sub: Subscriber) -> list[dict]:
    return [json.loads(p) for t, p, _ in sub.messages if t.endswith("/keypoints")]


def availability(sub: Subscriber) -> list[str]:
    return [p.decode() for t, p, _ in sub.messages if t.endswith("/availability")]


def test_run_publishes_one_message_per_frame(mosquitto, data_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[mqtt]\nkeypoints_max_rate = 0  # every frame\n")
    sub = Subscriber(mosquitto.host, mosquitto.port, "edge-pose/e2e/#")
    result = edge_pose(
        "run",
        "--config",
        str(config),
        "--camera",
        str(data_dir / "tfjs" / "pose_squats.mp4"),
        "--no-realtime",
        "--device-id",
        "e2e",
        "--mqtt-host",
        mosquitto.host,
        "--mqtt-port",
        str(mosquitto.port),
    )
    assert result.returncode == 0, result.stderr
    sub.wait_for(lambda: "offline" in availability(sub), 10)
    messages = keypoint_messages(sub)
    assert [m["frame"] for m in messages] == list(range(65))  # QoS 0 on loopback: none lost
    for m in messages:
        assert m["v"] == 1 and m["device"] == "e2e" and m["person"] is True
        assert (m["width"], m["height"]) == (720, 1280)
        assert [k["name"] for k in m["keypoints"]] == list(KEYPOINT_NAMES)
        assert all(0 <= k["x"] < 720 and 0 <= k["y"] < 1280 for k in m["keypoints"])
        assert 0 < m["latency_ms"] < 5000 and abs(m["ts"] - time.time()) < 120
    assert availability(sub) == ["online", "offline"]
    assert "stopped after 65 frames" in result.stderr
    sub.close()


def test_print_writes_json_lines_without_a_broker(data_dir: Path) -> None:
    result = edge_pose(
        "run",
        "--camera",
        str(data_dir / "mmpose" / "street_walk.mp4"),
        "--no-mqtt",
        "--print",
        "--no-realtime",
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [m["frame"] for m in lines if "keypoints" in m] == [0, 1, 2, 3, 4]
    assert all("type" in m for m in lines if "keypoints" not in m)  # the rest are events
    assert "XNNPACK delegate" not in result.stderr


def test_broker_down_at_start_then_up(mosquitto, data_dir: Path) -> None:
    """The pipeline runs without a broker, connects when one appears, and says `online`."""
    mosquitto.stop()
    proc = start_run(mosquitto, data_dir / "tfjs" / "pose_1.mp4", "late")
    try:
        time.sleep(2)
        assert proc.poll() is None  # still processing frames
        mosquitto.start()
        sub = Subscriber(mosquitto.host, mosquitto.port, "edge-pose/late/#")
        assert sub.wait_for(lambda: "online" in availability(sub) and keypoint_messages(sub), 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr
    sub.close()


def test_broker_restart_mid_run(mosquitto, data_dir: Path) -> None:
    sub = Subscriber(mosquitto.host, mosquitto.port, "edge-pose/restart/#")
    proc = start_run(mosquitto, data_dir / "tfjs" / "pose_1.mp4", "restart")
    try:
        assert sub.wait_for(lambda: len(keypoint_messages(sub)) > 10, 30)
        sub.close()
        mosquitto.stop()
        time.sleep(2)
        assert proc.poll() is None
        mosquitto.start()
        sub = Subscriber(mosquitto.host, mosquitto.port, "edge-pose/restart/#")
        # Keypoints flowing again, and `online` re-published (retained) after the reconnect.
        assert sub.wait_for(lambda: len(keypoint_messages(sub)) > 10, 40)
        assert "online" in availability(sub)
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr
    sub.close()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--camera", "/no/such/video.mp4"], 1, "camera source not found: /no/such/video.mp4"),
        (["--threads", "0"], 78, "model.threads = 0: must be >= 1"),
        (["--camera", "rtsp://cam"], 78, "camera.source"),
        (["--model", "movenet_thunder_int8"], 1, "edge-pose models fetch movenet_thunder_int8"),
        (["--model", "/tmp/none.tflite"], 1, "model file /tmp/none.tflite does not exist"),
        (["--camera", "picamera2"], 1, "apt install python3-picamera2"),
    ],
)
def test_bad_run_input(args: list[str], code: int, message: str, tmp_path: Path) -> None:
    env = {**os.environ, "EDGE_POSE_MODEL_DIR": os.environ.get("EDGE_POSE_MODEL_DIR", "models")}
    result = edge_pose("run", "--no-mqtt", *args, env=env)
    assert result.returncode == code, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_bad_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[camera]\nfps = "fast"\n[mqtt]\nprot = 1883\n')
    result = edge_pose("validate", "--config", str(config))
    assert result.returncode == 78
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert "camera.fps" in result.stderr and "mqtt.prot: unknown key" in result.stderr


def test_library_log_lines_do_not_pile_onto_errors(tmp_path: Path, data_dir: Path) -> None:
    """A corrupt video or image gives our one line, not FFmpeg's and OpenCV's on top."""
    empty, cut = tmp_path / "empty.mp4", tmp_path / "cut.bmp"
    empty.write_bytes(b"")
    cut.write_bytes((data_dir / "coral" / "squat.bmp").read_bytes()[:5000])
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_")}
    run = edge_pose("run", "--no-mqtt", "--camera", str(empty), env=env)
    estimate = edge_pose("estimate", str(cut), env=env)
    assert run.returncode == 1 and estimate.returncode == 1
    assert [line for line in run.stderr.splitlines() if "INFO" not in line] == [
        f"edge-pose: error: cannot open video {empty}: not a format OpenCV/FFmpeg reads, or corrupt"
    ]
    assert estimate.stderr.splitlines() == [
        f"edge-pose: error: cannot decode image {cut}: not an image OpenCV can read, or corrupt"
    ]


def test_validate_checks_the_files_the_service_needs(tmp_path: Path) -> None:
    """What `run` would stop on with exit 78 is caught by `validate` first; a relative
    password_file outside the service is a systemd credential name and is left to the service."""
    config = tmp_path / "config.toml"
    config.write_text(
        '[mqtt]\ntls = true\nca_file = "/no/ca.pem"\nusername = "u"\npassword_file = "/no/pw"\n'
    )
    result = edge_pose("validate", "--config", str(config))
    assert result.returncode == 78
    assert result.stderr.strip().splitlines() == [
        "edge-pose: error: mqtt.ca_file = '/no/ca.pem': no such file (correct the path, or "
        "create the file first)",
        "edge-pose: error: mqtt.password_file = '/no/pw': no such file (correct the path, or "
        "create the file first)",
    ]
    config.write_text('[mqtt]\nusername = "u"\npassword_file = "mqtt-password"\n')
    env = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
    assert edge_pose("validate", "--config", str(config), env=env).returncode == 0
    # Inside the service the credential directory is known, so the name is checked there.
    result = edge_pose("validate", "--config", str(config),
                       env={**env, "CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert result.returncode == 78 and f"nor a credential in {tmp_path}" in result.stderr
    (tmp_path / "mqtt-password").write_text("")
    result = edge_pose("validate", "--config", str(config),
                       env={**env, "CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert result.returncode == 78 and "mqtt-password is empty" in result.stderr
    (tmp_path / "mqtt-password").write_text("secret\n")
    result = edge_pose("validate", "--config", str(config),
                       env={**env, "CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    # MQTT off: its files are not needed.
    config.write_text('[mqtt]\nenabled = false\ntls = true\nca_file = "/no/ca.pem"\n')
    assert edge_pose("validate", "--config", str(config)).returncode == 0
    # A trained classifier: its file, and a TFLite model's labels.
    model = tmp_path / "poses.tflite"
    model.write_bytes(b"not checked here")
    for classifier, message in (
        ('type = "knn"\npath = "/no/poses.knn"', "classifier.path = '/no/poses.knn': no such file"),
        (f'type = "tflite"\npath = "{model}"', f"no labels.txt beside {model}"),
        (f'type = "tflite"\npath = "{model}"\nlabels = "/no/labels.txt"',
         "classifier.labels = '/no/labels.txt': no such file"),
    ):
        config.write_text(f"[mqtt]\nenabled = false\n[classifier]\n{classifier}\n")
        result = edge_pose("validate", "--config", str(config))
        assert result.returncode == 78 and message in result.stderr, result.stderr


def test_outputs_never_overwrite_their_inputs(tmp_path: Path, data_dir: Path) -> None:
    """An annotated copy or a classifier written over the file it is made from is refused
    (exit 2) before any work, and the input is left as it was."""
    image, video, csv = tmp_path / "squat.bmp", tmp_path / "clip.mp4", tmp_path / "poses.csv"
    image.write_bytes((data_dir / "coral" / "squat.bmp").read_bytes())
    video.write_bytes((data_dir / "tfjs" / "pose_1.mp4").read_bytes())
    csv.write_text("name,class\n")
    before = {p: p.read_bytes() for p in (image, video, csv)}
    cases = [
        (["estimate", "--annotate", str(image), str(image)], f"--annotate {image} is the input"),
        (["run", "--no-mqtt", "--camera", str(video), "--annotate", str(video)],
         f"--annotate {video} is the input"),
        (["run", "--no-mqtt", "--camera", f"file:{video}", "--annotate", str(video)],
         f"--annotate {video} is the input"),
        (["classifier", "train", str(csv), "-o", str(csv)], f"--output {csv} is the input"),
    ]
    for args, message in cases:
        result = edge_pose(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "would be overwritten" in result.stderr
        assert "Traceback" not in result.stderr
    assert all(p.read_bytes() == data for p, data in before.items())


def test_annotating_several_images_into_a_file_is_a_usage_error(
    tmp_path: Path, data_dir: Path
) -> None:
    out = tmp_path / "picture.png"
    out.write_bytes(b"keep me")
    images = [str(data_dir / "coral" / "squat.bmp"), str(data_dir / "tfjs" / "pose.jpg")]
    result = edge_pose("estimate", "--annotate", str(out), *images)
    assert result.returncode == 2 and "several images need a folder" in result.stderr
    assert "Traceback" not in result.stderr and out.read_bytes() == b"keep me"


def test_annotated_copies_of_images_with_the_same_name_are_numbered(
    tmp_path: Path, data_dir: Path
) -> None:
    picture = (data_dir / "coral" / "squat.bmp").read_bytes()
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "squat.bmp").write_bytes(picture)
    out = tmp_path / "out"
    result = edge_pose("estimate", "--json", "--annotate", str(out),
                       str(tmp_path / "a" / "squat.bmp"), str(tmp_path / "b" / "squat.bmp"))
    assert result.returncode == 0, result.stderr
    assert [r["annotated"] for r in json.loads(result.stdout)] == [
        str(out / "squat_pose.png"), str(out / "squat_pose_2.png")
    ]
    assert all(Path(r["annotated"]).stat().st_size > 10_000 for r in json.loads(result.stdout))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["estimate", "--annotate", "out.xyz", "IMAGE"],
         "--annotate out.xyz: cannot write that image format (use .png or .jpg)"),
        (["run", "--no-mqtt", "--camera", "IMAGE", "--annotate", "out.xyz"],
         "--annotate out.xyz: the annotated video must end in .mp4 or .avi"),
        (["run", "--no-mqtt", "--camera", "IMAGE", "--annotate", "/no/folder/out.mp4"],
         "the folder /no/folder does not exist"),
        (["run", "--no-mqtt", "--camera", "IMAGE", "--max-frames", "0"],
         "argument --max-frames: must be at least 1, not 0"),
        (["classifier", "eval", "IMAGE", "--seed", "-1"], "argument --seed: must be at least 0"),
        (["doctor", "--timeout", "0"], "argument --timeout: must be from 0.1 to 300 seconds"),
        (["doctor", "--timeout", "nan"], "argument --timeout: must be from 0.1 to 300 seconds"),
        (["status", "--watch", "inf"], "argument --watch: must be from 0.1 to 3600 seconds"),
        (["run", "--threads", "abc"], "argument --threads: invalid int value: 'abc'"),
        (["bogus"], "argument COMMAND: invalid choice: 'bogus'"),
    ],
)
def test_flags_that_cannot_work_are_usage_errors(
    args: list[str], message: str, tmp_path: Path, data_dir: Path
) -> None:
    image = str(data_dir / "coral" / "squat.bmp")
    result = edge_pose(*[image if a == "IMAGE" else a for a in args], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    # One line, like every error; argparse's point at the usage instead of printing it.
    assert len(result.stderr.splitlines()) == 1
    assert "--help)" in result.stderr or not message.startswith("argument")
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_estimate_json_and_annotation(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "annotated"
    images = [data_dir / "coral" / "squat.bmp", data_dir / "tfjs" / "pose.jpg"]
    result = edge_pose("estimate", *map(str, images), "--json", "--annotate", str(out))
    assert result.returncode == 0, result.stderr
    poses = json.loads(result.stdout)
    assert [p["person"] for p in poses] == [True, True]
    assert (out / "squat_pose.png").stat().st_size > 10_000
    assert (out / "pose_pose.png").exists()


def test_estimate_reports_bad_images_and_keeps_going(tmp_path: Path, data_dir: Path) -> None:
    import cv2
    import numpy as np

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really")
    tiny, huge = tmp_path / "tiny.png", tmp_path / "huge.jpg"
    cv2.imwrite(str(tiny), np.zeros((1, 1, 3), np.uint8))
    cv2.imwrite(str(huge), np.full((3000, 4000, 3), 128, np.uint8))
    result = edge_pose(
        "estimate",
        str(broken),
        str(tiny),
        str(huge),
        str(data_dir / "coral" / "squat.bmp"),
        "--json",
    )
    assert result.returncode == 1
    assert result.stderr.count("error") == 1 and "cannot decode image" in result.stderr
    poses = json.loads(result.stdout)
    assert [(p["width"], p["height"], p["person"]) for p in poses] == [
        (1, 1, False),
        (4000, 3000, False),
        (500, 610, True),
    ]


def test_run_writes_an_annotated_video(tmp_path: Path, data_dir: Path) -> None:
    import cv2

    out = tmp_path / "annotated.mp4"
    result = edge_pose("run", "--no-mqtt", "--no-realtime", "--camera",
                       str(data_dir / "mmpose" / "street_walk.mp4"), "--annotate", str(out))
    assert result.returncode == 0, result.stderr
    video = cv2.VideoCapture(str(out))
    assert video.get(cv2.CAP_PROP_FRAME_COUNT) == 5
    ok, frame = video.read()
    assert ok and frame.shape == (540, 960, 3)
    assert "annotated video" in result.stderr


def test_an_annotated_video_draws_the_zones_as_they_are_at_each_frame(
    tmp_path: Path, data_dir: Path
) -> None:
    """The fall scene (test_web_zones.py) with its two zones: the hall is outlined as empty
    until the man has stood in it for events.zone_dwell_s, then highlighted; the bed, where
    nobody goes, stays outlined as empty."""
    import cv2
    import numpy as np
    from test_web_zones import ZONES, fall_scene, horizontal_edge, share_near, vertical_edge

    from edge_pose.annotate import ZONE, ZONE_OCCUPIED

    scene = fall_scene(tmp_path / "scene", data_dir, down=10)
    config = tmp_path / "config.toml"
    config.write_text(f'[status]\ndir = "{tmp_path / "status"}"\n' + ZONES)
    out = tmp_path / "zones.avi"
    result = edge_pose("run", "--no-mqtt", "--no-realtime", "--config", str(config),
                       "--camera", str(scene), "--annotate", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    video = cv2.VideoCapture(str(out))
    frames = []
    while (read := video.read())[0]:
        frames.append(cv2.cvtColor(read[1], cv2.COLOR_BGR2RGB).astype(int))
    assert len(frames) == 30
    first, standing = frames[0], frames[15]  # 1.5 s in: in the hall for more than 0.5 s
    left = (0.15, 0.6)  # the hall's top edge, left of him
    assert share_near(horizontal_edge(first, 0.6, *left), ZONE) > 0.8
    assert share_near(horizontal_edge(standing, 0.6, *left), ZONE_OCCUPIED) > 0.8
    for frame in (first, standing):
        assert share_near(vertical_edge(frame, 0.3, 0.2, 0.45), ZONE) > 0.8
    assert np.mean(np.abs(first[400:470, 20:300] - standing[400:470, 20:300])[..., 1]) > 5


def test_print_shows_events_and_a_loop_counts_no_rep_at_its_seam(
    data_dir: Path, tmp_path: Path
) -> None:
    """`--print` writes the events (reps, pose changes) among the keypoints lines, each valid
    against the event schema; looping the squat video four times counts the same reps in every
    pass: the jump from its last frame back to its first is no squat."""
    from jsonschema import Draft202012Validator

    from edge_pose.schemas import load_schema

    frames_per_pass = 65  # pose_squats.mp4
    (tmp_path / "none.toml").write_text(f'[status]\ndir = "{tmp_path}"\n')
    result = edge_pose(
        "run", "--camera", str(data_dir / "tfjs" / "pose_squats.mp4"), "--loop", "--no-realtime",
        "--no-mqtt", "--print", "--max-frames", str(4 * frames_per_pass),
        "--config", str(tmp_path / "none.toml"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    validator = Draft202012Validator(load_schema("event"))
    frame, reps = 0, []
    for line in result.stdout.splitlines():
        message = json.loads(line)
        if "keypoints" in message:
            frame = message["frame"]
            continue
        assert list(validator.iter_errors(message)) == [], message
        if message["type"] == "rep":
            reps.append(divmod(frame + 1, frames_per_pass))
    passes = [[offset for n, offset in reps if n == p] for p in range(4)]
    assert len(passes[0]) >= 2, reps  # the video has squats
    assert all(len(p) == len(passes[0]) for p in passes), passes
    assert all(offset > 2 for p in passes[1:] for offset in p), passes  # none at the seam
