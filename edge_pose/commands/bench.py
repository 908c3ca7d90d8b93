"""`edge-pose bench`: throughput, latency and memory on a video (edge_pose.bench measures), or
with ``--smoothing`` keypoint jitter and lag, raw vs smoothed (edge_pose.smoothing_bench).

The model is loaded as `run` would load it, so the figures are those of the service.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_pose.argtypes import whole_number_at_least
from edge_pose.errors import EX_OK, CameraError, UsageError

if TYPE_CHECKING:
    from edge_pose.commands import Subparsers
    from edge_pose.config import Config
    from edge_pose.inference.backend import Backend
    from edge_pose.inference.estimator import PoseEstimator


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("bench", help="measure throughput, latency and memory")
    parser.add_argument(
        "--camera",
        metavar="VIDEO",
        action="append",
        required=True,
        help="a video file to measure on (repeat with --smoothing)",
    )
    parser.add_argument(
        "--smoothing",
        action="store_true",
        help="measure keypoint jitter and lag, raw vs smoothed, instead",
    )
    parser.add_argument(
        "--web",
        action="store_true",
        help="measure what the web view costs (no viewer, one, ten) instead",
    )
    parser.add_argument(
        "--frames",
        type=whole_number_at_least(20, 100_000),
        default=300,
        metavar="N",
        help="frames per measure (20 to 100000)",
    )
    parser.add_argument("--model", metavar="NAME|PATH")
    parser.add_argument("--threads", type=int, metavar="N")
    parser.add_argument("--backend", choices=("auto", "cpu", "edgetpu"))
    parser.add_argument("--config", type=Path)
    parser.add_argument("--json", action="store_true")
    return parser


def run(args: argparse.Namespace) -> int:
    from edge_pose.inference.backend import load_configured_model

    videos = _videos(args.camera)
    if len(videos) > 1 and not args.smoothing:
        raise UsageError(
            "give one --camera for the throughput bench (several go with --smoothing)"
        )
    cfg, model, backend, name = load_configured_model(
        args.config, refine=True, name=args.model, threads=args.threads, backend=args.backend
    )
    if args.smoothing:
        return _smoothing(model, cfg, videos, args.json)
    if args.web:
        return _web(model, cfg, name, videos[0], args.frames, args.json)
    return _throughput(model, cfg, backend, name, videos[0], args.frames, args.json)


def _videos(cameras: list[str]) -> list[Path]:
    """The ``--camera`` values as video files; a folder, an image or nothing is refused."""
    from edge_pose.camera.file import IMAGE_SUFFIXES
    from edge_pose.camera.source import file_path

    # A live camera or a string outside the grammar is taken as a path, and not found.
    videos = [Path(file_path(camera) or camera) for camera in cameras]
    for video in videos:
        if video.is_dir() or video.suffix.lower() in IMAGE_SUFFIXES:
            kind = "a folder" if video.is_dir() else "an image"
            raise UsageError(f"bench needs a video file: {video} is {kind} (--camera VIDEO)")
        if not video.is_file():
            raise CameraError(f"bench needs a video file: {video} not found (--camera VIDEO)")
    return videos


class _Progress:
    """A progress bar on stderr while a bench runs (only on a terminal: a log or a pipe gets
    the result alone), one step per measured slice; :meth:`step` is the bench's
    :data:`~edge_pose.bench.Step`."""

    def __init__(self, measures: int) -> None:
        import sys

        from tqdm import tqdm

        from edge_pose.bench import bench_steps

        self._bar = tqdm(
            total=bench_steps(measures), desc="bench", unit="step", file=sys.stderr,
            disable=None, leave=False, dynamic_ncols=True,
        )  # fmt: skip

    def step(self, what: str) -> None:
        self._bar.set_description_str(what, refresh=False)
        self._bar.update()

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.close()


def _throughput(
    model: PoseEstimator,
    cfg: Config,
    backend: Backend,
    name: str,
    video: Path,
    frames: int,
    as_json: bool,
) -> int:
    from edge_pose.bench import LATENCY_FPS, run_bench, verdict

    with _Progress(4) as bar:  # bare, pipeline, file and the single-threaded loop
        result = run_bench(
            model,
            cfg,
            model_name=name,
            backend=backend.kind,
            runtime=backend.runtime,
            video=video,
            frames=frames,
            step=bar.step,
        ).as_dict()
    result["delegate"] = backend.delegate
    result["verdict"] = verdict(result, cfg.camera.fps)
    if as_json:
        print(json.dumps(result))
        return EX_OK
    stages = ", ".join(f"{k} {v:.2f}" for k, v in result["stages_ms"].items())
    print(
        f"model      {name} on {backend.kind} ({backend.delegate}), {backend.runtime}\n"
        f"bare       {result['bare_fps']:.1f} fps (invoke p50 {result['invoke_ms_p50']:.2f} ms)\n"
        f"pipeline   {result['pipeline_fps']:.1f} fps in memory, ratio {result['ratio']:.3f} "
        f"({_spread(result['ratio_rounds'], 3)})\n"
        f"file       {result['file_fps']:.1f} fps with decode "
        f"({result['naive_file_fps']:.1f} fps single-threaded loop, "
        f"x{result['file_vs_naive']:.2f}, {_spread(result['file_vs_naive_rounds'], 2)})\n"
        f"stages ms  {stages}\n"
        f"latency    p50 {result['latency_ms']['p50']:.2f} ms, "
        f"p99 {result['latency_ms']['p99']:.2f} ms; invoke p50 "
        f"{result['paced_invoke_ms']['p50']:.2f} ms, p99 {result['paced_invoke_ms']['p99']:.2f} ms "
        f"(input paced at {LATENCY_FPS:.0f} fps)\n"
        f"peak RSS   {result['peak_rss_mb']:.1f} MB\n"
        f"\n{result['verdict']}"
    )
    return EX_OK


def _web(
    model: PoseEstimator, cfg: Config, name: str, video: Path, frames: int, as_json: bool
) -> int:
    """The pipeline's rate with the web view serving no, one and ten viewers, against none."""
    from edge_pose.web.bench import run_web_bench

    with _Progress(4) as bar:  # no web view, nobody watching, one viewer, ten
        result = run_web_bench(
            model, cfg, video=video, model_name=name, frames=frames, step=bar.step
        ).as_dict()
    if as_json:
        print(json.dumps(result))
        return EX_OK
    rss, encodes = result["peak_rss_mb"], result["encodes_per_s"]
    print(
        f"no web view    {result['off_fps']:.1f} fps in memory\n"
        f"nobody watches ratio {result['idle_ratio']:.3f} "
        f"({_spread(result['idle_rounds'], 3)})\n"
        f"one viewer     ratio {result['one_ratio']:.3f} ({_spread(result['one_rounds'], 3)}), "
        f"{encodes['one']:.1f} encodes/s at stream_fps {result['stream_fps']:g}\n"
        f"ten viewers    ratio {result['ten_ratio']:.3f} ({_spread(result['ten_rounds'], 3)}), "
        f"{encodes['ten']:.1f} encodes/s (shared)\n"
        f"peak RSS       {rss['off']:.1f} MB without, {rss['one']:.1f} MB with one viewer "
        f"(+{rss['one'] - rss['off']:.1f} MB)"
    )
    return EX_OK


def _spread(rounds: list[float], digits: int) -> str:
    """The range of the per-round ratios, e.g. ``rounds 0.891-0.912``."""
    return f"rounds {min(rounds):.{digits}f}-{max(rounds):.{digits}f}"


def _smoothing(model: PoseEstimator, cfg: Config, videos: list[Path], as_json: bool) -> int:
    """Jitter and lag, raw vs smoothed, per video."""
    from edge_pose.smoothing_bench import report

    result: dict[str, Any] = report(model, videos, cfg.smoothing)
    if as_json:
        print(json.dumps(result))
        return EX_OK
    target = result["target"]
    print(f"target: jitter -{target['jitter_reduction']:.0%} with lag <= {target['lag_ms']} ms")
    for name, v in result["videos"].items():
        print(
            f"{name:<22} jitter {v['raw']['jitter_px']:.2f} -> {v['smoothed']['jitter_px']:.2f} "
            "px/frame^2 "
            f"(-{v['jitter_reduction']:.0%}), lag {v['lag_frames']:.2f} frames "
            f"({v['lag_ms']:.1f} ms)"
        )
    cost = ", ".join(f"{k} {v:.1f} us" for k, v in result["cost_us"].items())
    print(f"cost per frame: {cost}")
    return EX_OK
