"""Zone polygons: whether one is usable, and whether a point lies inside it.

Zones are drawn by hand in a config file, so a polygon may be anything: the checks here find
what would make "in the zone" meaningless (too few corners, corners outside the picture, edges
that cross) and say which, in words that fit one config error line.
"""

from __future__ import annotations

from collections.abc import Sequence

Point = tuple[float, float]

MAX_CORNERS = 64


def polygon_problem(points: Sequence[Sequence[float]]) -> str | None:
    """What is wrong with ``points`` as a zone (normalized x, y pairs), or None."""
    if len(points) < 3:
        return f"has {len(points)} corner(s): a zone needs at least 3 [x, y] pairs"
    if len(points) > MAX_CORNERS:
        return f"has {len(points)} corners: at most {MAX_CORNERS}"
    for i, point in enumerate(points):
        if len(point) != 2:
            return f"corner {i + 1} has {len(point)} numbers: each corner is [x, y]"
        x, y = point
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            return (
                f"corner {i + 1} [{x:g}, {y:g}] is outside the picture: x and y are fractions "
                "of its width and height, 0 to 1"
            )
    corners = [(float(x), float(y)) for x, y in points]
    crossing = _crossing(corners)
    if crossing is not None:
        i, j = crossing
        j_end = (j + 1) % len(corners) + 1
        return (
            f"crosses itself (edge {i + 1}-{i + 2} crosses edge {j + 1}-{j_end}): list the "
            "corners in order around the zone"
        )
    if abs(area(corners)) < 1e-6:
        return "encloses no area: its corners lie on one line"
    return None


def area(corners: Sequence[Point]) -> float:
    """The signed area (shoelace formula)."""
    n = len(corners)
    return 0.5 * sum(
        corners[i][0] * corners[(i + 1) % n][1] - corners[(i + 1) % n][0] * corners[i][1]
        for i in range(n)
    )


def contains(corners: Sequence[Point], x: float, y: float) -> bool:
    """Whether (x, y) lies inside the polygon (even-odd ray casting; a point on an edge may go
    either way, which the zone's dwell time absorbs)."""
    inside = False
    n = len(corners)
    x0, y0 = corners[n - 1]
    for x1, y1 in corners:
        if (y1 > y) != (y0 > y) and x < (x0 - x1) * (y - y1) / (y0 - y1) + x1:
            inside = not inside
        x0, y0 = x1, y1
    return inside


def _crossing(corners: list[Point]) -> tuple[int, int] | None:
    """The first pair of edges (by their first corner) that cross, or None."""
    n = len(corners)
    for i in range(n):
        a, b = corners[i], corners[(i + 1) % n]
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue  # neighbours share a corner
            c, d = corners[j], corners[(j + 1) % n]
            if _segments_cross(a, b, c, d):
                return i, j
    return None


def _segments_cross(a: Point, b: Point, c: Point, d: Point) -> bool:
    """Whether segments ab and cd share a point (touching counts: a zone whose edges touch is
    two zones, or none)."""

    def side(p: Point, q: Point, r: Point) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    def within(p: Point, q: Point, r: Point) -> bool:
        return min(p[0], q[0]) <= r[0] <= max(p[0], q[0]) and min(p[1], q[1]) <= r[1] <= max(
            p[1], q[1]
        )

    d1, d2, d3, d4 = side(c, d, a), side(c, d, b), side(a, b, c), side(a, b, d)
    if ((d1 > 0) != (d2 > 0)) and ((d3 > 0) != (d4 > 0)) and d1 and d2 and d3 and d4:
        return True
    return (
        (d1 == 0 and within(c, d, a))
        or (d2 == 0 and within(c, d, b))
        or (d3 == 0 and within(a, b, c))
        or (d4 == 0 and within(a, b, d))
    )
