"""Keypoint smoothing and the crop low-pass: filter properties, measured effect on real video."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import require

from edge_pose.config import SmoothingConfig
from edge_pose.inference.movenet import MoveNet
from edge_pose.pose import Region
from edge_pose.smoothing import KeypointSmoother, RegionFilter
from edge_pose.smoothing_bench import cost_us, jitter, lag, measure

W, H = 640, 480
FRAME_NS = 33_333_333  # 30 fps
# MoveNet's video-pipeline parameters (tfjs-models pose-detection, KEYPOINT_FILTER_CONFIG).
MOVENET = {
    "min_cutoff": 2.5,
    "beta": 300.0,
    "derivative_cutoff": 2.5,
    "threshold_cutoff": 0.5,
    "threshold_beta": 5.0,
}
# The proposed defaults (docs/smoothing.md): MoveNet's, with beta 30 instead of 300.
TUNED = {**MOVENET, "beta": 30.0}


def pose(x: float = 320.0, y: float = 240.0, score: float = 0.8) -> np.ndarray:
    """17 keypoints spread around (x, y), scores varied so untouched scores can be checked."""
    kp = np.empty((17, 3), np.float32)
    kp[:, 0] = x + np.arange(17) * 3.0
    kp[:, 1] = y - np.arange(17) * 2.0
    kp[:, 2] = score - np.arange(17) * 0.01
    return kp


def feed(smoother: KeypointSmoother, frames: list[np.ndarray], step_ns: int = FRAME_NS):
    """Apply the smoother to copies of ``frames`` at regular timestamps; return the outputs."""
    return [smoother.apply(f.copy(), (i + 1) * step_ns, W, H) for i, f in enumerate(frames)]


class ScalarOneEuro:
    """A one-coordinate reference written from MoveNet's description, for comparison."""

    def __init__(self, min_cutoff, beta, derivative_cutoff, threshold_cutoff, threshold_beta):
        self.p = (min_cutoff, beta, derivative_cutoff, threshold_cutoff, threshold_beta)
        self.last_t = None
        self.raw = self.value = self.speed = 0.0

    def __call__(self, v: float, t: float) -> float:
        mc, beta, dc, tc, tb = self.p
        if self.last_t is None:
            self.last_t, self.raw, self.value, self.speed = t, v, v, 0.0
            return v
        if t <= self.last_t:
            return v
        rate = 1.0 / (t - self.last_t)
        self.last_t = t

        def a(cutoff: float) -> float:
            return 1.0 / (1.0 + rate / (2 * math.pi * cutoff))

        self.speed += a(dc) * ((v - self.raw) * rate - self.speed)
        self.raw = v
        cutoff = mc + beta * abs(self.speed)
        threshold = tc + tb * abs(self.speed)
        self.value += a(cutoff) * threshold * math.asinh((v - self.value) / threshold)
        return self.value


def test_matches_scalar_reference_with_jumps_and_irregular_timestamps() -> None:
    rng = np.random.default_rng(0)
    smoother = KeypointSmoother(**MOVENET)
    refs = [[ScalarOneEuro(**MOVENET) for _ in range(2)] for _ in range(17)]
    t_ns = 0
    for i in range(200):
        kp = pose(300 + 80 * math.sin(i / 9), 200 + 40 * math.cos(i / 5))
        kp[:, :2] += rng.normal(0, 3, (17, 2))
        if i % 40 == 39:
            kp[:, :2] = rng.uniform(0, 480, (17, 2))  # a wild jump: the limiter at work
        t_ns += int(rng.uniform(15e6, 60e6)) if i % 23 else -1_000_000
        expected = [
            (refs[k][0](float(kp[k, 0]) / W, t_ns / 1e9) * W,
             refs[k][1](float(kp[k, 1]) / H, t_ns / 1e9) * H)
            for k in range(17)
        ]  # fmt: skip
        out = smoother.apply(kp, t_ns, W, H)
        np.testing.assert_allclose(out[:, :2], expected, atol=1e-3)


