"""The ``warehouse`` style: a ground robot's camera driving down a long aisle between tall racks.

Held out on purpose: no training recipe of the project uses it, so it measures how a model
(and a fine-tune from it) does on a scene it has not seen (``benchmarks/finetune_synthetic.py
--style warehouse``). It is the ground-robot style's camera, motion and recording (the
robot's distorted lens, planar odometry, the static mount, :mod:`.robot`) in another
world: a straight aisle 1.8-3.2 m wide between pallet racks 4.5-7.5 m tall (blue uprights,
orange beams, pallets of cartons and crates with empty slots), polished concrete with
yellow lane lines, a high dark ceiling with light strips, an end wall 10-22 m beyond the
drive, and a few pallets and cartons at the aisle's edges. The camera rides 0.3-0.6 m
above the floor (0.4 m by default), so depths run from about 0.5 m (the floor ahead) to
about 30 m (the end of the aisle).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dna_depth_core.config import ConfigError

from .robot import RobotSceneConfig
from .room_layout import PATH_CLEARANCE, Space
from .rooms import FloorPlan
from .scene import _Scene, _SceneBuilder, _indoor_light, _span, _sun
from .textures import _CARDBOARD, _CRATE, _METAL, _PAINTED_WALL, _fbm, _interval, _mix, _pulses, _rgb

WAREHOUSE_STYLE = "warehouse"
"""Style name of the warehouse scenes (``--style warehouse``)."""

CAMERA_HEIGHTS = (0.3, 0.6)
"""Metres; the range of camera heights of the style (a ground robot under the racks' beams)."""

_UPRIGHT = 0.08
"""Metres; the side of a rack's upright post (and the depth of its beams)."""


@dataclass
class WarehouseSceneConfig(RobotSceneConfig):
    """A :class:`~dna_depth_core.data.synthetic.robot.RobotSceneConfig` (the same camera,
    lens, mount and image size) driving down a warehouse aisle: slower (0.8 m/s) and lower
    (0.4 m, within :data:`CAMERA_HEIGHTS`) than the robot in its rooms."""

    speed: float = 0.8
    camera_height: float = 0.4

    def __post_init__(self) -> None:
        super().__post_init__()
        if not CAMERA_HEIGHTS[0] <= self.camera_height <= CAMERA_HEIGHTS[1]:
            raise ConfigError(f"camera_height must be in [{CAMERA_HEIGHTS[0]}, {CAMERA_HEIGHTS[1]}] m for style "
                              f"{WAREHOUSE_STYLE!r} (a ground robot), got {self.camera_height}")

    @property
    def style(self) -> str:
        """Always :data:`WAREHOUSE_STYLE`."""
        return WAREHOUSE_STYLE

    def floor_plan(self, rng: np.random.Generator, route_length: float, seed: int) -> FloorPlan:
        """A random aisle (:func:`build_warehouse`) whose route is ``route_length`` metres long."""
        return build_warehouse(rng, route_length, seed)


def _rack(b: _SceneBuilder, rng: np.random.Generator, side: float, inner: float, depth: float,
          z_range: tuple[float, float]) -> None:
    """One run of pallet racking on the ``side`` of the aisle (-1 left, +1 right), its front
    ``inner`` metres off the centre line: bays of uprights and beams, loaded pallets on
    most levels and the floor, some slots empty (the back wall shows through)."""
    outer = inner + depth
    bay = rng.uniform(2.4, 3.0)
    spacing = rng.uniform(1.3, 1.8)
    top = rng.uniform(4.5, 7.5)
    levels = np.arange(0.0, top - 0.8, spacing)  # load levels; 0: pallets on the floor
    upright_colour = b.jitter([0.12, 0.28, 0.6])
    beam_colour = b.jitter([0.88, 0.45, 0.08])
    z = z_range[0]
    while z < z_range[1]:
        for face in (inner, outer - _UPRIGHT):
            b.add(_span(side, face, face + _UPRIGHT), (0.0, top), (z, z + _UPRIGHT), _METAL, upright_colour)
        for level in levels[1:]:
            b.add(_span(side, inner, inner + _UPRIGHT), (level - 0.12, level), (z, z + bay), _METAL, beam_colour)
        for level in levels:
            if rng.random() < 0.2:
                continue  # an empty slot
            start = z + _UPRIGHT + rng.uniform(0.05, 0.2)
            for width in ((bay - 0.4) / 2, (bay - 0.4) / 2) if rng.random() < 0.5 else (bay - 0.35,):
                load = min(spacing - 0.3, rng.uniform(0.8, 1.6))
                front = inner + rng.uniform(0.03, 0.25)
                b.add(_span(side, front, outer - 0.05), (level, level + 0.14), (start, start + width), _CRATE,
                      b.jitter([0.6, 0.46, 0.3], 0.1))
                material = _CARDBOARD if rng.random() < 0.7 else _CRATE
                b.add(_span(side, front + 0.02, outer - 0.07), (level + 0.14, level + 0.14 + load),
                      (start + 0.02, start + width - 0.02), material, b.jitter([0.62, 0.46, 0.28], 0.15))
                start += width + 0.1
        z += bay


def build_warehouse(rng: np.random.Generator, route_length: float, seed: int) -> FloorPlan:
    """A random warehouse aisle along +z with a straight route of ``route_length`` metres
    down its centre line (plan ``x = 0``, from ``z = 0``).

    Args:
        rng: the sequence's random generator (layout, loads, colours, light).
        route_length: metres of route needed.
        seed: the sequence's seed, for texture seeds.
    """
    b = _SceneBuilder(rng)
    half = float(rng.uniform(0.9, 1.6))  # centre line to the rack fronts
    depth = float(rng.uniform(0.9, 1.2))
    ceiling = float(rng.uniform(8.0, 10.0))
    z_start, z_end = -4.0, route_length + float(rng.uniform(10.0, 22.0))
    wall_colour = b.jitter([0.72, 0.72, 0.68])
    for side in (-1.0, 1.0):
        _rack(b, rng, side, half, depth, (z_start, z_end))
        b.add(_span(side, half + depth + 0.4, half + depth + 0.6), (0.0, ceiling), (z_start, z_end), _PAINTED_WALL,
              wall_colour, (0.15, 0.3, 0.55))
    b.add((-half - depth - 0.6, half + depth + 0.6), (0.0, ceiling), (z_end, z_end + 0.3), _PAINTED_WALL,
          wall_colour, (0.6, 0.15, 0.12))
    # Pallets and cartons left at the aisle's edges, clear of the robot's path.
    for _ in range(int(rng.integers(1, 4))):
        side = float(rng.choice([-1.0, 1.0]))
        inner = float(rng.uniform(PATH_CLEARANCE + 0.15, max(PATH_CLEARANCE + 0.2, half - 0.9)))
        outer = min(inner + float(rng.uniform(0.6, 1.0)), half - 0.05)
        z = float(rng.uniform(2.0, z_end - 3.0))
        length = float(rng.uniform(0.8, 1.2))
        b.add(_span(side, inner, outer), (0.0, 0.14), (z, z + length), _CRATE, b.jitter([0.6, 0.46, 0.3], 0.1))
        b.add(_span(side, inner + 0.03, outer - 0.03), (0.14, 0.14 + float(rng.uniform(0.3, 1.2))),
              (z + 0.03, z + length - 0.03), _CARDBOARD, b.jitter([0.62, 0.46, 0.28], 0.15))

    floor_colour = b.jitter([0.58, 0.58, 0.56], 0.06)
    lane = half - float(rng.uniform(0.1, 0.2))
    floor_seed = np.uint32(seed * 31 + 23)

    def warehouse_floor(x: np.ndarray, z: np.ndarray, fp: np.ndarray) -> np.ndarray:
        grain = _fbm(x, z, floor_seed, fp, 1.2, 5)
        tyre_marks = _fbm(x * 4.0, z * 0.3, floor_seed + np.uint32(1), fp, 0.5, 3)
        base = floor_colour[:, None] * (1.0 + 0.08 * grain + 0.15 * tyre_marks)
        joints = 1.0 - (1.0 - _pulses(x, 6.0, 0.01, fp)) * (1.0 - _pulses(z, 6.0, 0.01, fp))
        out = _mix(base, floor_colour * 0.5, joints)
        return _mix(out, np.float32([0.9, 0.72, 0.08]), _interval(np.abs(x), lane - 0.05, lane + 0.05, fp))

    strip_period = float(rng.uniform(4.0, 7.0))

    def warehouse_ceiling(x: np.ndarray, z: np.ndarray, fp: np.ndarray):
        base = _rgb(0.3, 0.31, 0.33) * (1.0 + 0.1 * _fbm(x, z, floor_seed + np.uint32(2), fp, 0.5, 3))
        light = _interval(x, -0.2, 0.2, fp) * _pulses(z, strip_period, 2.0, fp)
        return _mix(base, np.float32([0.95, 0.95, 0.92]), light), _rgb(0.95, 0.95, 0.9) * light

    scene = _Scene(
        **b.arrays(seed),
        floor=warehouse_floor,
        ceiling_height=ceiling,
        ceiling=warehouse_ceiling,
        sun_direction=_sun(rng.uniform(70, 88), rng.uniform(0, 360)),
        sun_colour=np.float32([1.0, 0.97, 0.92]) * rng.uniform(0.3, 0.45),
        ambient_colour=np.float32([0.72, 0.73, 0.75]) * rng.uniform(0.85, 1.05),
        **_indoor_light(),
        haze_distance=float(rng.uniform(70, 120)),
        seed=seed,
    )
    route = np.array([[0.0, 0.0], [0.0, route_length]])
    aisle = Space(low=np.array([-half, z_start]), high=np.array([half, z_end]), kind="corridor")
    return FloorPlan(scene=scene, route=route, spaces=[aisle], doorways=[])
