"""The world of one synthetic sequence: boxes on a ground plane, lighting and sky.

World frame: x right, y down, z forward; the ground is the plane y = 0, so heights above
ground are ``-y``. The scene builders (:mod:`.street`, :mod:`.corridor`, :mod:`.rooms`)
fill a :class:`_SceneBuilder` and return a :class:`_Scene`, which the renderer
(:mod:`.renderer`) ray-casts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .textures import _NUM_PARAMS



@dataclass
class _Scene:
    """Everything needed to render one sequence's world (float32 arrays, B boxes)."""

    box_min: np.ndarray  # (B, 3) metres
    box_max: np.ndarray  # (B, 3) metres
    box_material: np.ndarray  # (B,) int
    box_colour: np.ndarray  # (3, B) albedo
    box_seed: np.ndarray  # (B,) uint32
    box_params: np.ndarray  # (_NUM_PARAMS, B)
    floor: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (x, z, footprint) -> (3, n) albedo
    ceiling_height: float | None  # metres above ground, None = open sky
    # (x, z, footprint) -> (albedo, emitted light), both (3, n)
    ceiling: Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None
    sun_direction: np.ndarray  # (3,) unit vector towards the light
    sun_colour: np.ndarray  # (3,)
    ambient_colour: np.ndarray  # (3,) light from the sky/room on up-facing surfaces
    ambient_down: float  # fraction of it reaching down-facing surfaces
    sky_horizon: np.ndarray  # (3,)
    sky_zenith: np.ndarray  # (3,)
    haze_colour: np.ndarray  # (3,)
    haze_distance: float  # metres for light to fade to 1/e through haze
    seed: int


class _SceneBuilder:
    """Accumulates boxes (``min``/``max`` corners in world metres) with their materials."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.boxes: list[tuple[list[float], list[float], int, np.ndarray, np.ndarray]] = []

    def add(
        self,
        x: tuple[float, float],
        height: tuple[float, float],
        z: tuple[float, float],
        material: int,
        colour,
        params=(),
    ) -> None:
        """Add a box spanning ``x``, ``z`` and heights above ground ``height`` (metres)."""
        p = np.zeros(_NUM_PARAMS, np.float32)
        p[: len(params)] = params
        self.boxes.append(
            ([x[0], -height[1], z[0]], [x[1], -height[0], z[1]], material, np.asarray(colour, np.float32), p)
        )

    def jitter(self, colour, amount: float = 0.08) -> np.ndarray:
        """``colour`` with a random brightness and hue shift (keeps scenes varied)."""
        scale = self.rng.uniform(1 - amount, 1 + amount) * self.rng.uniform(1 - amount / 2, 1 + amount / 2, 3)
        return np.clip(np.asarray(colour, np.float32) * scale, 0.02, 1.0)

    def window_params(self, ground_floor: float, shop: bool) -> tuple:
        """Facade parameters for :func:`_windows`."""
        rng = self.rng
        period = rng.uniform(2.4, 3.6)
        return (
            period,
            rng.uniform(0.45, 0.65) * period,
            rng.uniform(2.9, 3.5),
            rng.uniform(1.3, 1.8),
            ground_floor,
            rng.uniform(0, period),
            float(shop),
            *rng.uniform(0.25, 0.85, 3),
        )

    def arrays(self, seed: int) -> dict:
        """The boxes as :class:`_Scene` array fields, with a distinct texture seed each."""
        mins, maxs, materials, colours, params = zip(*self.boxes, strict=True)
        count = len(self.boxes)
        seeds = (np.arange(count, dtype=np.uint64) * 2654435761 + seed * 97 + 12345) % (1 << 32)
        return dict(
            box_min=np.asarray(mins, np.float32),
            box_max=np.asarray(maxs, np.float32),
            box_material=np.asarray(materials, np.int32),
            box_colour=np.stack(colours, 1).astype(np.float32),
            box_seed=seeds.astype(np.uint32),
            box_params=np.stack(params, 1).astype(np.float32),
        )


def _indoor_light() -> dict:
    """The :class:`_Scene` fields every indoor scene shares: no sky, grey haze, and 70 % of
    the ambient light reaching down-facing surfaces (light bounces off floor and walls)."""
    return dict(
        ambient_down=0.7,
        sky_horizon=np.zeros(3, np.float32),
        sky_zenith=np.zeros(3, np.float32),
        haze_colour=np.float32([0.35, 0.35, 0.36]),
    )

def _span(side: float, inner: float, outer: float) -> tuple[float, float]:
    """The x interval from ``inner`` to ``outer`` metres off the centre line on the left
    (``side`` -1) or right (``side`` +1)."""
    return (min(side * inner, side * outer), max(side * inner, side * outer))


def _sun(elevation_deg: float, azimuth_deg: float) -> np.ndarray:
    """(3,) float32 unit world vector towards a sun at this elevation and azimuth
    (degrees; azimuth 0 is straight down the street, 90 to the right)."""
    el, az = math.radians(elevation_deg), math.radians(azimuth_deg)
    return np.array([math.cos(el) * math.sin(az), -math.sin(el), math.cos(el) * math.cos(az)], np.float32)