def test_apply_works_in_place_and_leaves_scores_alone() -> None:
    smoother = KeypointSmoother()
    first, second = pose(), pose(350, 260)
    scores = second[:, 2].copy()
    smoother.apply(first, FRAME_NS, W, H)
    out = smoother.apply(second, 2 * FRAME_NS, W, H)
    assert out is second
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[:, 2], scores)
    assert not np.allclose(out[:, 0], pose(350, 260)[:, 0])  # x, y were filtered


def test_constant_input_gives_constant_output() -> None:
    smoother = KeypointSmoother(**MOVENET)
    frames = [pose()] * 50
    for out in feed(smoother, frames):
        np.testing.assert_array_equal(out, pose())


def test_step_input_converges_without_overshoot() -> None:
    smoother = KeypointSmoother(**MOVENET)
    frames = [pose(300, 200)] * 5 + [pose(360, 230)] * 60
    outs = feed(smoother, frames)
    xs = np.array([o[0, 0] for o in outs[5:]])
    assert 300 < xs[0] < 360  # the first frame after the step is on its way, not there
    assert np.all(np.diff(xs) >= 0) and np.all(xs <= 360 + 1e-3)  # monotone, no overshoot
    np.testing.assert_allclose(outs[-1][:, :2], pose(360, 230)[:, :2], atol=0.05)
    settle = int(np.argmax(np.abs(xs - 360) < 0.5))
    assert settle <= 15, f"took {settle} frames to settle within 0.5 px"


def ramp_lag_px(speed_px_per_frame: float, beta: float) -> float:
    """How far the output trails a steady ramp once the filter has settled (pixels)."""
    smoother = KeypointSmoother(**{**MOVENET, "beta": beta})
    frames = [pose(100 + i * speed_px_per_frame) for i in range(60)]
    out = feed(smoother, frames)[-1]
    return float(frames[-1][0, 0] - out[0, 0])


def test_higher_speed_less_lag_beta_at_work() -> None:
    # Lag in time = distance behind / speed. With beta > 0 the cutoff rises with speed.
    slow = ramp_lag_px(0.5, 300.0) / 0.5
    fast = ramp_lag_px(8.0, 300.0) / 8.0
    assert 0 < fast < slow * 0.5, (slow, fast)
    # Without beta it is a fixed low-pass: the lag in time does not depend on speed.
    assert ramp_lag_px(8.0, 0.0) / 8.0 == pytest.approx(ramp_lag_px(0.5, 0.0) / 0.5, rel=0.02)
    assert fast < ramp_lag_px(8.0, 0.0) / 8.0


@pytest.mark.parametrize("back_ns", [0, -5_000_000])
def test_timestamp_equal_or_in_the_past_passes_through(back_ns: int) -> None:
    reference, smoother = KeypointSmoother(), KeypointSmoother()
    frames = [pose(300 + 10 * i) for i in range(5)]
    feed(reference, frames)
    feed(smoother, frames)
    stray = pose(500, 400)
    out = smoother.apply(stray.copy(), 5 * FRAME_NS + back_ns, W, H)
    np.testing.assert_array_equal(out, stray)  # unchanged
    # ...and the stray frame left no trace: the next frame comes out as if it never happened.
    nxt = pose(360)
    np.testing.assert_array_equal(
        smoother.apply(nxt.copy(), 6 * FRAME_NS, W, H),
        reference.apply(nxt.copy(), 6 * FRAME_NS, W, H),
    )


def test_driven_by_time_not_frame_count() -> None:
    # The same step, one frame later: after 100 ms the output has moved further than after 10 ms.
    def after(dt_ns: int) -> float:
        smoother = KeypointSmoother(**MOVENET)
        smoother.apply(pose(300), 1_000_000_000, W, H)
        return float(smoother.apply(pose(320), 1_000_000_000 + dt_ns, W, H)[0, 0])

    assert after(10_000_000) < after(33_333_333) < after(100_000_000) < 320


