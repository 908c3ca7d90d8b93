"""edge-pose: camera frames -> INT8 MoveNet -> keypoints, poses and events over MQTT."""

__version__ = "0.1.0"
