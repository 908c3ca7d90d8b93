"""The compact keypoints payload (``mqtt.compact_keypoints = true``): arrays instead of objects.

Same message as :func:`edge_pose.pose.keypoints_payload`, with ``"format": "compact"`` and each
keypoint as ``[x, y, score]`` in COCO order (:data:`edge_pose.pose.KEYPOINT_NAMES`, documented in
docs/mqtt.md) instead of ``{"name", "x", "y", "score"}``. The names are the same 17 every time,
so leaving them out halves the message (about 0.6 KB instead of 1.3 KB), which matters for a
fleet at 30 messages per second per device. The schema is ``keypoints-compact.schema.json``.

Built as one f-string like the full payload: it runs for every published frame.
"""

from __future__ import annotations

import json

import numpy as np

from edge_pose.pose import PAYLOAD_VERSION, Pose

FORMAT = "compact"


def compact_keypoints_json(keypoints: np.ndarray) -> str:
    """``[[x, y, score], ...]``: pixels to 0.1, score to 0.001, as in the full payload."""
    return "[" + ",".join(f"[{x:.1f},{y:.1f},{s:.3f}]" for x, y, s in keypoints.tolist()) + "]"


def compact_keypoints_payload(pose: Pose, device: str, latency_ms: float) -> str:
    """The version-1 keypoints message in compact form (same signature as keypoints_payload)."""
    label_json = (
        "null" if pose.label is None
        else f'{{"label":{json.dumps(pose.label)},"confidence":{pose.confidence:.3f}}}'
    )  # fmt: skip
    return (
        f'{{"v":{PAYLOAD_VERSION},"format":"{FORMAT}","device":{json.dumps(device)},'
        f'"frame":{pose.frame_index},"ts":{pose.capture_wall:.3f},"latency_ms":{latency_ms:.1f},'
        f'"width":{pose.width},"height":{pose.height},"score":{pose.score:.3f},'
        f'"person":{"true" if pose.person else "false"},'
        f'"keypoints":{compact_keypoints_json(pose.keypoints)},"pose":{label_json}}}'
    )