def test_coordinates_are_normalized_to_the_frame() -> None:
    # The same motion relative to the frame gives the same relative output at any resolution.
    rng = np.random.default_rng(1)
    base = [pose(300 + 30 * math.sin(i / 4)) + rng.normal(0, 2, (17, 3)).astype(np.float32)
            for i in range(30)]  # fmt: skip
    small, large = KeypointSmoother(), KeypointSmoother()
    for i, kp in enumerate(base):
        a = small.apply(kp.copy(), (i + 1) * FRAME_NS, W, H)
        big = kp.copy()
        big[:, :2] *= 2
        b = large.apply(big, (i + 1) * FRAME_NS, 2 * W, 2 * H)
        np.testing.assert_allclose(b[:, :2], 2 * a[:, :2], rtol=1e-5)


def test_jump_limiter_compresses_large_jumps_only() -> None:
    def first_step(jump_px: float, **params: float | None) -> float:
        smoother = KeypointSmoother(**{**MOVENET, **params})
        feed(smoother, [pose(100)] * 10)
        return float(smoother.apply(pose(100 + jump_px), 11 * FRAME_NS, W, H)[0, 0] - 100)

    plain = {"threshold_cutoff": None}
    # A fixed threshold of 0.1 frame widths: small changes pass as in the plain One Euro filter,
    # a jump across most of the frame is held back (threshold * asinh(change / threshold)).
    tight = {"threshold_cutoff": 0.1, "threshold_beta": 0.0}
    assert first_step(5, **tight) == pytest.approx(first_step(5, **plain), rel=5e-3)
    assert first_step(500, **tight) < 0.5 * first_step(500, **plain)
    # With MoveNet's values (0.5 + 5 x speed) a jump from rest raises the speed estimate and so
    # its own threshold: the limiter barely acts on it (docs/smoothing.md).
    assert first_step(500) == pytest.approx(first_step(500, **plain), rel=0.01)


def test_reset_on_person_lost_first_value_passes_through() -> None:
    smoother = KeypointSmoother()
    feed(smoother, [pose(100 + 5 * i) for i in range(10)])
    assert smoother.active
    smoother.reset()
    assert not smoother.active
    back = pose(500, 300)
    out = smoother.apply(back.copy(), 20 * FRAME_NS, W, H)
    np.testing.assert_array_equal(out, back)
    # From here on it filters again, starting from the new position (no memory of the old one).
    out = smoother.apply(pose(510, 300), 21 * FRAME_NS, W, H)
    assert 500 < out[0, 0] < 510


def test_from_config_and_disabled() -> None:
    cfg = SmoothingConfig(min_cutoff=1.0, beta=30.0, derivative_cutoff=2.0, threshold_beta=4.0)
    smoother = KeypointSmoother.from_config(cfg)
    assert (smoother.min_cutoff, smoother.beta, smoother.derivative_cutoff) == (1.0, 30.0, 2.0)
    assert (smoother.threshold_cutoff, smoother.threshold_beta) == (0.5, 4.0)
    off = KeypointSmoother.from_config(SmoothingConfig(enabled=False))
    frames = [pose(100 + 20 * i) for i in range(5)]
    for frame, out in zip(frames, feed(off, frames), strict=True):
        np.testing.assert_array_equal(out, frame)
    region_off = RegionFilter.from_config(SmoothingConfig(enabled=False))
    region_off.apply(Region(0, 0, 100, 100))
    assert region_off.apply(Region(50, 50, 150, 150)) == Region(50, 50, 150, 150)


def test_region_low_pass() -> None:
    rf = RegionFilter.from_config(SmoothingConfig())  # alpha 0.9: weight of the new region
    first = Region(100, 50, 300, 250)
    assert rf.apply(first) == first  # passes through
    out = rf.apply(Region(200, 150, 400, 350))
    assert out.x0 == pytest.approx(190) and out.y0 == pytest.approx(140)
    assert out.x1 == pytest.approx(390) and out.y1 == pytest.approx(340)
    assert out.width == pytest.approx(out.height)  # squares stay square
    target = Region(0, 0, 640, 640)
    for _ in range(10):
        out = rf.apply(target)
    assert out.x0 == pytest.approx(0, abs=1e-6) and out.x1 == pytest.approx(640, abs=1e-6)
    rf.reset()
    assert rf.apply(first) == first
    with pytest.raises(ValueError):
        RegionFilter(0.0)


