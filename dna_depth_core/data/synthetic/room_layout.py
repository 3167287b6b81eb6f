"""Indoor layouts for the ground-robot style: a chain of rooms and corridors and the route through them.

A layout is a chain of axis-aligned spaces (rooms 3.5-7 m across, corridors 1.6-2.6 m
wide) behind 0.1 m walls; each space opens into the next through a doorway straight ahead
or in a side wall, so the robot's path runs forward with left and right turns. Spaces
never overlap. The robot's route is the polyline through the doorways;
:func:`route_samples` rounds its corners as a differential-drive robot turns.

Plan coordinates are ``(x, z)`` metres in the world frame of :mod:`.scene` (x right,
z forward, floor at y = 0). :mod:`.rooms` builds walls, furniture, floor and ceiling on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

WALL_THICKNESS = 0.1
"""Metres; adjacent spaces are two walls (0.2 m) apart."""
DOOR_HEIGHT = 2.05
"""Metres; doorway openings and door leaves."""
PATH_CLEARANCE = 0.35
"""Metres kept free of furniture around the robot's route (a small robot's radius)."""

_APPROACH = 0.8
"""Metres the route runs straight before and after each doorway."""
_CORNER_RADIUS = 0.8
"""Metres; largest turning radius of the route's corners (smaller where segments are short)."""



@dataclass
class Space:
    """One room or corridor: the free rectangle inside its walls, in plan metres."""

    low: np.ndarray  # (2,) x, z of the corner nearest the origin
    high: np.ndarray  # (2,) opposite corner
    kind: str  # "room" or "corridor"


@dataclass
class Doorway:
    """An opening of ``width`` metres in the walls between two adjacent spaces.

    ``axis`` is the plan axis of the walls' normal (0: x, 1: z), ``position`` the
    coordinate of the middle of the two walls along it, ``centre`` the opening's centre
    along the walls, and ``spaces`` the indices of the spaces it joins.
    """

    axis: int
    position: float
    centre: float
    width: float
    spaces: tuple[int, int]



def _direction_axis(direction: np.ndarray) -> tuple[int, float]:
    """``(axis, sign)`` of an axis-aligned unit plan direction."""
    axis = int(abs(direction[1]) > 0.5)
    return axis, float(np.sign(direction[axis]))


def _overlaps(low: np.ndarray, high: np.ndarray, other: Space, margin: float) -> bool:
    return bool(np.all(low < other.high + margin) and np.all(high > other.low - margin))


def _layout(rng: np.random.Generator, route_length: float) -> tuple[list[Space], list[Doorway], np.ndarray]:
    """Chain spaces until the route through them is at least ``route_length`` metres
    long and has turned at least once.

    The route heads +z overall: from +z it turns to one side (mostly the same side as
    before) and from there back to +z. A new space that would overlap an earlier one is
    redrawn, and the chain goes straight ahead where a turn does not fit.
    """
    turn_side = float(rng.choice([-1.0, 1.0]))

    def new_extent(kind: str) -> tuple[float, float]:
        """(lateral width, length along the direction of travel) of a new space."""
        if kind == "corridor":
            return rng.uniform(1.6, 2.6), rng.uniform(4.0, 10.0)
        return rng.uniform(3.5, 7.0), rng.uniform(3.5, 7.0)

    kind = "corridor" if rng.random() < 0.4 else "room"
    width, length = new_extent(kind)
    spaces = [Space(np.array([-width / 2, 0.0]), np.array([width / 2, length]), kind)]
    doorways: list[Doorway] = []
    start = np.array([rng.uniform(-0.25, 0.25) * (width - 1.2), 0.6])
    route = [start]
    direction = np.array([0.0, 1.0])
    travelled, turns = 0.0, 0
    while True:
        current = spaces[-1]
        axis, sign = _direction_axis(direction)
        entry = route[-1]
        far_wall = current.high[axis] if sign > 0 else current.low[axis]
        long_enough = travelled + abs(far_wall - entry[axis]) - _APPROACH >= route_length
        if (long_enough and turns) or len(spaces) >= 40:
            route.append(entry + direction * (abs(far_wall - entry[axis]) - _APPROACH))
            return spaces, doorways, np.asarray(route)
        if axis == 1 and rng.random() < 0.3:
            turn_side = -turn_side
        turned = np.array([turn_side, 0.0]) if axis == 1 else np.array([0.0, 1.0])
        options = [turned, direction] if rng.random() < 0.7 else [direction, turned]
        placed = None
        for exit_direction in options:
            for _ in range(12):
                placed = _next_space(rng, current, entry, direction, exit_direction, new_extent)
                if placed is not None and not any(
                    _overlaps(placed[0].low, placed[0].high, other, 2 * WALL_THICKNESS + 0.05) for other in spaces[:-1]
                ):
                    break
                placed = None
            if placed is not None:
                break
        if placed is None:  # boxed in by earlier spaces: end the route in this one
            route.append(entry + direction * (abs(far_wall - entry[axis]) - _APPROACH))
            return spaces, doorways, np.asarray(route)
        space, doorway, points = placed
        doorway.spaces = (len(spaces) - 1, len(spaces))
        spaces.append(space)
        doorways.append(doorway)
        for point in points:
            travelled += float(np.linalg.norm(point - route[-1]))
            route.append(point)
        turns += int(not np.array_equal(exit_direction, direction))
        direction = exit_direction


