"""The ``corridor`` style's scene: an indoor aisle with walls, doors, pillars and crates.

Tiled concrete floor, painted and tiled walls with recessed doors, pillars, stacked
crates, pipes and a ceiling with lights; no sky. The camera walks along the aisle at
about 2 m/s.
"""

from __future__ import annotations

import numpy as np

from .scene import _Scene, _SceneBuilder, _indoor_light, _span, _sun
from .textures import (
    _CARDBOARD,
    _CRATE,
    _DOOR,
    _METAL,
    _PAINTED_WALL,
    _PILLAR,
    _TILED_WALL,
    _cell_random,
    _fbm,
    _interval,
    _mix,
    _pulses,
    _rgb,
)


_WALL_COLOURS = np.float32(
    [[0.85, 0.83, 0.75], [0.7, 0.78, 0.82], [0.82, 0.8, 0.62], [0.72, 0.8, 0.7], [0.88, 0.72, 0.62], [0.75, 0.75, 0.8]]
)


def _build_corridor(rng: np.random.Generator, travel: float, seed: int) -> tuple[_Scene, float]:
    """An indoor aisle: returns the scene and the x of the camera path's centre (0)."""
    b = _SceneBuilder(rng)
    half = rng.uniform(1.9, 2.8)
    ceiling = float(rng.uniform(2.8, 3.8))
    z_start, z_end = -12.0, travel + rng.uniform(15.0, 30.0)

    for side in (-1.0, 1.0):

        # Walls in zones of one finish, broken by recessed doors.
        z = z_start
        zone_end = z
        while z < z_end + 2:
            if z >= zone_end:
                zone_end = z + rng.uniform(6.0, 14.0)
                tiled = rng.random() < 0.35
                colour = b.jitter(_WALL_COLOURS[rng.integers(len(_WALL_COLOURS))])
                stripe = b.jitter(
                    [[0.2, 0.35, 0.6], [0.6, 0.15, 0.12], [0.2, 0.45, 0.3], [0.3, 0.3, 0.32]][rng.integers(4)]
                )
                params = (rng.choice([0.15, 0.2, 0.3]),) if tiled else tuple(stripe)
            if rng.random() < 0.25:
                width = rng.uniform(0.9, 1.4)
                b.add(
                    _span(side, half + 0.3, half + 0.6),
                    (0, ceiling),
                    (z, z + width),
                    _DOOR,
                    b.jitter([0.45, 0.3, 0.18], 0.2),
                )
                b.add(
                    _span(side, half, half + 0.6),
                    (2.2, ceiling),
                    (z, z + width),
                    _TILED_WALL if tiled else _PAINTED_WALL,
                    colour,
                    params,
                )
                z += width
            else:
                length = rng.uniform(1.5, 5.0)
                b.add(
                    _span(side, half, half + 0.6),
                    (0, ceiling),
                    (z, z + length),
                    _TILED_WALL if tiled else _PAINTED_WALL,
                    colour,
                    params,
                )
                z += length
        b.add(
            _span(side, half + 0.6, half + 1.0),
            (0, ceiling),
            (z_start, z_end + 3),
            _PAINTED_WALL,
            [0.5, 0.5, 0.5],
            (0.3, 0.3, 0.3),
        )
        # Pillars, and stacks of crates and cartons between them.
        pillar_z = z_start + rng.uniform(0, 4)
        pillar_colour = b.jitter([0.62, 0.6, 0.57])
        while pillar_z < z_end:
            b.add(_span(side, half - 0.4, half), (0, ceiling), (pillar_z, pillar_z + 0.4), _PILLAR, pillar_colour)
            next_pillar = pillar_z + rng.uniform(5.0, 8.0)
            z = pillar_z + 0.6
            while z < next_pillar - 1.2:
                size = rng.uniform(0.4, min(1.1, half - 1.0))
                if rng.random() < 0.55:
                    material = _CRATE if rng.random() < 0.5 else _CARDBOARD
                    colour = b.jitter([0.62, 0.47, 0.3] if material == _CRATE else [0.6, 0.45, 0.28], 0.12)
                    bottom = 0.0
                    for level in range(int(rng.integers(1, 4))):
                        s = size * (0.85**level)
                        h = s * rng.uniform(0.7, 1.1)
                        b.add(
                            _span(side, half - 0.05 - s, half - 0.05),
                            (bottom, bottom + h),
                            (z, z + s),
                            material,
                            colour,
                        )
                        bottom += h
                z += size + rng.uniform(0.1, 0.8)
            pillar_z = next_pillar
    for _ in range(int(rng.integers(1, 4))):
        x = rng.uniform(-half + 0.3, half - 0.3)
        thickness = rng.uniform(0.08, 0.22)
        drop = rng.uniform(0.05, 0.3)
        b.add(
            (x, x + thickness),
            (ceiling - drop - thickness, ceiling - drop),
            (z_start, z_end),
            _METAL,
            b.jitter([0.5, 0.52, 0.55]),
        )
    b.add(
        (-half - 2, half + 2),
        (0, ceiling),
        (z_end, z_end + 1),
        _PAINTED_WALL,
        b.jitter(_WALL_COLOURS[rng.integers(6)]),
        (0.6, 0.15, 0.12),
    )

    floor_colour = b.jitter([0.55, 0.55, 0.52])
    tile = float(rng.choice([0.6, 1.0, 1.2]))
    lane_x = half - rng.uniform(0.6, 0.9)
    floor_seed = np.uint32(seed * 31 + 11)

    def corridor_floor(x: np.ndarray, z: np.ndarray, fp: np.ndarray) -> np.ndarray:
        grain = _fbm(x, z, floor_seed, fp, 1.5, 5)
        stains = _fbm(x, z, floor_seed + np.uint32(1), fp, 0.25, 3)
        tint = _cell_random(x, z, tile, tile, floor_seed + np.uint32(2), fp)
        base = floor_colour[:, None] * (1.0 + 0.1 * grain + 0.2 * stains + 0.06 * tint)
        joints = 1.0 - (1.0 - _pulses(x, tile, 0.01, fp)) * (1.0 - _pulses(z, tile, 0.01, fp))
        out = _mix(base, floor_colour * 0.5, joints)
        safety = _interval(np.abs(x), lane_x - 0.05, lane_x + 0.05, fp)
        return _mix(out, np.float32([0.85, 0.7, 0.1]), safety)

    light_period = rng.uniform(2.5, 4.0)

    def corridor_ceiling(x: np.ndarray, z: np.ndarray, fp: np.ndarray) -> np.ndarray:
        grain = _fbm(x, z, floor_seed + np.uint32(3), fp, 1.0, 3)
        base = _rgb(0.78, 0.78, 0.76) * (1.0 + 0.05 * grain)
        grid = 1.0 - (1.0 - _pulses(x, 0.6, 0.02, fp)) * (1.0 - _pulses(z, 0.6, 0.02, fp))
        out = _mix(base, np.float32([0.45, 0.45, 0.45]), grid)
        light = _interval(x, -0.3, 0.3, fp) * _pulses(z, light_period, 1.2, fp)
        glow = _rgb(0.95, 0.95, 0.9) * light
        return _mix(out, np.float32([0.9, 0.9, 0.88]), light), glow

    scene = _Scene(
        **b.arrays(seed),
        floor=corridor_floor,
        ceiling_height=ceiling,
        ceiling=corridor_ceiling,
        sun_direction=_sun(rng.uniform(60, 80), rng.uniform(0, 360)),
        sun_colour=np.float32([1.0, 0.97, 0.9]) * rng.uniform(0.45, 0.6),
        ambient_colour=np.float32([0.55, 0.56, 0.58]) * rng.uniform(0.8, 1.0),
        **_indoor_light(),
        haze_distance=float(rng.uniform(50, 90)),
        seed=seed,
    )
    return scene, 0.0
