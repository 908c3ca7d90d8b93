"""Camera sources: picamera2 on the Pi, files (video, image, glob, folder) and V4L2 webcams."""

from edge_pose.camera.base import Camera, Frame, open_camera

__all__ = ["Camera", "Frame", "open_camera"]
