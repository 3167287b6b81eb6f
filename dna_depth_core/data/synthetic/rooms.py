"""Indoor floor plans for the ground-robot style: rooms and corridors joined by doorways, with furniture.

A floor plan is a chain of axis-aligned spaces (rooms 3.5-7 m across, corridors 1.6-2.6 m
wide) behind 0.1 m walls; each space opens into the next through a doorway straight ahead
or in a side wall, so the robot's path runs forward with left and right turns. Spaces
never overlap and every wall is closed except at the doorways, so every ray hits something
(no sky indoors). The robot's route is the polyline through the doorways (:mod:`.room_layout`); furniture
(tables with legs, chairs, stacked cartons and crates, cabinets, potted plants, bins,
pillars) and open door leaves are placed only where they keep 0.35 m clear of it, so the
camera passes obstacles at close range without driving through them.

Geometry uses the world frame of :mod:`.scene` (x right, y down,
z forward, floor at y = 0); plan coordinates are ``(x, z)`` metres. Textures, materials,
lighting and rendering are the generator's own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .corridor import _WALL_COLOURS
from .room_layout import DOOR_HEIGHT, PATH_CLEARANCE, WALL_THICKNESS, Doorway, Space, _layout, route_samples
from .scene import _Scene, _SceneBuilder, _indoor_light, _sun
from .textures import (
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
    _cell_random,
    _fbm,
    _mix,
    _pulses,
    _rgb,
)

_FLOORS = ("tiles", "wood", "concrete", "carpet")


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
        **_indoor_light(),
        haze_distance=float(rng.uniform(40, 80)),
        seed=seed,
    )
    return FloorPlan(scene=scene, route=route, spaces=spaces, doorways=doorways)
