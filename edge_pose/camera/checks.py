"""The `edge-pose doctor` check of the camera: the configured source, read with the grammar
config validation and ``open_camera`` use (edge_pose.camera.source), looked at without taking
it from the service.

A Pi camera is looked for in libcamera's list (``Picamera2.global_camera_info()``: lists, does
not start), a V4L2 node by whether the service user may open it, a file source by opening it
as the pipeline would. Those looks are particular to each kind, so they are cases; a kind of
camera without one is reported as not checked, so adding a kind needs no change here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edge_pose.camera.source import FileSource, PiCameraSource, V4l2Source, parse_source
from edge_pose.doctor import Check, Context, not_checked
from edge_pose.errors import EdgePoseError
from edge_pose.inference import edgetpu


def camera(ctx: Context) -> Check:
    videos = sorted(str(p) for p in Path("/dev").glob("video*"))
    if ctx.cfg is None:
        return not_checked("camera")
    source = ctx.cfg.camera.source
    data: dict[str, Any] = {"source": source, "video_devices": videos}
    match parse_source(source):  # a valid config's source: within the grammar
        case PiCameraSource(index=index):
            return _picamera(source, index, data)
        case V4l2Source(device=node):
            return _v4l2(node, videos, ctx.who, data)
        case FileSource(path=path):
            return _file(path, data)
        case _:
            summary = f"{source}: not checked (doctor has no check for this kind of camera)"
            return Check("camera", "info", summary, data=data)


def _picamera(source: str, index: int, data: dict[str, Any]) -> Check:
    from edge_pose.camera.picam import NO_SUCH_CAMERA_FIX, PICAMERA2_MISSING, found_cameras

    try:
        from picamera2 import Picamera2  # type: ignore[import-not-found]
    except ImportError:
        return Check("camera", "fail", "picamera2 is not importable", PICAMERA2_MISSING, data)
    cameras = [dict(c) for c in Picamera2.global_camera_info()]
    data["cameras"] = [{k: str(v) for k, v in c.items()} for c in cameras]
    found = found_cameras(cameras)
    if index >= len(cameras):
        return Check(
            "camera", "fail", f"{source}: no such camera (found: {found})", NO_SUCH_CAMERA_FIX, data
        )
    return Check(
        "camera", "ok", f"{source}: {cameras[index].get('Model', '?')} (found: {found})", data=data
    )


def _v4l2(node: str, videos: list[str], who: edgetpu.Identity, data: dict[str, Any]) -> Check:
    data["node"] = node
    if not os.path.exists(node):
        found = ", ".join(videos) or "none"
        return Check(
            "camera",
            "fail",
            f"{node} does not exist (video devices: {found})",
            "plug the webcam in, or set camera.source to one of the video devices",
            data,
        )
    allowed, why = edgetpu.access(node, who)
    if not allowed:
        return Check("camera", "fail", why, f"add {who.name} to the video group", data)
    return Check("camera", "ok", f"{node} ({why})", data=data)


def _file(path: str, data: dict[str, Any]) -> Check:
    from edge_pose.camera.file import open_file_camera

    try:
        opened = open_file_camera(path, realtime=False, loop=False)
    except EdgePoseError as exc:
        return Check("camera", "fail", str(exc), "set camera.source to an existing file", data)
    description = opened.description
    opened.close()
    return Check("camera", "ok", f"file source {description}", data=data)
