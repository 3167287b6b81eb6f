"""The ``street`` style's scene: a straight street with facades, parked cars and trees.

Asphalt road with lane markings, kerbs and pavements, brick and plaster facades with
windows and shopfronts, parked cars and vans, lamp posts, trees and a sky with clouds;
sunlit with cast shadows. The camera drives down its lane at about 8 m/s.
"""

from __future__ import annotations

import numpy as np

from .scene import _Scene, _SceneBuilder, _span, _sun
from .textures import (
    _BARK,
    _BRICK,
    _CAR_BODY,
    _CAR_CABIN,
    _CARDBOARD,
    _CONCRETE,
    _FOLIAGE,
    _METAL,
    _PLASTER,
    _cell_random,
    _fbm,
    _interval,
    _mix,
    _pulses,
    _rgb,
)


_FACADE_COLOURS = np.float32(
    [
        [0.55, 0.27, 0.2],  # red brick
        [0.62, 0.42, 0.3],  # brown brick
        [0.7, 0.62, 0.5],  # sandstone
        [0.82, 0.78, 0.68],  # cream
        [0.6, 0.63, 0.66],  # grey
        [0.78, 0.6, 0.45],  # ochre
        [0.55, 0.6, 0.5],  # sage
        [0.85, 0.85, 0.82],  # white
    ]
)
_CAR_COLOURS = np.float32(
    [
        [0.85, 0.85, 0.85],
        [0.55, 0.56, 0.58],
        [0.1, 0.1, 0.11],
        [0.6, 0.08, 0.07],
        [0.1, 0.2, 0.5],
        [0.15, 0.3, 0.2],
        [0.75, 0.72, 0.6],
        [0.25, 0.27, 0.3],
    ]
)


