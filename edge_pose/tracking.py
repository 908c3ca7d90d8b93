"""Which person is which from frame to frame: stable track ids for a multi-person model.

A multi-person model finds up to six people in every frame, in an order that says nothing
about who is who. The tracker gives each person found an integer id that stays with them while
they are in view, so smoothing, labels and repetitions can be kept per person
(:mod:`edge_pose.track`) and subscribers can tell people apart.

As tfjs-models' pose tracker (``calculators/tracker.ts``), it matches greedily, best person
first, each to the unmatched track it resembles most, and opens a new track for a person who
resembles none enough. Unlike it, the tracks seen in the last frame are offered first, then
those missed for one frame, and so on (the "matching cascade" of DeepSORT): without that, a
person hidden for a moment behind another matches the box of whoever hid them as well as their
own, and the two swap ids as they come apart (measured: docs/tracking.md). Resemblance is one
of:

- ``boxes``: the intersection over union of the boxes around the keypoints seen (cheap, and
  robust when keypoints jitter); at least ``min_iou``.
- ``keypoints``: COCO's object keypoint similarity (OKS) of the keypoints both have seen with
  at least ``keypoint_threshold``, scaled by the track's box area with COCO's per-keypoint
  falloffs; at least ``min_oks``, over at least ``min_keypoints`` keypoints (better when people
  overlap, since boxes of two people side by side can overlap a lot).

Time is the frames' scene time, so a file replayed faster or slower tracks the same. A track
not matched for ``max_age_s`` ends, and a person seen again after that gets a new id; ids are
never reused within a run. At most ``max_tracks`` tracks are kept (the most recently seen).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge_pose.config import TrackingConfig

# COCO's per-keypoint falloffs (the sigmas of its keypoint evaluation), in KEYPOINT_NAMES order.
COCO_FALLOFFS = np.array(
    [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
     0.107, 0.107, 0.087, 0.087, 0.089, 0.089], np.float32,
)  # fmt: skip
_OKS_SCALE = 2.0 * (2.0 * COCO_FALLOFFS) ** 2  # the denominator of OKS, before the area


Box = tuple[float, float, float, float]  # x0, y0, x1, y1, frame pixels


@dataclass(slots=True)
class Track:
    """One person followed: their id, the keypoints and box last matched, and when."""

    id: int
    keypoints: np.ndarray  # (17, 3) frame pixels, as last matched
    box: Box | None  # around the keypoints seen; None: none seen
    first_seen_s: float
    last_seen_s: float


class Tracker:
    """Track ids for the people of successive frames (see the module docstring).

    A frame has a handful of people and tracks, so boxes are compared in plain Python (numpy's
    call overhead is larger than the work for a few boxes) and keypoints as one array of all
    pairs (17 keypoints times every pair)."""

    def __init__(self, cfg: TrackingConfig, first_id: int = 1) -> None:
        self.cfg = cfg
        self.tracks: dict[int, Track] = {}
        self._next_id = first_id

    @property
    def next_id(self) -> int:
        """The id the next new person gets (a tracker that replaces this one starts there)."""
        return self._next_id

    def assign(
        self, people: Sequence[np.ndarray], scene_s: float
    ) -> tuple[list[int], list[int]]:
        """Match this frame's people (keypoints (17, 3) in frame pixels, best first) to tracks.

        Returns the id of each person, in the order given (0: more people than
        ``max_tracks``, not followed), and the ids of the tracks that ended in this call
        (unseen for longer than ``max_age_s``, or pushed out by ``max_tracks``).
        """
        ended = [
            tid for tid, track in self.tracks.items()
            if scene_s - track.last_seen_s > self.cfg.max_age_s
        ]  # fmt: skip
        for tid in ended:
            del self.tracks[tid]
        boxes = [self._box(keypoints) for keypoints in people]
        opened_from = self._next_id  # ids from here on are opened in this call
        ids = [0] * len(people)
        tracks = list(self.tracks.values())
        if people and tracks:
            self._match(ids, self._similarity(people, boxes, tracks), tracks)
        for i, keypoints in enumerate(people):
            kept = keypoints.copy()  # the caller smooths its keypoints in place afterwards
            if ids[i] == 0:
                ids[i] = self._next_id
                self._next_id += 1
                self.tracks[ids[i]] = Track(ids[i], kept, boxes[i], scene_s, scene_s)
            else:
                track = self.tracks[ids[i]]
                track.keypoints, track.box, track.last_seen_s = kept, boxes[i], scene_s
        excess = len(self.tracks) - self.cfg.max_tracks
        if excess > 0:
            # The least recently seen go; of those seen now, the newest (a person never followed).
            by_age = sorted(self.tracks.values(), key=lambda track: (track.last_seen_s, -track.id))
            for track in by_age[:excess]:
                del self.tracks[track.id]
                if track.id in ids:  # pushed out in the frame it was seen: it is not followed
                    ids[ids.index(track.id)] = 0
                if track.id < opened_from:  # a track opened in this call never began
                    ended.append(track.id)
        return ids, ended

    def clear(self) -> None:
        """Forget every track (ids still never come back)."""
        self.tracks.clear()

    def rebase(self, scene_s: float) -> None:
        """The footage jumped to ``scene_s`` (a looped file, a pause, a reload): the gap is not
        time anyone was away, so every track moves by the gap alone. The latest seen count as
        seen just now; the others keep how long they had been missed, so the latest still
        choose first and matching goes on by where people were (a person who moved far
        meanwhile gets a new id)."""
        if not self.tracks:
            return
        gap = max(0.0, scene_s - max(track.last_seen_s for track in self.tracks.values()))
        for track in self.tracks.values():
            track.first_seen_s += gap
            track.last_seen_s += gap

    def skip_to(self, next_id: int) -> None:
        """New people get ids from ``next_id`` on (never lower than now): an id used elsewhere
        (the single-pose person's) is not given again."""
        self._next_id = max(self._next_id, next_id)

    def _match(self, ids: list[int], similarity: list[list[float]], tracks: list[Track]) -> None:
        """Fill ``ids`` (0: unmatched) greedily, best person first, each with the unmatched
        track it resembles most; the tracks seen most recently choose first, then those missed
        for a frame, and so on: a person who was hidden for a moment cannot take the track of
        the one who hid them and is still in view (the swap of a plain greedy match)."""
        minimum = self.cfg.min_iou if self.cfg.method == "boxes" else self.cfg.min_oks
        taken: set[int] = set()
        for when in sorted({track.last_seen_s for track in tracks}, reverse=True):
            columns = [j for j, track in enumerate(tracks) if track.last_seen_s == when]
            for row, resemblance in enumerate(similarity):
                if ids[row]:
                    continue
                best, best_column = 0.0, -1
                for j in columns:
                    if j not in taken and resemblance[j] > best:
                        best, best_column = resemblance[j], j
                if best_column >= 0 and best >= minimum:
                    ids[row] = tracks[best_column].id
                    taken.add(best_column)

    def _box(self, keypoints: np.ndarray) -> Box | None:
        seen = keypoints[keypoints[:, 2] >= self.cfg.keypoint_threshold, :2]
        if not len(seen):
            return None
        (x0, y0), (x1, y1) = seen.min(axis=0).tolist(), seen.max(axis=0).tolist()
        return x0, y0, x1, y1

    def _similarity(
        self, people: Sequence[np.ndarray], boxes: list[Box | None], tracks: list[Track]
    ) -> list[list[float]]:
        """(people, tracks) resemblance in [0, 1]."""
        if self.cfg.method == "boxes":
            return [[iou(box, track.box) for track in tracks] for box in boxes]
        return self._oks(np.stack(people), tracks).tolist()

    def _oks(self, people: np.ndarray, tracks: list[Track]) -> np.ndarray:
        """COCO's object keypoint similarity of each person (P, 17, 3) to each track's last
        keypoints, all pairs at once: (P, T); 0 where fewer than ``min_keypoints`` keypoints
        are seen by both."""
        threshold = self.cfg.keypoint_threshold
        last = np.stack([track.keypoints for track in tracks])  # (T, 17, 3)
        area = np.array([
            0.0 if track.box is None
            else (track.box[2] - track.box[0]) * (track.box[3] - track.box[1])
            for track in tracks
        ]) + 1e-6  # fmt: skip
        both = (people[:, None, :, 2] >= threshold) & (last[None, :, :, 2] >= threshold)
        d2 = ((people[:, None, :, :2] - last[None, :, :, :2]) ** 2).sum(axis=3)  # (P, T, 17)
        similar = np.where(both, np.exp(-d2 / (area[None, :, None] * _OKS_SCALE)), 0.0)
        count = both.sum(axis=2)
        enough = count >= max(1, self.cfg.min_keypoints)
        return np.where(enough, similar.sum(axis=2) / np.maximum(count, 1), 0.0)


def iou(a: Box | None, b: Box | None) -> float:
    """Intersection over union of two boxes; 0 when either is None or they only touch."""
    if a is None or b is None:
        return 0.0
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
