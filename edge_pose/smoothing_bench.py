"""Measure what smoothing does on real video: jitter and lag, raw vs smoothed.

``measure`` runs the real model with the real crop logic over a video file, the way the pipeline
does with smoothing on (as in MoveNet's video pipeline: the next crop comes from the smoothed
keypoints, its edges low-passed). Each frame's keypoints are kept twice, as the model gave them
("raw") and after the smoother ("smoothed"), so the comparison isolates the filter: the same model
outputs, filtered or not. A second pass with smoothing off (crop from raw keypoints, no crop
low-pass: the pipeline without smoothing) gives the ``baseline`` jitter a user would see.

- jitter: mean |second difference| of keypoint positions, ``|p[t+1] - 2 p[t] + p[t-1]|`` (the
  Euclidean norm in frame pixels, px per frame^2), over keypoints whose score is >= 0.3 in all
  three frames. It counts true acceleration too, so it never reaches 0 on a moving person.
- lag: the shift ``s`` (frames) that minimises the mean squared distance between ``smoothed[t]``
  and ``raw[t - s]`` over keypoints with score >= 0.3 in both frames, searched over -3..3 and
  refined to a fraction of a frame by a parabola through the best integer shift and its
  neighbours. Positive = the smoothed track is behind.

Timestamps come from the file's frame rate (index / fps), not from the decode clock: a file is
decoded faster than real time, and the filter runs on time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from edge_pose.camera.file import VideoFileCamera
from edge_pose.config import SmoothingConfig
from edge_pose.inference.crop import full_frame, next_region
from edge_pose.inference.estimator import PoseEstimator, nobody
from edge_pose.pose import Region
from edge_pose.smoothing import KeypointSmoother, RegionFilter

MIN_SCORE = 0.3  # keypoints counted in jitter and lag
MAX_SHIFT = 3  # lag search range, frames
MIN_POSE_SCORE = 0.25  # person present (the pipeline's default)
TARGET_REDUCTION = 0.40  # issue 3: jitter reduced by >= 40 %
TARGET_LAG_S = 1 / 30  # issue 3: lag <= 1 frame at 30 fps

SmootherFactory = Callable[[], KeypointSmoother]
RegionFilterFactory = Callable[[], RegionFilter]


def measure(
    model: PoseEstimator,
    video_path: Path | str,
    smoother_factory: SmootherFactory,
    *,
    region_filter_factory: RegionFilterFactory | None = None,
    min_pose_score: float = MIN_POSE_SCORE,
    min_score: float = MIN_SCORE,
    max_shift: int = MAX_SHIFT,
) -> dict[str, Any]:
    """Jitter and lag of raw vs smoothed keypoints on one video (see the module docstring)."""
    if region_filter_factory is None:
        region_filter_factory = RegionFilter
    fps, raw, smoothed, person, apply_ns = _run(
        model, Path(video_path), smoother_factory(), region_filter_factory(), min_pose_score
    )
    _, base, _, _, _ = _run(model, Path(video_path), None, None, min_pose_score)
    valid = raw[:, :, 2] >= min_score
    raw_jitter, samples = jitter(raw[:, :, :2], valid)
    smooth_jitter, _ = jitter(smoothed[:, :, :2], valid)
    base_jitter, _ = jitter(base[:, :, :2], base[:, :, 2] >= min_score)
    lag_frames = lag(raw[:, :, :2], smoothed[:, :, :2], valid, max_shift)
    reduction = 1.0 - smooth_jitter / raw_jitter if raw_jitter > 0 else 0.0
    lag_ms = 1000.0 * lag_frames / fps
    return {
        "video": Path(video_path).name,
        "fps": round(fps, 3),
        "frames": len(raw),
        "person_frames": int(person.sum()),
        "jitter_samples": samples,
        "raw": {"jitter_px": round(raw_jitter, 3)},
        "smoothed": {"jitter_px": round(smooth_jitter, 3)},
        "jitter_reduction": round(reduction, 3),
        "lag_frames": round(lag_frames, 3),
        "lag_ms": round(lag_ms, 1),
        "baseline": {"jitter_px": round(base_jitter, 3)},
        "jitter_reduction_vs_baseline": (
            round(1.0 - smooth_jitter / base_jitter, 3) if base_jitter > 0 else 0.0
        ),
        "apply_us": round(float(np.median(apply_ns)) / 1000, 1) if len(apply_ns) else None,
        "meets_target": bool(reduction >= TARGET_REDUCTION and lag_ms <= 1000 * TARGET_LAG_S),
    }


def report(
    model: PoseEstimator,
    videos: Iterable[Path | str],
    config: SmoothingConfig | None = None,
) -> dict[str, Any]:
    """``measure`` on each video with the ``[smoothing]`` parameters, plus the cost per call."""
    cfg = config or SmoothingConfig()
    results = {}
    for video in videos:
        name = Path(video).name
        results[name] = measure(
            model,
            video,
            lambda: KeypointSmoother.from_config(cfg),
            region_filter_factory=lambda: RegionFilter.from_config(cfg),
        )
    return {
        "params": cfg.model_dump(),
        "target": {"jitter_reduction": TARGET_REDUCTION, "lag_ms": round(1000 * TARGET_LAG_S, 1)},
        "videos": results,
        "cost_us": cost_us(cfg),
    }


def cost_us(cfg: SmoothingConfig | None = None, calls: int = 20000) -> dict[str, float]:
    """Microseconds per ``KeypointSmoother.apply`` and ``RegionFilter.apply`` (best of 5 runs)."""
    cfg = cfg or SmoothingConfig()
    rng = np.random.default_rng(0)
    smoother = KeypointSmoother.from_config(cfg)
    region_filter = RegionFilter.from_config(cfg)
    frames = (rng.random((64, 17, 3)) * (640, 480, 1)).astype(np.float32)
    regions = [Region(x, x, x + 200, x + 200) for x in rng.random(64) * 100]
    step = 33_333_333

    def run_keypoints(n: int, t: int) -> int:
        for i in range(n):
            t += step
            smoother.apply(frames[i & 63], t, 640, 480)
        return t

    def run_region(n: int, t: int) -> int:
        for i in range(n):
            region_filter.apply(regions[i & 63])
        return t

    result = {}
    for key, run in (("keypoints", run_keypoints), ("region", run_region)):
        t = run(1000, 0)
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter_ns()
            t = run(calls, t)
            best = min(best, (time.perf_counter_ns() - t0) / calls)
        result[key] = round(best / 1000, 2)
    return result


def jitter(xy: np.ndarray, valid: np.ndarray) -> tuple[float, int]:
    """Mean |p[t+1] - 2 p[t] + p[t-1]| (px per frame^2) where ``valid`` holds in all 3 frames.

    ``xy`` is (frames, keypoints, 2) in pixels, ``valid`` (frames, keypoints). Returns the mean
    and the number of second differences it averages.
    """
    xy = xy.astype(np.float64)
    second = xy[2:] - 2 * xy[1:-1] + xy[:-2]
    mask = valid[2:] & valid[1:-1] & valid[:-2]
    n = int(mask.sum())
    if n == 0:
        return 0.0, 0
    return float(np.linalg.norm(second, axis=-1)[mask].mean()), n


def lag(raw: np.ndarray, smoothed: np.ndarray, valid: np.ndarray, max_shift: int = 3) -> float:
    """Frames by which ``smoothed`` trails ``raw`` (fractional; positive = behind).

    Minimises the mean squared distance between smoothed[t] and raw[t - s] over integer
    s in -max_shift..max_shift on the same frames t for every s, then fits a parabola through
    the best s and its neighbours.
    """
    raw = raw.astype(np.float64)
    smoothed = smoothed.astype(np.float64)
    n = len(raw)
    k = max_shift
    if n <= 2 * k + 1:
        return 0.0
    shifts = range(-k, k + 1)
    errors = []
    for s in shifts:
        t = slice(k, n - k)
        src = slice(k - s, n - k - s)
        mask = valid[t] & valid[src]
        d = ((smoothed[t] - raw[src]) ** 2).sum(axis=-1)
        errors.append(float(d[mask].mean()) if mask.any() else float("inf"))
    best = int(np.argmin(errors))
    shift = float(shifts[best])
    if 0 < best < len(errors) - 1:
        e0, e1, e2 = errors[best - 1], errors[best], errors[best + 1]
        curvature = e0 - 2 * e1 + e2
        if curvature > 0:
            shift += 0.5 * (e0 - e2) / curvature
    return shift


def _run(
    model: PoseEstimator,
    path: Path,
    smoother: KeypointSmoother | None,
    region_filter: RegionFilter | None,
    min_pose_score: float,
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """One pass over the video; returns fps, raw and smoothed (frames, 17, 3), person, apply ns.

    With ``smoother`` None the pipeline runs without smoothing (crop from the raw keypoints);
    the smoothed array is then the raw one.
    """
    camera = VideoFileCamera(path, realtime=False, loop=False)
    fps = float(camera.fps or 30.0)
    raw_frames: list[np.ndarray] = []
    smooth_frames: list[np.ndarray] = []
    person_flags: list[bool] = []
    apply_ns: list[int] = []
    region: Region | None = None
    try:
        while (frame := camera.read()) is not None:
            height, width = frame.image.shape[:2]
            capture_ns = round(frame.index * 1e9 / fps)
            looked_at = region or full_frame(width, height)
            found = model.estimate(frame.image, looked_at)
            detection = found[0] if found else nobody(looked_at)
            keypoints = detection.keypoints
            raw_frames.append(keypoints.copy())
            person = detection.score >= min_pose_score
            person_flags.append(person)
            if smoother is None or region_filter is None:
                region = next_region(keypoints, width, height) if person else None
            elif person:
                t0 = time.perf_counter_ns()
                smoother.apply(keypoints, capture_ns, width, height)
                apply_ns.append(time.perf_counter_ns() - t0)
                region = region_filter.apply(next_region(keypoints, width, height))
            else:
                smoother.reset()
                region_filter.reset()
                region = None
            smooth_frames.append(keypoints)
    finally:
        camera.close()
    return fps, np.stack(raw_frames), np.stack(smooth_frames), np.array(person_flags), apply_ns
