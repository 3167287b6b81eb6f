"""Indoor floor plans for the ground-robot style: rooms and corridors joined by doorways, with furniture.

A floor plan is a chain of axis-aligned spaces (rooms 3.5-7 m across, corridors 1.6-2.6 m
wide) behind 0.1 m walls; each space opens into the next through a doorway straight ahead
or in a side wall, so the robot's path runs forward with left and right turns. Spaces
never overlap and every wall is closed except at the doorways, so every ray hits something
(no sky indoors). The robot's route is the polyline through the doorways; furniture
(tables with legs, chairs, stacked cartons and crates, cabinets, potted plants, bins,
pillars) and open door leaves are placed only where they keep 0.35 m clear of it, so the
camera passes obstacles at close range without driving through them.

Geometry uses the world frame of :mod:`dna_depth_core.data.synthetic` (x right, y down,
z forward, floor at y = 0); plan coordinates are ``(x, z)`` metres. Textures, materials,
lighting and rendering are the generator's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .synthetic import (
    _BARK,
    _BRICK,
    _CARDBOARD,
    _CONCRETE,
    _CRATE,
    _DOOR,
    _FOLIAGE,
    _METAL,
    _PAINTED_WALL,
    _PILLAR,
    _TILED_WALL,
    _WALL_COLOURS,
    _cell_random,
    _fbm,
    _mix,
    _pulses,
    _rgb,
    _Scene,
    _SceneBuilder,
    _sun,
)

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
_FLOORS = ("tiles", "wood", "concrete", "carpet")


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


@dataclass
class FloorPlan:
    """A rendered-ready indoor scene and the robot's route through it.

    Attributes:
        scene: the boxes, floor, ceiling and light for the renderer.
        route: float64 ``(M, 2)`` plan points ``(x, z)`` of the route's polyline (before
            its corners are rounded); it starts heading +z.
        spaces: the rooms and corridors along the route, in order.
        doorways: the openings the route passes through, in order.
    """

    scene: _Scene
    route: np.ndarray
    spaces: list[Space]
    doorways: list[Doorway]


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


# --------------------------------------------------------------------------------------
# Walls, doors and furniture.
# --------------------------------------------------------------------------------------


def _add_box(builder: _SceneBuilder, low: np.ndarray, high: np.ndarray, height, material: int, colour, params=()):
    """A box over the plan rectangle ``low``..``high`` (x, z) and ``height`` (bottom, top) metres."""
    builder.add((low[0], high[0]), height, (low[1], high[1]), material, colour, params)


def _walls(builder: _SceneBuilder, rng, space: Space, index: int, doorways: list[Doorway], ceiling: float) -> None:
    """The four walls around ``space`` (corners closed), cut at its doorways, with
    decorative closed doors on some of the uncut stretches."""
    finish = rng.choice([_PAINTED_WALL, _TILED_WALL, _BRICK], p=[0.6, 0.25, 0.15])
    if finish == _BRICK:
        colour = builder.jitter([0.55, 0.3, 0.22])
        params = (3.0, 1.0, 3.0, 1.5, 1e3)  # no windows: the first "floor" starts 1 km up
    else:
        colour = builder.jitter(_WALL_COLOURS[rng.integers(len(_WALL_COLOURS))])
        stripe = builder.jitter([[0.2, 0.35, 0.6], [0.6, 0.15, 0.12], [0.2, 0.45, 0.3]][rng.integers(3)])
        params = (float(rng.choice([0.1, 0.15, 0.2])),) if finish == _TILED_WALL else tuple(stripe)
    door_colour = builder.jitter([0.45, 0.3, 0.18], 0.2)
    t = WALL_THICKNESS
    for axis in (0, 1):
        lateral = 1 - axis
        for side in (-1.0, 1.0):
            face = space.high[axis] if side > 0 else space.low[axis]
            start, end = space.low[lateral] - t, space.high[lateral] + t
            openings = sorted(
                (d.centre - d.width / 2, d.centre + d.width / 2)
                for d in doorways
                if index in d.spaces and d.axis == axis and np.sign(d.position - face) == side
            )
            stretches, cursor = [], start
            for low, high in openings:
                stretches.append((cursor, low))
                cursor = high
            stretches.append((cursor, end))

            def box(a: float, b: float, height) -> None:
                low, high = np.zeros(2), np.zeros(2)
                low[axis], high[axis] = min(face, face + side * t), max(face, face + side * t)
                low[lateral], high[lateral] = a, b
                _add_box(builder, low, high, height, int(finish), colour, params)

            for a, b in stretches:
                if b > a:
                    box(a, b, (0.0, ceiling))
                if b - a > 2.0 and rng.random() < 0.35:
                    centre = rng.uniform(a + 0.8, b - 0.8)
                    width = rng.uniform(0.8, 1.0)
                    low, high = np.zeros(2), np.zeros(2)
                    low[axis], high[axis] = min(face, face - side * 0.03), max(face, face - side * 0.03)
                    low[lateral], high[lateral] = centre - width / 2, centre + width / 2
                    _add_box(builder, low, high, (0.0, DOOR_HEIGHT + 0.05), _DOOR, door_colour)
            for a, b in openings:
                box(a, b, (DOOR_HEIGHT, ceiling))


def _clear_of(points: np.ndarray, low: np.ndarray, high: np.ndarray, clearance: float) -> bool:
    """Whether every plan point is at least ``clearance`` metres from the rectangle."""
    gap = np.maximum(np.maximum(low - points, points - high), 0.0)
    return bool(np.min(np.sum(gap**2, axis=1)) >= clearance**2)


class _Furnisher:
    """Places furniture footprints in a space without blocking the route or each other."""

    def __init__(self, builder: _SceneBuilder, rng, route_points: np.ndarray) -> None:
        self.builder, self.rng, self.route_points = builder, rng, route_points
        self.taken: list[tuple[np.ndarray, np.ndarray]] = []

    def find(self, space: Space, size: np.ndarray, against_wall: bool, tries: int = 25):
        """A free footprint of ``size`` (x, z) metres in ``space``, or ``None``."""
        rng = self.rng
        inner_low, inner_high = space.low + 0.03, space.high - 0.03
        for _ in range(tries):
            footprint = size if rng.random() < 0.5 else size[::-1]
            if np.any(inner_high - inner_low < footprint):
                continue
            low = rng.uniform(inner_low, inner_high - footprint)
            if against_wall:  # snap to one of the two nearest walls
                axis = int(rng.integers(2))
                low[axis] = inner_low[axis] if rng.random() < 0.5 else inner_high[axis] - footprint[axis]
            high = low + footprint
            if not _clear_of(self.route_points, low, high, PATH_CLEARANCE):
                continue
            if any(np.all(low < h + 0.1) and np.all(high > l - 0.1) for l, h in self.taken):
                continue
            self.taken.append((low, high))
            return low, high
        return None

    def furnish(self, space: Space, ceiling: float) -> None:
        rng = self.rng
        area = float(np.prod(space.high - space.low))
        count = int(rng.integers(1, 4)) if space.kind == "corridor" else int(rng.integers(3, 6) + area // 12)
        makers = [self._table, self._cartons, self._cabinet, self._plant, self._bin, self._chair]
        weights = np.array([3, 3, 2, 1.5, 1, 1.5]) if space.kind == "room" else np.array([0, 3, 2, 1, 1, 0.5])
        for _ in range(count):
            makers[rng.choice(len(makers), p=weights / weights.sum())](space)
        if space.kind == "room" and area > 25 and rng.random() < 0.5:
            place = self.find(space, np.array([0.4, 0.4]), against_wall=False)
            if place:
                _add_box(self.builder, *place, (0.0, ceiling), _PILLAR, self.builder.jitter([0.62, 0.6, 0.57]))

    def _table(self, space: Space) -> None:
        rng, b = self.rng, self.builder
        size = np.array([rng.uniform(0.8, 1.8), rng.uniform(0.6, 1.0)])
        place = self.find(space, size, against_wall=rng.random() < 0.4)
        if place is None:
            return
        low, high = place
        top = rng.uniform(0.7, 0.78)
        wooden = rng.random() < 0.6
        top_colour = b.jitter([0.6, 0.45, 0.3] if wooden else [0.8, 0.8, 0.78], 0.15)
        _add_box(b, low, high, (top - 0.035, top), _CRATE if wooden else _METAL, top_colour)
        leg = 0.05
        leg_colour = b.jitter([0.25, 0.25, 0.27] if not wooden else [0.4, 0.28, 0.18])
        for corner_x in (low[0] + 0.04, high[0] - 0.04 - leg):
            for corner_z in (low[1] + 0.04, high[1] - 0.04 - leg):
                corner = np.array([corner_x, corner_z])
                _add_box(b, corner, corner + leg, (0.0, top - 0.035), _BARK if wooden else _METAL, leg_colour)
        if rng.random() < 0.4:  # a carton left on the table
            box = rng.uniform(0.25, 0.45)
            offset = rng.uniform(low + 0.02, np.maximum(high - box - 0.02, low + 0.02))
            _add_box(b, offset, offset + box, (top, top + box * 0.8), _CARDBOARD, b.jitter([0.6, 0.45, 0.28], 0.12))

    def _chair(self, space: Space) -> None:
        rng, b = self.rng, self.builder
        place = self.find(space, np.array([0.45, 0.45]), against_wall=False)
        if place is None:
            return
        low, high = place
        colour = b.jitter([[0.2, 0.25, 0.4], [0.5, 0.15, 0.1], [0.3, 0.3, 0.3]][rng.integers(3)])
        seat = rng.uniform(0.42, 0.48)
        _add_box(b, low, high, (seat - 0.05, seat), _METAL, colour)
        for corner_x in (low[0] + 0.02, high[0] - 0.05):
            for corner_z in (low[1] + 0.02, high[1] - 0.05):
                corner = np.array([corner_x, corner_z])
                _add_box(b, corner, corner + 0.03, (0.0, seat - 0.05), _METAL, [0.2, 0.2, 0.21])
        back_axis = int(rng.integers(2))
        back_high = high.copy()
        back_high[back_axis] = low[back_axis] + 0.05
        _add_box(b, low, back_high, (seat, seat + rng.uniform(0.35, 0.45)), _METAL, colour)

    def _cartons(self, space: Space) -> None:
        rng, b = self.rng, self.builder
        size = rng.uniform(0.3, 0.8)
        place = self.find(space, np.array([size, size]), against_wall=rng.random() < 0.6)
        if place is None:
            return
        low, high = place
        material = _CRATE if rng.random() < 0.4 else _CARDBOARD
        colour = b.jitter([0.62, 0.47, 0.3] if material == _CRATE else [0.6, 0.45, 0.28], 0.12)
        bottom = 0.0
        for level in range(int(rng.integers(1, 4))):
            shrink = (high - low) * (1 - 0.88**level) / 2
            height = size * (0.88**level) * rng.uniform(0.6, 1.0)
            _add_box(b, low + shrink, high - shrink, (bottom, bottom + height), material, colour)
            bottom += height

    def _cabinet(self, space: Space) -> None:
        rng, b = self.rng, self.builder
        place = self.find(space, np.array([rng.uniform(0.6, 1.6), rng.uniform(0.35, 0.5)]), against_wall=True)
        if place is None:
            return
        material = _METAL if rng.random() < 0.5 else _CRATE
        colour = b.jitter([[0.55, 0.57, 0.6], [0.3, 0.35, 0.45], [0.62, 0.47, 0.3]][rng.integers(3)], 0.1)
        _add_box(b, *place, (0.0, rng.uniform(0.8, 2.0)), material, colour)

    def _plant(self, space: Space) -> None:
        rng, b = self.rng, self.builder
        pot = rng.uniform(0.3, 0.45)
        place = self.find(space, np.array([pot, pot]), against_wall=rng.random() < 0.5)
        if place is None:
            return
        low, high = place
        pot_height = rng.uniform(0.3, 0.45)
        _add_box(b, low, high, (0.0, pot_height), _CONCRETE, b.jitter([0.55, 0.4, 0.32]))
        spread = pot * 0.3
        _add_box(
            b, low - spread, high + spread, (pot_height, pot_height + rng.uniform(0.4, 0.9)), _FOLIAGE,
            b.jitter([0.22, 0.38, 0.15], 0.15),
        )

    def _bin(self, space: Space) -> None:
        rng, b = self.rng, self.builder
        size = rng.uniform(0.3, 0.45)
        place = self.find(space, np.array([size, size]), against_wall=True)
        if place is not None:
            colour = b.jitter([[0.2, 0.35, 0.22], [0.3, 0.3, 0.32], [0.15, 0.25, 0.5]][rng.integers(3)])
            _add_box(b, *place, (0.0, rng.uniform(0.5, 0.9)), _METAL, colour)


def _open_door_leaves(builder: _SceneBuilder, rng, doorways: list[Doorway], spaces: list[Space], route_points) -> None:
    """Door leaves swung open into the next space, against a jamb, where they clear the route."""
    colour = builder.jitter([0.45, 0.3, 0.18], 0.2)
    for doorway in doorways:
        if rng.random() < 0.4:
            continue
        axis, lateral = doorway.axis, 1 - doorway.axis
        into = spaces[doorway.spaces[1]]
        sign = 1.0 if into.low[axis] > doorway.position else -1.0
        hinge = doorway.centre + rng.choice([-1.0, 1.0]) * (doorway.width / 2 - 0.02)
        leaf = doorway.width - 0.05
        near = doorway.position + sign * WALL_THICKNESS
        low, high = np.zeros(2), np.zeros(2)
        low[axis], high[axis] = min(near, near + sign * leaf), max(near, near + sign * leaf)
        low[lateral], high[lateral] = hinge - 0.02, hinge + 0.02
        if _clear_of(route_points, low, high, PATH_CLEARANCE):
            _add_box(builder, low, high, (0.0, DOOR_HEIGHT - 0.02), _DOOR, colour)


# --------------------------------------------------------------------------------------
# Floor and ceiling.
# --------------------------------------------------------------------------------------


def _floor_albedo(kind: str, x, z, fp, seed: np.uint32, colour: np.ndarray, scale: float, along_x: bool):
    """(3, n) albedo of one floor finish at plan points ``(x, z)`` (metres)."""
    u, v = (x, z) if along_x else (z, x)
    if kind in ("tiles", "concrete"):
        grain = _fbm(x, z, seed, fp, 1.5, 5)
    if kind == "tiles":
        tint = _cell_random(x, z, scale, scale, seed + np.uint32(2), fp)
        base = colour[:, None] * (1.0 + 0.08 * grain + 0.06 * tint)
        joints = 1.0 - (1.0 - _pulses(x, scale, 0.006, fp)) * (1.0 - _pulses(z, scale, 0.006, fp))
        return _mix(base, colour * 0.5, joints)
    if kind == "wood":
        # Planks ``scale`` wide along v, staggered 1.2-2 m lengths along u, streaky grain.
        row = np.floor(v / scale)
        shift = np.float32(0.37) * row
        tint = _cell_random(u + shift, v, 1.6, scale, seed + np.uint32(3), fp)
        streaks = _fbm(u * 0.25, v * 6.0, seed + np.uint32(4), fp * 6.0, 1.0, 4)
        base = colour[:, None] * (1.0 + 0.12 * tint + 0.15 * streaks)
        gaps = 1.0 - (1.0 - _pulses(v, scale, 0.004, fp)) * (1.0 - _pulses(u + shift, 1.6, 0.004, fp))
        return _mix(base, colour * 0.45, gaps)
    if kind == "concrete":
        stains = _fbm(x, z, seed + np.uint32(5), fp, 0.3, 4)
        base = colour[:, None] * (1.0 + 0.15 * grain + 0.2 * stains)
        joints = 1.0 - (1.0 - _pulses(x, scale, 0.01, fp)) * (1.0 - _pulses(z, scale, 0.01, fp))
        return _mix(base, colour * 0.55, joints)
    # Carpet: mottled loops, fading to flat colour with distance.
    loops = _fbm(x, z, seed + np.uint32(6), fp, 12.0, 3)
    mottle = _fbm(x, z, seed + np.uint32(7), fp, 0.8, 3)
    return colour[:, None] * (1.0 + 0.25 * loops + 0.18 * mottle)


def _floor(rng, builder: _SceneBuilder, spaces: list[Space], seed: int):
    """The floor callable of the scene: one finish per space (doorways take the earlier
    space's), looked up by which space a point lies in."""
    finishes = []
    for _ in spaces:
        kind = _FLOORS[rng.choice(len(_FLOORS), p=[0.35, 0.3, 0.2, 0.15])]
        colour = {
            "tiles": [0.7, 0.68, 0.64],
            "wood": [0.55, 0.38, 0.22],
            "concrete": [0.5, 0.5, 0.48],
            "carpet": [[0.3, 0.32, 0.42], [0.45, 0.25, 0.22], [0.4, 0.4, 0.38]][rng.integers(3)],
        }[kind]
        scale = {"tiles": rng.choice([0.3, 0.45, 0.6]), "wood": rng.uniform(0.12, 0.2), "concrete": 3.0,
                 "carpet": 1.0}[kind]
        finishes.append((kind, builder.jitter(colour, 0.12), float(scale), bool(rng.random() < 0.5)))
    lows = np.stack([space.low for space in spaces]) - WALL_THICKNESS * 2
    highs = np.stack([space.high for space in spaces]) + WALL_THICKNESS * 2
    base_seed = np.uint32(seed * 31 + 17)

    def floor(x: np.ndarray, z: np.ndarray, fp: np.ndarray) -> np.ndarray:
        owner = np.zeros(x.shape, np.int64)
        for index in range(len(spaces) - 1, -1, -1):
            inside = (x >= lows[index, 0]) & (x <= highs[index, 0]) & (z >= lows[index, 1]) & (z <= highs[index, 1])
            owner[inside] = index
        albedo = np.empty((3, x.size), np.float32)
        for index in np.unique(owner):
            rows = np.flatnonzero(owner == index)
            kind, colour, scale, along_x = finishes[index]
            albedo[:, rows] = _floor_albedo(
                kind, x[rows], z[rows], fp[rows], base_seed + np.uint32(index * 13), colour, scale, along_x
            )
        return albedo

    return floor


def _ceiling(rng, seed: int):
    """Suspended ceiling: 0.6 m tiles with a grid and glowing light panels."""
    period = rng.uniform(2.4, 3.6)
    offset = rng.uniform(0, period, 2)
    ceiling_seed = np.uint32(seed * 31 + 19)

    def ceiling(x: np.ndarray, z: np.ndarray, fp: np.ndarray):
        grain = _fbm(x, z, ceiling_seed, fp, 1.0, 3)
        base = _rgb(0.8, 0.8, 0.78) * (1.0 + 0.05 * grain)
        grid = 1.0 - (1.0 - _pulses(x, 0.6, 0.02, fp)) * (1.0 - _pulses(z, 0.6, 0.02, fp))
        out = _mix(base, np.float32([0.5, 0.5, 0.5]), grid)
        light = _pulses(x - offset[0], period, 0.6, fp) * _pulses(z - offset[1], period, 1.2, fp)
        return _mix(out, np.float32([0.92, 0.92, 0.9]), light), _rgb(0.9, 0.9, 0.85) * light

    return ceiling


def build_floor_plan(rng: np.random.Generator, route_length: float, seed: int) -> FloorPlan:
    """A random furnished floor plan whose route is at least ``route_length`` metres long
    (shorter only when the chain of spaces boxes itself in, after many spaces).

    Args:
        rng: the sequence's random generator (layout, furniture, colours, light).
        route_length: metres of route needed.
        seed: the sequence's seed, for texture seeds.
    """
    builder = _SceneBuilder(rng)
    spaces, doorways, route = _layout(rng, route_length)
    ceiling = float(rng.uniform(2.5, 3.2))
    route_points, _, _ = route_samples(route, step=0.05)
    for index, space in enumerate(spaces):
        _walls(builder, rng, space, index, doorways, ceiling)
    _open_door_leaves(builder, rng, doorways, spaces, route_points)
    furnisher = _Furnisher(builder, rng, route_points)
    for space in spaces:
        furnisher.furnish(space, ceiling)
    scene = _Scene(
        **builder.arrays(seed),
        floor=_floor(rng, builder, spaces, seed),
        ceiling_height=ceiling,
        ceiling=_ceiling(rng, seed),
        sun_direction=_sun(rng.uniform(65, 85), rng.uniform(0, 360)),
        sun_colour=np.float32([1.0, 0.97, 0.9]) * rng.uniform(0.35, 0.5),
        ambient_colour=np.float32([0.78, 0.78, 0.76]) * rng.uniform(0.9, 1.1),
        ambient_down=0.7,
        sky_horizon=np.zeros(3, np.float32),
        sky_zenith=np.zeros(3, np.float32),
        haze_colour=np.float32([0.35, 0.35, 0.36]),
        haze_distance=float(rng.uniform(40, 80)),
        seed=seed,
    )
    return FloorPlan(scene=scene, route=route, spaces=spaces, doorways=doorways)