def _build_street(rng: np.random.Generator, travel: float, seed: int) -> tuple[_Scene, float]:
    """A straight street: returns the scene and the x of the camera's lane centre."""
    b = _SceneBuilder(rng)
    lane = 3.2
    parking = 2.2
    road_half = lane + parking + rng.uniform(-0.2, 0.6)
    kerb = 0.25
    pavement = rng.uniform(2.2, 4.0)
    frontage = road_half + kerb + pavement
    z_start, z_end = -40.0, travel + rng.uniform(90.0, 140.0)

    for side in (-1.0, 1.0):

        b.add(
            _span(side, road_half, road_half + kerb),
            (0.0, 0.14),
            (z_start, z_end),
            _CONCRETE,
            b.jitter([0.62, 0.61, 0.58]),
        )
        # Front row of buildings, mostly low-rise, with alleys, setbacks and hedged plazas.
        z = z_start
        while z < z_end:
            length = rng.uniform(8.0, 28.0)
            if rng.random() < 0.12:
                hedge = b.jitter([0.2, 0.34, 0.14], 0.15)
                b.add(
                    _span(side, frontage, frontage + 1.0), (0, rng.uniform(0.9, 1.8)), (z, z + length), _FOLIAGE, hedge
                )
                z += length
                continue
            setback = rng.uniform(0.3, 1.8) if rng.random() < 0.35 else 0.0
            height = rng.uniform(4.5, 9.0) if rng.random() < 0.6 else rng.uniform(9.0, 18.0)
            ground_floor = rng.uniform(3.4, 4.4)
            material = _BRICK if rng.random() < 0.5 else _PLASTER
            colour = b.jitter(_FACADE_COLOURS[rng.integers(len(_FACADE_COLOURS))])
            params = b.window_params(ground_floor, shop=rng.random() < 0.5)
            b.add(
                _span(side, frontage + setback, frontage + setback + rng.uniform(8, 14)),
                (0, height),
                (z, z + length),
                material,
                colour,
                params,
            )
            z += length + (rng.uniform(3.0, 8.0) if rng.random() < 0.15 else 0.0)
        # Continuous back row so nothing open lies beyond the alleys.
        z = z_start
        while z < z_end + 30:
            length = rng.uniform(15.0, 40.0)
            colour = b.jitter(_FACADE_COLOURS[rng.integers(len(_FACADE_COLOURS))])
            params = b.window_params(rng.uniform(3.4, 4.4), shop=False)
            material = _BRICK if rng.random() < 0.4 else _PLASTER
            b.add(
                _span(side, frontage + 16, frontage + 40),
                (0, rng.uniform(6, 22)),
                (z, z + length),
                material,
                colour,
                params,
            )
            z += length
        # Parked cars and vans in the parking strip.
        z = z_start + rng.uniform(0, 8)
        while z < z_end - 15:
            x_centre = side * (road_half - parking / 2 + rng.uniform(-0.15, 0.15))
            colour = b.jitter(_CAR_COLOURS[rng.integers(len(_CAR_COLOURS))], 0.05)
            if rng.random() < 0.15:
                length, width, height = rng.uniform(5.0, 6.5), rng.uniform(1.9, 2.2), rng.uniform(2.0, 2.6)
                b.add((x_centre - width / 2, x_centre + width / 2), (0, height), (z, z + length), _CAR_BODY, colour)
            else:
                length, width = rng.uniform(3.8, 4.9), rng.uniform(1.7, 1.9)
                body_h = rng.uniform(0.85, 1.05)
                b.add((x_centre - width / 2, x_centre + width / 2), (0, body_h), (z, z + length), _CAR_BODY, colour)
                cabin_l = length * rng.uniform(0.45, 0.6)
                cabin_z = z + length * rng.uniform(0.2, 0.3)
                cabin_w = width * 0.88
                b.add(
                    (x_centre - cabin_w / 2, x_centre + cabin_w / 2),
                    (body_h, body_h + rng.uniform(0.45, 0.6)),
                    (cabin_z, cabin_z + cabin_l),
                    _CAR_CABIN,
                    colour,
                )
            gap = rng.uniform(1.0, 3.0) if rng.random() < 0.6 else rng.uniform(6.0, 25.0)
            z += length + gap
        # Street furniture on the pavement: lamp posts, trees, bins and boxes.
        post_x = road_half + kerb + 0.5
        z = z_start + rng.uniform(0, 20)
        while z < z_end:
            post_h = rng.uniform(5.0, 6.5)
            grey = b.jitter([0.3, 0.32, 0.33])
            b.add(_span(side, post_x, post_x + 0.16), (0, post_h), (z, z + 0.16), _METAL, grey)
            b.add(_span(side, post_x - 1.3, post_x + 0.16), (post_h - 0.15, post_h), (z, z + 0.16), _METAL, grey)
            z += rng.uniform(20.0, 32.0)
        if pavement > 2.8:
            tree_x = road_half + kerb + pavement * 0.55
            z = z_start + rng.uniform(0, 10)
            while z < z_end:
                if rng.random() < 0.6:
                    trunk_h = rng.uniform(2.0, 3.0)
                    crown = rng.uniform(1.6, 2.6)
                    b.add(
                        _span(side, tree_x - 0.15, tree_x + 0.15),
                        (0, trunk_h),
                        (z - 0.15, z + 0.15),
                        _BARK,
                        b.jitter([0.32, 0.24, 0.17]),
                    )
                    b.add(
                        _span(side, tree_x - crown / 2, tree_x + crown / 2),
                        (trunk_h - 0.3, trunk_h + rng.uniform(1.5, 2.8)),
                        (z - crown / 2, z + crown / 2),
                        _FOLIAGE,
                        b.jitter([0.22, 0.38, 0.15], 0.15),
                    )
                z += rng.uniform(9.0, 16.0)
        for _ in range(int(rng.integers(4, 10))):
            size = rng.uniform(0.5, 1.3)
            x_inner = frontage - size - rng.uniform(0.05, 0.6)
            z = rng.uniform(z_start, z_end - 10)
            palette = [[0.2, 0.35, 0.22], [0.3, 0.3, 0.32], [0.55, 0.42, 0.25], [0.6, 0.2, 0.1]]
            material = _CARDBOARD if rng.random() < 0.3 else _METAL
            b.add(
                _span(side, x_inner, x_inner + size),
                (0, size * rng.uniform(0.8, 1.4)),
                (z, z + size * rng.uniform(0.8, 1.6)),
                material,
                b.jitter(palette[rng.integers(4)]),
            )

    # A building closing the street far ahead bounds every ray that misses the sides.
    b.add(
        (-frontage - 60, frontage + 60),
        (0, rng.uniform(8, 16)),
        (z_end, z_end + 25),
        _PLASTER,
        b.jitter(_FACADE_COLOURS[rng.integers(len(_FACADE_COLOURS))]),
        b.window_params(4.0, shop=True),
    )

    asphalt = float(rng.uniform(0.24, 0.34))
    slab = b.jitter([0.6, 0.58, 0.55])
    dash, gap = rng.uniform(2.5, 3.5), rng.uniform(5.0, 7.0)
    floor_seed = np.uint32(seed * 31 + 7)

    def street_floor(x: np.ndarray, z: np.ndarray, fp: np.ndarray) -> np.ndarray:
        ax = np.abs(x)
        grain = _fbm(x, z, floor_seed, fp, 1.0, 5)
        patches = _fbm(x, z, floor_seed + np.uint32(1), fp, 0.1, 2)
        road = asphalt * (1.0 + 0.22 * grain + 0.25 * patches)
        out = _rgb(1.0, 1.0, 1.04) * road
        paint = np.float32([0.85, 0.85, 0.8])
        centre = _interval(x, -0.06, 0.06, fp) * _pulses(z, dash + gap, dash, fp)
        parking_line = _interval(ax, lane - 0.07, lane + 0.07, fp) * _pulses(z, 2.0, 1.0, fp)
        edge = _interval(ax, road_half - 0.3, road_half - 0.18, fp)
        out = _mix(out, paint, np.maximum(np.maximum(centre, parking_line), edge) * (0.85 + 0.15 * grain))
        # Pavement slabs with joints and per-slab tint beyond the kerb.
        tint = _cell_random(x, z, 0.6, 0.6, floor_seed + np.uint32(2), fp)
        joints = 1.0 - (1.0 - _pulses(x, 0.6, 0.015, fp)) * (1.0 - _pulses(z, 0.6, 0.015, fp))
        slabs = slab[:, None] * (1.0 + 0.08 * tint + 0.15 * grain)
        slabs = _mix(slabs, slab * 0.6, joints)
        return _mix(out, slabs, _interval(ax, road_half, 1e4, fp))

    elevation = rng.uniform(30, 65)
    scene = _Scene(
        **b.arrays(seed),
        floor=street_floor,
        ceiling_height=None,
        ceiling=None,
        sun_direction=_sun(elevation, rng.uniform(0, 360)),
        sun_colour=np.float32([1.0, 0.94, 0.84]) * rng.uniform(0.75, 0.95),
        ambient_colour=np.float32([0.5, 0.55, 0.65]) * rng.uniform(0.75, 0.95),
        ambient_down=0.25,
        sky_horizon=b.jitter([0.78, 0.84, 0.9], 0.05),
        sky_zenith=b.jitter([0.35, 0.55, 0.85], 0.1),
        haze_colour=np.float32([0.75, 0.8, 0.86]),
        haze_distance=float(rng.uniform(400, 900)),
        seed=seed,
    )
    return scene, (lane / 2) * rng.uniform(0.85, 1.15)
