"""File-backed cameras: a video, a still image, a glob or a folder of images.

They stand in for the Pi camera in CI and let users run the pipeline on recordings. Paced in
real time they behave like a live camera (the reader keeps only the newest frame); unpaced they
apply back-pressure so every frame is processed.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from edge_pose.camera.base import Camera, Frame, FrameClock
from edge_pose.camera.imagesize import ImageHeaderError, ImageTooLarge, check_image_size
from edge_pose.errors import CameraError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(
    {".bmp", ".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}
)
# Images carry no frame rate; folders and globs of them are paced at this one.
IMAGE_SEQUENCE_FPS = 30.0


def load_image(path: Path) -> np.ndarray:
    """Decode an image file as RGB uint8 HxWx3 (grey, 16-bit and RGBA images are converted).

    The size in the header is checked first (``imagesize.MAX_IMAGE_PIXELS``), so a huge or
    hostile image is refused in one line before OpenCV allocates for it.
    """
    if path.is_dir():
        raise CameraError(f"{path} is a folder: give the image files in it (e.g. {path}/*.jpg)")
    if not path.is_file():
        raise CameraError(f"image not found: {path}")
    if not os.access(path, os.R_OK):
        raise CameraError(f"image not readable: {path} (check its permissions)")
    try:
        check_image_size(path)
        # IMREAD_COLOR turns grey into 3 channels, drops alpha and scales 16-bit to 8-bit.
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except ImageTooLarge as exc:
        raise CameraError(f"image {path} refused: {exc}") from None
    except ImageHeaderError as exc:
        raise CameraError(f"cannot decode image {path}: {exc}") from None
    except OSError as exc:
        raise CameraError(f"cannot read image {path}: {exc.strerror}") from None
    except cv2.error:  # a decoder's own check (OpenCV names them in a multi-line message)
        image = None
    if image is None:
        raise CameraError(f"cannot decode image {path}: not an image OpenCV can read, or corrupt")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)


def open_file_camera(
    spec: str, *, realtime: bool, loop: bool, fps: float = IMAGE_SEQUENCE_FPS
) -> Camera:
    """A camera for a video file, an image file, a directory of images or a glob of images."""
    if any(ch in spec for ch in "*?["):
        paths = sorted(
            (Path(p) for p in glob.glob(spec) if Path(p).suffix.lower() in IMAGE_SUFFIXES),
            key=name_order,
        )
        if not paths:
            raise CameraError(f"camera source {spec!r}: the pattern matches no image files")
        return ImageSequenceCamera(paths, realtime=realtime, loop=loop, fps=fps)
    path = Path(spec).expanduser()
    if path.is_dir():
        paths = sorted(
            (p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=name_order
        )
        if not paths:
            raise CameraError(
                f"camera source {path}: the folder holds no image files ({_suffixes()})"
            )
        return ImageSequenceCamera(paths, realtime=realtime, loop=loop, fps=fps)
    if not path.exists():
        raise CameraError(f"camera source not found: {path} (give a video, image, folder or glob)")
    if path.is_fifo():  # another process streaming video into a named pipe
        return VideoFileCamera(path, realtime=realtime, loop=False, stream=True)
    if not path.is_file() or not os.access(path, os.R_OK):
        raise CameraError(
            f"camera source not readable: {path} (check the path and its permissions)"
        )
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSequenceCamera([path], realtime=realtime, loop=loop, fps=fps)
    return VideoFileCamera(path, realtime=realtime, loop=loop)


def name_order(path: Path) -> tuple[tuple[int, int | str], ...]:
    """Sort key of an image sequence: numbers in names compare as numbers, so ``frame_2``
    comes before ``frame_10`` as a person numbering stills means (and ``frame_002`` still
    sorts the same); the folder first, so a glob over several folders keeps each together."""
    parts = re.split(r"(\d+)", str(path))
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in parts)


def _suffixes() -> str:
    return " ".join(sorted(IMAGE_SUFFIXES))


class _PacedCamera(Camera):
    """Shared pacing: with ``realtime`` each frame is released at its due time."""

    fps: float  # always known: the file's rate, or the one images are played at

    def __init__(self, realtime: bool, fps: float) -> None:
        self.live = realtime
        self.fps = fps
        self._clock = FrameClock()
        self._start_ns = 0

    def _emit(self, image: np.ndarray, started_ns: int, cut: bool = False) -> Frame:
        decode_ns = time.perf_counter_ns() - started_ns
        if self._clock.index == 0:
            self._start_ns = time.monotonic_ns()
        scene_ns = self._start_ns + round(self._clock.index * 1e9 / self.fps)
        if self.live:
            delay = (scene_ns - time.monotonic_ns()) / 1e9
            if delay > 0:
                time.sleep(delay)
        return self._clock.stamp(image, decode_ns=decode_ns, scene_ns=scene_ns, cut=cut)


class ImageSequenceCamera(_PacedCamera):
    """Still images as frames; a single image is decoded once and handed on repeatedly.

    In a folder or glob, an image that cannot be read (corrupt, removed since) is skipped with
    one warning, so one bad file does not end a run over thousands; ``skipped`` counts them.
    When none of them can be read the camera fails.
    """

    def __init__(self, paths: list[Path], *, realtime: bool, loop: bool, fps: float) -> None:
        super().__init__(realtime, fps)
        self.description = f"file:{paths[0]}" if len(paths) == 1 else f"{len(paths)} images"
        self.skipped = 0
        self._paths = paths
        self._loop = loop
        self._starts_over = False  # the next image begins another pass over the folder
        self._cached = load_image(paths[0]) if len(paths) == 1 else None
        self._images = self._iterate()

    def _iterate(self) -> Iterator[np.ndarray]:
        if self._cached is not None:
            yield self._cached
            while self._loop:
                yield self._cached
            return
        bad: set[Path] = set()
        while True:
            for path in self._paths:
                if path in bad:
                    continue
                try:
                    image = load_image(path)
                except CameraError as exc:
                    bad.add(path)
                    self.skipped += 1
                    log.warning("%s; skipped", exc)
                    continue
                yield image
            if len(bad) == len(self._paths):
                raise CameraError(
                    f"none of the {len(self._paths)} images could be read (see the warnings)"
                )
            if not self._loop:
                return
            self._starts_over = True

    def read(self) -> Frame | None:
        started_ns = time.perf_counter_ns()
        image = next(self._images, None)
        cut, self._starts_over = self._starts_over, False
        return None if image is None else self._emit(image, started_ns, cut)


# FFmpeg's own decoder threads: one. Decoding already runs in the capture thread, in parallel
# with inference; FFmpeg's frame threads on top cost about a quarter more CPU per frame, taken
# from the interpreter's threads (docs/performance.md: file camera vs single-threaded loop).
DECODER_THREADS = 1

# How long a read from a named pipe may wait for its writer; 0: as long as it takes. FFmpeg's
# own limit (30 s) made a writer that paused look like the end of the stream, so the run ended
# "cleanly" and was never restarted. A stall shows in the status instead (no frames processed)
# and, under systemd, the watchdog restarts the service; a writer that resumes is followed.
PIPE_STALL_TIMEOUT_S = 0.0


class VideoFileCamera(_PacedCamera):
    """A video file decoded by OpenCV (FFmpeg): mp4, mkv, avi and whatever else it reads.

    A ``stream`` (a named pipe) is a live source: only a regular file ends cleanly, so the end
    of a stream, or a read that waited longer than ``stall_timeout`` seconds (0: no limit),
    raises CameraError and the run fails visibly (systemd restarts the service).
    """

    def __init__(
        self,
        path: Path,
        *,
        realtime: bool,
        loop: bool,
        stream: bool = False,
        stall_timeout: float = PIPE_STALL_TIMEOUT_S,
    ) -> None:
        self.path = path
        self.description = f"file:{path}"
        self.stream = stream
        self._stall_timeout = stall_timeout
        self._loop = loop
        self._capture = self._open()
        file_fps = self._capture.get(cv2.CAP_PROP_FPS)
        super().__init__(realtime, file_fps if 0 < file_fps < 1000 else IMAGE_SEQUENCE_FPS)
        # Decode the first frame now, so an empty or undecodable file fails before the run.
        self._pending = self._decode()
        if self._pending is None:
            self.close()
            raise CameraError(f"video has no decodable frames: {path} (corrupt or empty file?)")

    @property
    def frame_count(self) -> int:
        """Frames in the file as its container states it (0 when unknown)."""
        return max(0, int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT)))

    def _open(self) -> cv2.VideoCapture:
        params = [cv2.CAP_PROP_N_THREADS, DECODER_THREADS]
        if self.stream:
            params += [cv2.CAP_PROP_READ_TIMEOUT_MSEC, round(self._stall_timeout * 1000)]
        elif not self.path.exists():  # reopened to loop, but deleted or moved since
            raise CameraError(f"camera source {self.path}: the file is gone (deleted or moved)")
        capture = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG, params)
        if not capture.isOpened():
            raise CameraError(
                f"cannot open video {self.path}: not a format OpenCV/FFmpeg reads, or corrupt"
            )
        return capture

    def _decode(self) -> np.ndarray | None:
        ok, image = self._capture.read()
        if not ok:
            return None
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)

    def read(self) -> Frame | None:
        started_ns = time.perf_counter_ns()
        image, self._pending = self._pending, None
        if image is None:
            image = self._decode()
        if image is None and self.stream:
            raise self._stream_lost((time.perf_counter_ns() - started_ns) / 1e9)
        cut = False
        if image is None and self._loop and self._clock.index > 0:
            self._capture.release()
            self._capture = self._open()
            image, cut = self._decode(), True
        return None if image is None else self._emit(image, started_ns, cut)

    def _stream_lost(self, waited: float) -> CameraError:
        """Why a pipe gave no frame: its writer stalled past the limit, or closed it."""
        if self._stall_timeout and waited >= self._stall_timeout:
            return CameraError(
                f"camera source {self.path}: no frame from the named pipe for {waited:.0f} s "
                "(its writer stalled); check the process writing into it"
            )
        return CameraError(
            f"camera source {self.path}: the named pipe ended after {self._clock.index} frames "
            "(its writer closed it); a pipe is a live source: restart the writer"
        )

    def close(self) -> None:
        self._capture.release()