def _next_space(rng, current: Space, entry: np.ndarray, direction: np.ndarray, exit_direction: np.ndarray, new_extent):
    """A space beyond ``current``'s wall facing ``exit_direction``, its doorway, and the
    route points from ``entry`` (heading ``direction``) through the doorway; ``None``
    when the doorway does not fit there."""
    axis, sign = _direction_axis(exit_direction)
    lateral = 1 - axis
    kind = "corridor" if rng.random() < 0.4 else "room"
    width, length = new_extent(kind)
    door_width = rng.uniform(0.9, min(1.4, width - 0.6))
    margin = door_width / 2 + 0.3
    low, high = current.low[lateral] + margin, current.high[lateral] - margin
    if not np.array_equal(exit_direction, direction):
        # A doorway in a side wall: far enough ahead of the entry for the corner.
        travel_axis, travel_sign = _direction_axis(direction)
        ahead = entry[travel_axis] + travel_sign * 1.0
        low, high = (max(low, ahead), high) if travel_sign > 0 else (low, min(high, ahead))
    if low >= high:
        return None
    centre = rng.uniform(low, high)
    face = current.high[axis] if sign > 0 else current.low[axis]
    below = rng.uniform(door_width / 2 + 0.25, width - door_width / 2 - 0.25)
    space_low, space_high = np.zeros(2), np.zeros(2)
    space_low[lateral], space_high[lateral] = centre - below, centre - below + width
    near, far = face + sign * 2 * WALL_THICKNESS, face + sign * (2 * WALL_THICKNESS + length)
    space_low[axis], space_high[axis] = min(near, far), max(near, far)
    door_point = np.zeros(2)
    door_point[axis], door_point[lateral] = face + sign * WALL_THICKNESS, centre
    after = door_point + exit_direction * (WALL_THICKNESS + _APPROACH)
    if np.array_equal(exit_direction, direction):
        points = [door_point - exit_direction * (WALL_THICKNESS + _APPROACH), after]
    else:
        # The route turns on the entry's line towards the side wall: it needs room to turn.
        to_wall = abs(face - entry[axis])
        if to_wall < 0.5:
            return None
        corner = entry.copy()
        corner[1 - axis] = centre
        points = [corner, after]
    doorway = Doorway(axis, float(door_point[axis]), float(centre), float(door_width), (-1, -1))
    return Space(space_low, space_high, kind), doorway, points


def route_samples(route: np.ndarray, step: float = 0.01) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The route with its corners rounded, sampled every ``step`` metres of arc length.

    Each corner becomes a circular arc of radius up to 0.8 m, shrunk to fit 45 % of the
    shorter neighbouring segment, so the heading changes smoothly as a differential-drive
    robot's does.

    Returns:
        float64 ``(S, 2)`` plan points, ``(S,)`` headings in radians (0 along +z, > 0
        towards +x) and ``(S,)`` bool, True on the arcs.
    """
    # Collinear points are not corners.
    keep = [0]
    for index in range(1, len(route) - 1):
        a, b = route[keep[-1]], route[index + 1]
        d1, d2 = route[index] - a, b - route[index]
        if abs(d1[0] * d2[1] - d1[1] * d2[0]) > 1e-9 * np.linalg.norm(d1) * np.linalg.norm(d2):
            keep.append(index)
    keep.append(len(route) - 1)
    points = route[keep]
    pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    cursor = points[0]
    for index in range(1, len(points)):
        vertex = points[index]
        if index == len(points) - 1:
            pieces.append(_line(cursor, vertex, step))
            break
        incoming = vertex - points[index - 1]
        outgoing = points[index + 1] - vertex
        in_length, out_length = np.linalg.norm(incoming), np.linalg.norm(outgoing)
        d_in, d_out = incoming / in_length, outgoing / out_length
        angle = math.acos(float(np.clip(d_in @ d_out, -1.0, 1.0)))
        tangent_limit = 0.45 * min(in_length, out_length)
        radius = min(_CORNER_RADIUS, tangent_limit / math.tan(angle / 2))
        tangent = radius * math.tan(angle / 2)
        arc_start, arc_end = vertex - d_in * tangent, vertex + d_out * tangent
        pieces.append(_line(cursor, arc_start, step))
        pieces.append(_arc(arc_start, d_in, d_out, radius, angle, step))
        cursor = arc_end
    xy = np.concatenate([piece[0] for piece in pieces])
    heading = np.unwrap(np.concatenate([piece[1] for piece in pieces]))
    on_arc = np.concatenate([piece[2] for piece in pieces])
    return xy, heading, on_arc


def _line(start: np.ndarray, end: np.ndarray, step: float):
    length = float(np.linalg.norm(end - start))
    count = max(int(math.ceil(length / step)), 1)
    fractions = np.arange(count) / count
    direction = (end - start) / max(length, 1e-12)
    heading = math.atan2(direction[0], direction[1])
    return start + fractions[:, None] * (end - start), np.full(count, heading), np.zeros(count, bool)


def _arc(start: np.ndarray, d_in: np.ndarray, d_out: np.ndarray, radius: float, angle: float, step: float):
    # Turning right (towards +x when heading +z) is a negative cross product in (x, z).
    turn = -1.0 if d_in[1] * d_out[0] - d_in[0] * d_out[1] > 0 else 1.0
    normal = np.array([-d_in[1], d_in[0]]) * turn  # from the path towards the arc's centre
    centre = start + normal * radius
    count = max(int(math.ceil(radius * angle / step)), 1)
    swept = np.arange(count) / count * angle
    offset = start - centre
    # Rotate ``offset`` by the swept angle in the turning sense.
    cos, sin = np.cos(swept * turn), np.sin(swept * turn)
    xy = centre + np.stack([offset[0] * cos - offset[1] * sin, offset[0] * sin + offset[1] * cos], 1)
    heading = math.atan2(d_in[0], d_in[1]) - turn * swept
    return xy, heading, np.ones(count, bool)