def test_jitter_and_lag_metrics_on_a_known_filter() -> None:
    # An exponential low-pass with weight 0.5 on a slow sine trails it by (1 - a) / a = 1 frame.
    t = np.arange(200)
    raw = np.stack([80 * np.sin(t / 8 + p) for p in range(17)], 1)[:, :, None].repeat(2, 2)
    raw = raw + np.random.default_rng(2).normal(0, 2, raw.shape)
    smooth = raw.copy()
    for i in range(1, len(t)):
        smooth[i] = smooth[i - 1] + 0.5 * (raw[i] - smooth[i - 1])
    valid = np.ones((200, 17), bool)
    assert lag(raw, raw, valid) == pytest.approx(0.0, abs=0.01)
    assert lag(raw, smooth, valid) == pytest.approx(1.0, abs=0.1)
    assert lag(smooth, raw, valid) == pytest.approx(-1.0, abs=0.1)
    j_raw, n = jitter(raw, valid)
    assert n == 198 * 17
    assert jitter(smooth, valid)[0] < 0.5 * j_raw
    valid[:, 3] = False  # low-score keypoints are left out
    assert jitter(raw, valid)[1] == 198 * 16


def test_cost_is_small() -> None:
    # Not a benchmark (docs/smoothing.md has the numbers); a guard against a slow rewrite.
    cost = cost_us(calls=2000)
    assert cost["keypoints"] < 500 and cost["region"] < 100


# --- measured on real video with the real model ---


@pytest.fixture(scope="module")
def model(lightning_path: Path) -> MoveNet:
    return MoveNet(lightning_path, threads=2)


@pytest.fixture(scope="module")
def videos(data_dir: Path) -> dict[str, Path]:
    return {name: require(data_dir / "tfjs" / name) for name in ("pose_1.mp4", "pose_squats.mp4")}


def run(model: MoveNet, video: Path, params: dict) -> dict:
    return measure(model, video, lambda: KeypointSmoother(**params))


def test_proposed_defaults_reach_target_at_30fps(model: MoveNet, videos: dict) -> None:
    """Issue 3's target (jitter -40 %, lag <= 1 frame at 30 fps) with beta 30 on pose_1.mp4."""
    r = run(model, videos["pose_1.mp4"], TUNED)
    assert r["fps"] == pytest.approx(30)
    assert r["person_frames"] == r["frames"] == 120
    assert r["jitter_reduction"] >= 0.40, r  # measured 0.60
    assert 0 <= r["lag_frames"] <= 1.0, r  # measured 0.25
    assert r["meets_target"]


def test_movenet_defaults_fall_short_of_jitter_target_at_30fps(
    model: MoveNet, videos: dict
) -> None:
    """MoveNet's own parameters (beta 300) smooth too little here: about -29 % at 0.05 frames.

    Recorded on purpose (docs/smoothing.md explains why); if this starts to fail, re-measure
    and update the docs rather than widening the bounds.
    """
    r = run(model, videos["pose_1.mp4"], MOVENET)
    assert 0.20 <= r["jitter_reduction"] < 0.40, r  # measured 0.287
    assert 0 <= r["lag_frames"] <= 0.5, r  # measured 0.05
    assert not r["meets_target"]


@pytest.mark.parametrize(("params", "low", "high"), [(MOVENET, 0.02, 0.15), (TUNED, 0.08, 0.30)])
def test_5fps_video_little_lag_and_little_reduction(
    model: MoveNet, videos: dict, params: dict, low: float, high: float
) -> None:
    """At 5 fps the second differences are mostly real motion (about 20 px per frame): a filter
    that keeps the lag under 33 ms can only remove a small part (measured 5 % and 15 %)."""
    r = run(model, videos["pose_squats.mp4"], params)
    assert r["fps"] == pytest.approx(5)
    assert low <= r["jitter_reduction"] <= high, r
    assert 0 <= r["lag_ms"] <= 1000 / 30, r
