"""Synthetic driving-like sequences with exact depth, poses and intrinsics.

Scenes are made of a ground plane (and, indoors, a ceiling plane), axis-aligned boxes
(buildings, parked cars, kerbs, lamp posts, trees, crates, pillars) and a sky at
infinity. Frames are rendered by vectorised numpy ray casting: every pixel's ray is
tested against the planes and against the boxes whose projection covers it, so depth is
exact. Textures are procedural (multi-octave value noise, bricks, tiles, windows, lane
markings) and evaluated in surface coordinates, so they stick to surfaces as the camera
moves; each pattern is box-filtered over the pixel footprint, which removes the aliasing
that would otherwise flicker from frame to frame. Lighting is a directional sun with
cast shadows plus a sky ambient that depends on the surface orientation. Nothing is
view-dependent, so a surface point has the same colour in every frame, which is what
the photometric loss of self-supervised training assumes.

World frame: x right, y down, z forward along the street; the ground is the plane y = 0,
so heights above ground are ``-y``. Camera frame: x right, y down, z along the optical
axis. Pixel (row v, column u) sits at pixel coordinates (u, v) (integer centres), the
convention of the training code's warping with ``align_corners=True``.

Two styles: ``"street"`` (asphalt road with lane markings, pavements, brick and plaster
facades with windows, parked cars and vans, lamp posts, trees, sky; 8 m/s) and
``"corridor"`` (an indoor aisle: tiled concrete floor, painted and tiled walls with doors,
pillars, stacked crates, pipes and a ceiling with lights; no sky; 2 m/s). The ground-robot
style, furnished rooms seen through a distorting lens, builds on this renderer in
:mod:`dna_depth_core.data.synthetic_robot`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

if TYPE_CHECKING:
    from .synthetic_robot import RobotSceneConfig

STYLES = ("street", "corridor")

_STYLE_SPEED = {"street": 8.0, "corridor": 2.0}
_STYLE_CAMERA_HEIGHT = {"street": 1.65, "corridor": 1.2}

# Near clipping distance (metres along the optical axis) for box culling.
_NEAR = 0.05


@dataclass
class SyntheticSceneConfig:
    """How synthetic sequences look and how the camera moves.

    Attributes:
        style: scene style, one of :data:`STYLES` (``"street"`` or ``"corridor"``).
        height: image height in pixels (192, the KITTI training height).
        width: image width in pixels (640).
        frames_per_sequence: frames rendered per sequence (30; at least 3).
        fps: frame rate in Hz; timestamps are ``i / fps`` seconds (10, as KITTI).
        speed: mean forward camera speed in m/s; ``None`` (default) picks the style's
            speed, 8 m/s for ``"street"`` and 2 m/s for ``"corridor"``. Resolved to a
            float on construction.
        camera_height: mean camera height above the ground in metres; ``None`` (default)
            picks 1.65 m for ``"street"`` (KITTI's camera) and 1.2 m for ``"corridor"``.
        fx_ratio: horizontal focal length as a fraction of the width (0.58, KITTI).
        fy_ratio: vertical focal length as a fraction of the height (1.92, KITTI).
        cx_ratio: principal point column as a fraction of the width (0.5).
        cy_ratio: principal point row as a fraction of the height (0.5).
        yaw_amplitude_deg: amplitude of the smooth heading wobble in degrees (3), on top
            of the heading that follows the lateral drift of the path.
        pitch_amplitude_deg: amplitude of the smooth pitch wobble in degrees (1).
    """

    style: str = "street"
    height: int = 192
    width: int = 640
    frames_per_sequence: int = 30
    fps: float = 10.0
    speed: float | None = None
    camera_height: float | None = None
    fx_ratio: float = 0.58
    fy_ratio: float = 1.92
    cx_ratio: float = 0.5
    cy_ratio: float = 0.5
    yaw_amplitude_deg: float = 3.0
    pitch_amplitude_deg: float = 1.0

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"unknown synthetic scene style {self.style!r}; valid styles: {', '.join(STYLES)}")
        if self.speed is None:
            self.speed = _STYLE_SPEED[self.style]
        if self.camera_height is None:
            self.camera_height = _STYLE_CAMERA_HEIGHT[self.style]
        if self.height < 8 or self.width < 8:
            raise ValueError(f"image size must be at least 8 x 8 pixels, got height={self.height} width={self.width}")
        if self.frames_per_sequence < 3:
            raise ValueError(
                f"frames_per_sequence must be >= 3 (a triplet needs both neighbours), got {self.frames_per_sequence}"
            )
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if not 0 < self.speed <= 40:
            raise ValueError(f"speed must be in (0, 40] m/s, got {self.speed}")
        max_height = 3.0 if self.style == "street" else 2.0
        if not 0.3 <= self.camera_height <= max_height:
            raise ValueError(
                f"camera_height must be in [0.3, {max_height}] m for style {self.style!r}, got {self.camera_height}"
            )
        if not (self.fx_ratio > 0 and self.fy_ratio > 0):
            raise ValueError(f"fx_ratio and fy_ratio must be > 0, got {self.fx_ratio} and {self.fy_ratio}")
        if not (0 <= self.cx_ratio <= 1 and 0 <= self.cy_ratio <= 1):
            raise ValueError(f"cx_ratio and cy_ratio must be in [0, 1], got {self.cx_ratio} and {self.cy_ratio}")
        if not (0 <= self.yaw_amplitude_deg <= 20 and 0 <= self.pitch_amplitude_deg <= 10):
            raise ValueError(
                "yaw_amplitude_deg must be in [0, 20] and pitch_amplitude_deg in [0, 10], got "
                f"{self.yaw_amplitude_deg} and {self.pitch_amplitude_deg}"
            )

    def intrinsics(self) -> np.ndarray:
        """The (3, 3) float32 pinhole matrix in pixels for ``height`` x ``width`` frames."""
        return np.array(
            [
                [self.fx_ratio * self.width, 0.0, self.cx_ratio * self.width],
                [0.0, self.fy_ratio * self.height, self.cy_ratio * self.height],
                [0.0, 0.0, 1.0],
            ],
            dtype=np.float32,
        )


@dataclass
class SyntheticSequence:
    """One rendered sequence with exact ground truth.

    Attributes:
        images: uint8 ``(N, H, W, 3)`` RGB frames.
        depths: float32 ``(N, H, W)`` depth along the optical axis in metres; 0 where
            the ray sees only sky (unknown, the KITTI convention).
        intrinsics: float32 ``(3, 3)`` pinhole matrix in pixels.
        poses: float32 ``(N, 4, 4)`` camera-to-world transforms (camera x right, y down,
            z forward; world x right, y down, z along the street, ground at y = 0).
        timestamps: float64 ``(N,)`` seconds since the first frame.
    """

    images: np.ndarray
    depths: np.ndarray
    intrinsics: np.ndarray
    poses: np.ndarray
    timestamps: np.ndarray


# --------------------------------------------------------------------------------------
# Procedural texture primitives. Coordinates are metres on a surface; ``footprint`` is
# the size in metres that one pixel covers there, used to box-filter every pattern.
# --------------------------------------------------------------------------------------


# Odd multipliers of the lattice hash; the product's high bits are the hashed value.
_HASH_X, _HASH_Y, _HASH_MIX = np.uint32(0x27D4EB2D), np.uint32(0x165667B1), np.uint32(0x2C1B3C6D)


def _hash(ix: np.ndarray, iy: np.ndarray, seed: np.ndarray | int) -> np.ndarray:
    """Deterministic float32 in [0, 1) for int32 lattice points (broadcastable shapes).

    A multiplicative hash: cheap, and random enough for texture.
    """
    hx = ix.view(np.uint32) * _HASH_X ^ np.asarray(seed, np.uint32)
    return ((hx ^ iy.view(np.uint32) * _HASH_Y) * _HASH_MIX).astype(np.float32) * np.float32(1.0 / 2**32)


def _detail_weight(feature_size: np.ndarray | float, footprint: np.ndarray) -> np.ndarray:
    """How much of a feature of this size (metres) survives filtering: 1 when it spans
    four pixels or more, 0 at two pixels or fewer, linear in between."""
    return np.clip(2.0 - 4.0 * footprint / feature_size, 0.0, 1.0).astype(np.float32)


def _value_noise(x: np.ndarray, y: np.ndarray, seed: np.ndarray | int) -> np.ndarray:
    """Smoothly interpolated lattice noise in [-1, 1], one lattice cell per unit.

    Lattice values are :func:`_hash` of the cell corners and ``seed`` (scalar or per
    point), with the corner products shared.
    """
    x0 = np.floor(x)
    y0 = np.floor(y)
    tx = x - x0
    ty = y - y0
    sx = tx * tx * (3.0 - 2.0 * tx)
    sy = ty * ty * (3.0 - 2.0 * ty)
    hx0 = x0.astype(np.int32).view(np.uint32) * _HASH_X
    hx1 = (hx0 + _HASH_X) ^ np.asarray(seed, np.uint32)
    hx0 ^= np.asarray(seed, np.uint32)
    hy0 = y0.astype(np.int32).view(np.uint32) * _HASH_Y
    hy1 = hy0 + _HASH_Y

    def corner(hx: np.ndarray, hy: np.ndarray) -> np.ndarray:
        return ((hx ^ hy) * _HASH_MIX).astype(np.float32)

    a, b, c, d = corner(hx0, hy0), corner(hx1, hy0), corner(hx0, hy1), corner(hx1, hy1)
    top = a + (b - a) * sx
    bottom = c + (d - c) * sx
    return (top + (bottom - top) * sy) * np.float32(2.0 / 2**32) - 1.0


def _fbm(
    x: np.ndarray,
    y: np.ndarray,
    seed: np.ndarray | int,
    footprint: np.ndarray,
    frequency: float,
    octaves: int,
    gain: float = 0.5,
) -> np.ndarray:
    """Fractal noise (sum of value-noise octaves), roughly in [-1, 1].

    Each octave fades out where its wavelength nears the pixel footprint, so distant
    surfaces turn smooth instead of aliasing; it is evaluated only where it survives.
    Octave k has ``frequency * 2**k`` cycles per metre and is rotated to hide the
    lattice axes.
    """
    total = np.zeros_like(x)
    per_point_seed = np.ndim(seed) > 0
    amplitude = 1.0
    norm = 0.0
    for octave in range(octaves):
        freq = frequency * 2.0**octave
        norm += amplitude
        weight = _detail_weight(1.0 / freq, footprint)
        active = np.flatnonzero(weight)
        amplitude_now = amplitude
        amplitude *= gain
        if len(active) == 0:
            continue
        angle = 0.7 * octave
        cos, sin = np.float32(math.cos(angle) * freq), np.float32(math.sin(angle) * freq)
        octave_seed = np.asarray(seed, np.uint32) + np.uint32(octave * 101)
        if len(active) < 0.7 * x.size:
            xs, ys, w = x[active], y[active], weight[active]
            octave_seed = octave_seed[active] if per_point_seed else octave_seed
        else:
            active, xs, ys, w = slice(None), x, y, weight
        xr = xs * cos - ys * sin + np.float32(17.3 * octave)
        yr = xs * sin + ys * cos - np.float32(31.7 * octave)
        total[active] += (amplitude_now * w) * _value_noise(xr, yr, octave_seed)
    return total / np.float32(norm)


def _pulses(x: np.ndarray, period: np.ndarray | float, width: np.ndarray | float, footprint: np.ndarray) -> np.ndarray:
    """Box-filtered periodic pulses: the fraction of the footprint-wide window around ``x``
    covered by the intervals ``[k * period, k * period + width)``, in [0, 1]."""
    filter_width = np.maximum(footprint, 1e-4)

    def integral(z: np.ndarray) -> np.ndarray:
        cycles = np.floor(z / period)
        return cycles * width + np.minimum(z - cycles * period, width)

    half = filter_width * 0.5
    return np.clip((integral(x + half) - integral(x - half)) / filter_width, 0.0, 1.0)


def _interval(x: np.ndarray, low: np.ndarray | float, high: np.ndarray | float, footprint: np.ndarray) -> np.ndarray:
    """Box-filtered indicator of ``low <= x < high``, in [0, 1]."""
    filter_width = np.maximum(footprint, 1e-4)
    overlap = np.minimum(x + filter_width * 0.5, high) - np.maximum(x - filter_width * 0.5, low)
    return np.clip(overlap / filter_width, 0.0, 1.0)


def _cell_random(
    x: np.ndarray,
    y: np.ndarray,
    cell_x: np.ndarray | float,
    cell_y: np.ndarray | float,
    seed: np.ndarray | int,
    footprint: np.ndarray,
) -> np.ndarray:
    """One random value in [-1, 1] per ``cell_x`` x ``cell_y`` cell (metres), faded to 0
    where cells shrink below a few pixels."""
    value = _hash(np.floor(x / cell_x).astype(np.int32), np.floor(y / cell_y).astype(np.int32), seed) * 2.0 - 1.0
    return value * _detail_weight(np.minimum(cell_x, cell_y), footprint)


def _rgb(red: float, green: float, blue: float) -> np.ndarray:
    """A colour constant shaped (3, 1), to broadcast against (3, n) colour arrays."""
    return np.float32([[red], [green], [blue]])


def _mix(base: np.ndarray, colour: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """Blend (3, n) ``base`` towards ``colour`` ((3,), (3, 1) or (3, n)) by (n,) ``amount``
    in [0, 1]. Colours are channel-first throughout: per-channel rows stay contiguous."""
    colour = np.asarray(colour, dtype=np.float32)
    if colour.ndim == 1:
        colour = colour[:, None]
    return base + (colour - base) * amount


# --------------------------------------------------------------------------------------
# Materials: functions of the visible surface points that return (3, n) albedo.
# --------------------------------------------------------------------------------------


@dataclass
class _Surface:
    """Visible points on the faces of boxes of one material, flattened to n entries.

    ``u`` runs along the face (metres from the box's corner), ``v`` is the height above
    the box's bottom for side faces (metres), or the second horizontal coordinate on top
    faces. Material functions return (3, n) float32 albedo (channel-first).
    """

    u: np.ndarray  # (n,) metres
    v: np.ndarray  # (n,) metres
    footprint: np.ndarray  # (n,) metres covered by one pixel
    extent: np.ndarray  # (2, n) face size along u and v, metres
    colour: np.ndarray  # (3, n) the box's base albedo
    seed: np.ndarray  # (n,) uint32, the box's texture seed
    params: np.ndarray  # (_NUM_PARAMS, n) the box's material parameters
    top: np.ndarray  # (n,) bool, up- or down-facing face


def _windows(s: _Surface, wall: np.ndarray) -> np.ndarray:
    """Facade windows over ``wall`` albedo: a grid of framed glass panes on the upper
    floors and shop windows with a sign band on the ground floor. ``params`` rows:
    window period and width along u, floor height, window height, ground-floor height,
    u offset, shopfront flag, sign colour (3)."""
    period_u, window_w, floor_h, window_h, ground_h, offset, shop = s.params[:7]
    fp = s.footprint
    u = s.u - offset
    side = ~s.top
    inside_u = _interval(s.u, 0.8, s.extent[0] - 0.8, fp)
    upper = _interval(s.v, ground_h, s.extent[1] - 0.8, fp) * inside_u * side
    frame_u = _pulses(u + 0.08, period_u, window_w + 0.16, fp)
    frame_v = _pulses(s.v - ground_h - 0.6 + 0.08, floor_h, window_h + 0.16, fp)
    glass_u = _pulses(u, period_u, window_w, fp)
    glass_v = _pulses(s.v - ground_h - 0.6, floor_h, window_h, fp)
    frame = frame_u * frame_v * upper
    glass = glass_u * glass_v * upper
    # Curtains and lights differ per window; reflections are a fixed low-frequency pattern.
    pane = _cell_random(u, s.v - ground_h - 0.6, period_u, floor_h, s.seed + np.uint32(7), fp)
    reflection = _value_noise(s.u * 0.4, s.v * 0.4, s.seed + np.uint32(3))
    glass_colour = np.stack([0.14 + 0.05 * reflection, 0.17 + 0.06 * reflection, 0.22 + 0.08 * reflection], 0)
    glass_colour = glass_colour + _rgb(1.0, 0.85, 0.6) * (0.18 * np.clip(pane - 0.3, 0, 1))
    out = _mix(wall, np.float32([0.82, 0.8, 0.76]), frame)
    out = _mix(out, glass_colour, glass)
    # Ground floor: shop windows below a coloured sign band, only on flagged buildings.
    shop_zone = shop * side * inside_u
    shop_glass = _pulses(u, period_u, period_u * 0.75, fp) * _interval(s.v, 0.4, ground_h - 1.0, fp) * shop_zone
    sign = _interval(s.v, ground_h - 0.85, ground_h - 0.25, fp) * shop_zone
    sign_colour = s.params[7:10]
    out = _mix(out, glass_colour * 0.9, shop_glass)
    return _mix(out, sign_colour, sign)


def _brick(s: _Surface) -> np.ndarray:
    """Brick facade: staggered bricks with filtered mortar joints and per-brick tint."""
    fp = s.footprint
    course = 0.077
    row = np.floor(s.v / course)
    stagger = (row % 2.0) * 0.11 * _detail_weight(course, fp)
    u = s.u + stagger
    mortar_rows = _pulses(s.v, course, 0.012, fp)
    mortar_joints = _pulses(u, 0.225, 0.012, fp) * _detail_weight(course, fp)
    mortar = 1.0 - (1.0 - mortar_rows) * (1.0 - mortar_joints)
    tint = _cell_random(u, s.v, 0.225, course, s.seed, fp)
    grime = _fbm(s.u, s.v, s.seed + np.uint32(1), fp, 0.3, 4)
    base = s.colour * (1.0 + 0.12 * tint + 0.22 * grime)
    wall = _mix(base, np.float32([0.7, 0.68, 0.64]), mortar * 0.8)
    return _windows(s, wall)


def _plaster(s: _Surface) -> np.ndarray:
    """Rendered facade: stained plaster with a band at every floor, plus windows."""
    fp = s.footprint
    stains = _fbm(s.u, s.v, s.seed, fp, 0.15, 5)
    streaks = _fbm(s.u * 4.0, s.v * 0.25, s.seed + np.uint32(5), fp * 4.0, 0.5, 3)
    band = _pulses(s.v - s.params[4] + 0.35, s.params[2], 0.25, fp) * (~s.top)
    base = s.colour * (1.0 + 0.18 * stains + 0.08 * streaks)
    return _windows(s, _mix(base, s.colour * 0.75, band))


def _concrete(s: _Surface) -> np.ndarray:
    """Cast concrete (kerbs, bases): mottled grey with fine grain."""
    fp = s.footprint
    grain = _fbm(s.u, s.v, s.seed, fp, 0.8, 5)
    joints = _pulses(s.u, 2.0, 0.02, fp)
    base = s.colour * (1.0 + 0.25 * grain)
    return _mix(base, s.colour * 0.55, joints)


def _car_body(s: _Surface) -> np.ndarray:
    """Painted car body: dark bumper strip at the bottom, a door seam, light paint noise."""
    fp = s.footprint
    paint = _fbm(s.u, s.v, s.seed, fp, 1.5, 3)
    base = s.colour * (1.0 + 0.06 * paint)
    side = ~s.top
    bumper = _interval(s.v, 0.0, 0.32, fp) * side
    seam = _pulses(s.u - s.extent[0] * 0.45, s.extent[0] + 10.0, 0.03, fp) * side
    trim = _interval(s.v, 0.62, 0.67, fp) * side
    out = _mix(base, np.float32([0.05, 0.05, 0.06]), bumper)
    out = _mix(out, s.colour * 0.55, np.maximum(seam, trim))
    lights = _interval(s.v, 0.55, 0.75, fp) * (1.0 - _interval(s.u, 0.3, s.extent[0] - 0.3, fp)) * side
    return _mix(out, np.float32([0.9, 0.75, 0.4]), lights)


def _car_cabin(s: _Surface) -> np.ndarray:
    """Car cabin: tinted glass on the sides between body-coloured pillars, painted roof."""
    fp = s.footprint
    side = ~s.top
    pillars = 1.0 - _interval(s.u, 0.12, s.extent[0] - 0.12, fp) * (
        1.0 - _interval(s.u, s.extent[0] * 0.5 - 0.06, s.extent[0] * 0.5 + 0.06, fp)
    )
    glass = _interval(s.v, 0.05, s.extent[1] - 0.08, fp) * (1.0 - pillars) * side
    reflection = _fbm(s.u, s.v, s.seed, fp, 0.8, 3)
    glass_colour = np.stack([0.1 + 0.05 * reflection, 0.12 + 0.05 * reflection, 0.15 + 0.06 * reflection], 0)
    return _mix(s.colour, glass_colour, glass)


def _foliage(s: _Surface) -> np.ndarray:
    """Tree crowns and hedges: clumpy, high-contrast leaf noise."""
    fp = s.footprint
    clumps = _fbm(s.u, s.v, s.seed, fp, 0.8, 4)
    leaves = _fbm(s.u, s.v, s.seed + np.uint32(9), fp, 6.0, 3)
    light = np.clip(0.75 + 0.5 * clumps + 0.35 * leaves, 0.25, 1.4)
    return s.colour * light


def _bark(s: _Surface) -> np.ndarray:
    """Tree trunks: vertical bark streaks."""
    fp = s.footprint
    streaks = _fbm(s.u * 8.0, s.v * 0.7, s.seed, fp * 8.0, 1.0, 4)
    return s.colour * (1.0 + 0.35 * streaks)


def _metal(s: _Surface) -> np.ndarray:
    """Painted metal (posts, bins, pipes): plain with faint wear."""
    wear = _fbm(s.u, s.v, s.seed, s.footprint, 2.0, 4)
    return s.colour * (1.0 + 0.1 * wear)


def _painted_wall(s: _Surface) -> np.ndarray:
    """Indoor wall: darker dado below a stripe, scuffs, and notice boards."""
    fp = s.footprint
    side = ~s.top
    dado = _interval(s.v, 0.0, 1.0, fp) * side
    stripe = _interval(s.v, 1.0, 1.08, fp) * side
    scuffs = _fbm(s.u, s.v, s.seed, fp, 0.5, 5)
    base = s.colour * (1.0 + 0.12 * scuffs)
    out = _mix(base, s.colour * 0.6, dado)
    out = _mix(out, s.params[0:3], stripe)
    # Notice boards: one paper-white rectangle with "text" rows per 3.3 m of wall.
    board = _pulses(s.u - 0.9, 3.3, 0.8, fp) * _interval(s.v, 1.35, 1.95, fp) * side
    text = _pulses(s.v - 1.4, 0.06, 0.025, fp) * _pulses(s.u, 0.21, 0.16, fp)
    paper = np.clip(0.92 - 0.5 * text, 0, 1)
    out = _mix(out, np.stack([paper, paper, paper * 0.95], 0), board)
    return out


def _tiled_wall(s: _Surface) -> np.ndarray:
    """Glazed square tiles with grout lines and a per-tile tint."""
    fp = s.footprint
    size = s.params[0]
    grout = 1.0 - (1.0 - _pulses(s.u, size, 0.006, fp)) * (1.0 - _pulses(s.v, size, 0.006, fp))
    tint = _cell_random(s.u, s.v, size, size, s.seed, fp)
    dirt = _fbm(s.u, s.v, s.seed + np.uint32(4), fp, 0.4, 4)
    base = s.colour * (1.0 + 0.08 * tint + 0.1 * dirt)
    return _mix(base, np.float32([0.45, 0.44, 0.42]), grout * 0.85)


def _door(s: _Surface) -> np.ndarray:
    """Wooden door in a frame, with two raised panels and a handle."""
    fp = s.footprint
    grain = _fbm(s.u * 6.0, s.v * 0.4, s.seed, fp * 6.0, 1.0, 4)
    base = s.colour * (1.0 + 0.15 * grain)
    width = s.extent[0]
    leaf = _interval(s.u, 0.1, width - 0.1, fp) * _interval(s.v, 0.0, 2.1, fp)
    out = _mix(_rgb(0.75, 0.74, 0.7) * np.ones_like(base), base, leaf)
    panels = _interval(s.u, 0.25, width - 0.25, fp) * (_interval(s.v, 0.25, 0.95, fp) + _interval(s.v, 1.15, 1.9, fp))
    out = _mix(out, base * 0.8, panels * 0.8)
    handle = _interval(s.u, width - 0.3, width - 0.18, fp) * _interval(s.v, 1.0, 1.05, fp)
    return _mix(out, np.float32([0.8, 0.75, 0.5]), handle)


def _crate(s: _Surface) -> np.ndarray:
    """Wooden crate: horizontal planks with gaps, a frame along the edges, wood grain."""
    fp = s.footprint
    gaps = _pulses(s.v, 0.14, 0.012, fp)
    plank = _cell_random(s.u, s.v, 10.0, 0.14, s.seed, fp)
    grain = _fbm(s.u * 0.3, s.v * 5.0, s.seed + np.uint32(2), fp * 5.0, 2.0, 4)
    base = s.colour * (1.0 + 0.12 * plank + 0.15 * grain)
    frame = 1.0 - _interval(s.u, 0.08, s.extent[0] - 0.08, fp) * _interval(s.v, 0.08, s.extent[1] - 0.08, fp)
    out = _mix(base, s.colour * 0.45, gaps)
    return _mix(out, s.colour * 0.8, frame)


def _cardboard(s: _Surface) -> np.ndarray:
    """Cardboard box: brown with a tape strip and a printed label."""
    fp = s.footprint
    fibre = _fbm(s.u, s.v, s.seed, fp, 3.0, 3)
    base = s.colour * (1.0 + 0.06 * fibre)
    middle = s.extent[0] * 0.5
    tape = _interval(s.u, middle - 0.03, middle + 0.03, fp)
    label = _interval(s.u, 0.06, 0.2, fp) * _interval(s.v, s.extent[1] * 0.5, s.extent[1] * 0.5 + 0.1, fp)
    out = _mix(base, np.float32([0.78, 0.66, 0.45]), tape)
    return _mix(out, np.float32([0.9, 0.9, 0.88]), label * (~s.top))


def _pillar(s: _Surface) -> np.ndarray:
    """Concrete pillar with yellow-black hazard stripes around its foot."""
    fp = s.footprint
    grain = _fbm(s.u, s.v, s.seed, fp, 1.0, 5)
    base = s.colour * (1.0 + 0.2 * grain)
    foot = _interval(s.v, 0.0, 1.0, fp) * (~s.top)
    stripes = _pulses(s.u + s.v, 0.3, 0.15, fp * 1.4)
    hazard = _mix(_rgb(0.85, 0.7, 0.1) * np.ones_like(fp), np.float32([0.08, 0.08, 0.08]), stripes)
    return _mix(base, hazard, foot)


_BRICK, _PLASTER, _CONCRETE, _CAR_BODY, _CAR_CABIN, _FOLIAGE, _BARK, _METAL = range(8)
_PAINTED_WALL, _TILED_WALL, _DOOR, _CRATE, _CARDBOARD, _PILLAR = range(8, 14)

_MATERIALS: dict[int, Callable[[_Surface], np.ndarray]] = {
    _BRICK: _brick,
    _PLASTER: _plaster,
    _CONCRETE: _concrete,
    _CAR_BODY: _car_body,
    _CAR_CABIN: _car_cabin,
    _FOLIAGE: _foliage,
    _BARK: _bark,
    _METAL: _metal,
    _PAINTED_WALL: _painted_wall,
    _TILED_WALL: _tiled_wall,
    _DOOR: _door,
    _CRATE: _crate,
    _CARDBOARD: _cardboard,
    _PILLAR: _pillar,
}
_NUM_PARAMS = 10


# --------------------------------------------------------------------------------------
# Scenes.
# --------------------------------------------------------------------------------------


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


def _span(side: float, inner: float, outer: float) -> tuple[float, float]:
    """The x interval from ``inner`` to ``outer`` metres off the centre line on the left
    (``side`` -1) or right (``side`` +1)."""
    return (min(side * inner, side * outer), max(side * inner, side * outer))


def _sun(elevation_deg: float, azimuth_deg: float) -> np.ndarray:
    """(3,) float32 unit world vector towards a sun at this elevation and azimuth
    (degrees; azimuth 0 is straight down the street, 90 to the right)."""
    el, az = math.radians(elevation_deg), math.radians(azimuth_deg)
    return np.array([math.cos(el) * math.sin(az), -math.sin(el), math.cos(el) * math.cos(az)], np.float32)


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
        ambient_down=0.7,
        sky_horizon=np.zeros(3, np.float32),
        sky_zenith=np.zeros(3, np.float32),
        haze_colour=np.float32([0.35, 0.35, 0.36]),
        haze_distance=float(rng.uniform(50, 90)),
        seed=seed,
    )
    return scene, 0.0


_BUILDERS = {"street": _build_street, "corridor": _build_corridor}


# --------------------------------------------------------------------------------------
# Camera motion.
# --------------------------------------------------------------------------------------


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-to-world rotation: yaw about the down axis (> 0 turns right), then pitch
    about the camera x axis (> 0 looks down), then roll about the optical axis."""
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    r_roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return r_yaw @ r_pitch @ r_roll


def _trajectory(rng: np.random.Generator, config: SyntheticSceneConfig, lane_x: float) -> np.ndarray:
    """Smooth camera-to-world poses, float64 (N, 4, 4): forward at about ``speed`` with a
    gentle weave, heading wobble, pitch wobble and a slight bounce."""
    times = np.arange(config.frames_per_sequence) / config.fps
    speed = config.speed
    # Speed varies by +-10 % with a period of 4-8 s; distance is its exact integral.
    omega = 2 * math.pi / rng.uniform(4.0, 8.0)
    phase = rng.uniform(0, 2 * math.pi)
    distance = speed * (times + 0.1 / omega * (np.sin(omega * times + phase) - math.sin(phase)))
    weave = 0.25 if config.style == "street" else 0.15
    wavelength = rng.uniform(6.0, 10.0) * speed
    weave_phase = rng.uniform(0, 2 * math.pi)
    k = 2 * math.pi / wavelength
    lateral = lane_x + weave * np.sin(k * distance + weave_phase)
    heading = np.arctan(weave * k * np.cos(k * distance + weave_phase))

    def wobble(amplitude_deg: float) -> np.ndarray:
        period = rng.uniform(2.5, 6.0)
        return math.radians(amplitude_deg) * np.sin(2 * math.pi * times / period + rng.uniform(0, 2 * math.pi))

    yaw = heading + wobble(config.yaw_amplitude_deg)
    pitch = wobble(config.pitch_amplitude_deg)
    roll = wobble(0.3)
    height = config.camera_height + 0.02 * np.sin(2 * math.pi * times / rng.uniform(0.8, 1.5) + rng.uniform(0, 6.3))
    poses = np.tile(np.eye(4), (len(times), 1, 1))
    for i in range(len(times)):
        poses[i, :3, :3] = _rotation(yaw[i], pitch[i], roll[i])
        poses[i, :3, 3] = (lateral[i], -height[i], distance[i])
    return poses


# --------------------------------------------------------------------------------------
# Rendering.
# --------------------------------------------------------------------------------------

_CORNERS = np.array([[i & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], np.float32)
_EDGES = np.array([(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1], np.int64)


def _screen_rects(
    box_min: np.ndarray,
    box_max: np.ndarray,
    world_to_camera: np.ndarray,
    intrinsics: np.ndarray,
    height: int,
    width: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel rectangles that contain each box's projection, and each box's nearest depth.

    Boxes are clipped to the near plane (the clipped solid's vertices are the corners in
    front plus the edge crossings), so boxes the camera stands beside are handled too.

    Returns:
        int64 (B, 4) ``row0, row1, col0, col1`` (half-open, empty when off-screen) and
        float32 (B,) the smallest optical-axis depth of any point of the box in view.
    """
    corners = box_min[:, None, :] + (box_max - box_min)[:, None, :] * _CORNERS  # (B, 8, 3)
    cam = corners @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
    a, b = cam[:, _EDGES[:, 0]], cam[:, _EDGES[:, 1]]  # (B, 12, 3)
    crossing = (a[..., 2] - _NEAR) * (b[..., 2] - _NEAR) < 0
    fraction = np.where(crossing, (_NEAR - a[..., 2]) / np.where(crossing, b[..., 2] - a[..., 2], 1.0), 0.0)
    clipped = a + (b - a) * fraction[..., None]
    points = np.concatenate([cam, clipped], 1)  # (B, 20, 3)
    valid = np.concatenate([cam[..., 2] >= _NEAR, crossing], 1)
    z = np.maximum(points[..., 2], _NEAR)
    u = intrinsics[0, 0] * points[..., 0] / z + intrinsics[0, 2]
    v = intrinsics[1, 1] * points[..., 1] / z + intrinsics[1, 2]
    big = 1e9
    col0 = np.where(valid, u, big).min(1)
    col1 = np.where(valid, u, -big).max(1)
    row0 = np.where(valid, v, big).min(1)
    row1 = np.where(valid, v, -big).max(1)
    rects = np.stack(
        [
            np.clip(np.floor(row0), 0, height),
            np.clip(np.floor(row1) + 2, 0, height),
            np.clip(np.floor(col0), 0, width),
            np.clip(np.floor(col1) + 2, 0, width),
        ],
        1,
    ).astype(np.int64)
    nearest = np.where(valid, z, np.inf).min(1)
    return rects, nearest.astype(np.float32)


def _slab(
    origin: tuple, inverse_direction: tuple, box_min: np.ndarray, box_max: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ray-box slab test for broadcastable per-axis origins and inverse directions.

    Returns the entry distance, the exit distance and the axis (0, 1, 2) of the entry face.
    """
    entry = exit_ = axis = None
    for k in range(3):
        t0 = (box_min[k] - origin[k]) * inverse_direction[k]
        t1 = (box_max[k] - origin[k]) * inverse_direction[k]
        low, high = np.minimum(t0, t1), np.maximum(t0, t1)
        if entry is None:
            entry, exit_, axis = low, high, np.zeros(low.shape, np.int8)
        else:
            axis = np.where(low > entry, np.int8(k), axis)
            entry, exit_ = np.maximum(entry, low), np.minimum(exit_, high)
    return entry, exit_, axis


_SKY, _FLOOR, _CEILING = -1, -2, -3


def _scatter(target: np.ndarray, columns: np.ndarray, values: np.ndarray) -> None:
    """``target[:, columns] = values`` for channel-first arrays, one row at a time
    (numpy's 2-D fancy assignment is many times slower)."""
    for row in range(target.shape[0]):
        target[row, columns] = values[row]


def _render(
    scene: _Scene, camera_to_world: np.ndarray, intrinsics: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast one frame: uint8 (H, W, 3) RGB and float32 (H, W) depth (0 = sky)."""
    fx, fy, cx, cy = (float(v) for v in (intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2]))
    rotation = camera_to_world[:3, :3].astype(np.float32)
    origin = camera_to_world[:3, 3].astype(np.float32)
    # Camera rays with unit optical-axis component: the ray parameter is the depth.
    cols = (np.arange(width, dtype=np.float32) - cx) / fx
    rows = (np.arange(height, dtype=np.float32) - cy) / fy
    ray_cam = np.stack(np.broadcast_arrays(cols[None, :], rows[:, None], np.float32(1.0)), 0)
    ray = np.einsum("ij,jhw->ihw", rotation, ray_cam).astype(np.float32)  # (3, H, W) world
    inverse = 1.0 / np.where(np.abs(ray) < 1e-9, np.float32(1e-9), ray)

    # Planes first; ``face`` is the axis of the surface normal (1 for floor and ceiling).
    depth = np.full((height, width), np.inf, np.float32)
    hit = np.full((height, width), _SKY, np.int32)
    face = np.ones((height, width), np.int8)
    down = ray[1] > 1e-6
    np.copyto(depth, -origin[1] * inverse[1], where=down)
    np.copyto(hit, _FLOOR, where=down)
    if scene.ceiling_height is not None:
        up = ray[1] < -1e-6
        np.copyto(depth, (-scene.ceiling_height - origin[1]) * inverse[1], where=up)
        np.copyto(hit, _CEILING, where=up)

    world_to_camera = np.linalg.inv(camera_to_world)
    rects, nearest = _screen_rects(scene.box_min, scene.box_max, world_to_camera, intrinsics, height, width)
    for index in np.argsort(nearest):
        r0, r1, c0, c1 = rects[index]
        if r0 >= r1 or c0 >= c1:
            continue
        window = np.s_[r0:r1, c0:c1]
        depth_window = depth[window]
        if nearest[index] >= depth_window.max():
            continue  # hidden behind everything already drawn there
        entry, exit_, axis = _slab(
            origin,
            (inverse[0][window], inverse[1][window], inverse[2][window]),
            scene.box_min[index],
            scene.box_max[index],
        )
        closer = (entry <= exit_) & (entry > 0) & (entry < depth_window)
        np.copyto(depth_window, entry, where=closer)
        np.copyto(hit[window], np.int32(index), where=closer)
        np.copyto(face[window], axis, where=closer)

    seen = hit != _SKY
    depth = np.where(seen, depth, np.float32(0.0))
    # Visible surface points as compact (n,) arrays, shaded channel-first.
    visible = np.flatnonzero(seen)
    ray_v = np.take(ray.reshape(3, -1), visible, axis=1)
    depth_v, hit_v = depth.reshape(-1)[visible], hit.reshape(-1)[visible]
    face_v = face.reshape(-1)[visible]
    points = origin[:, None] + ray_v * depth_v
    # Axis-aligned normals: the ray's component along the normal axis gives the normal's
    # sign (it faces the camera), the slant and the sun's incidence.
    ray_along_normal = np.choose(face_v, ray_v)
    facing = -np.sign(ray_along_normal)
    ray_length = np.sqrt(np.sum(np.take(ray_cam.reshape(3, -1), visible, axis=1) ** 2, axis=0))
    distance = depth_v * ray_length
    cosine = np.abs(ray_along_normal) / ray_length
    # Metres per pixel on the surface: distance over focal length, stretched by the slant
    # (partly: full stretch would also blur grazing surfaces along their unstretched axis).
    footprint = distance / np.float32((fx + fy) / 2) / np.sqrt(np.maximum(cosine, 0.02))
    lambert = np.maximum(facing * scene.sun_direction[face_v], 0.0)
    lit = np.flatnonzero(lambert)
    # Shadow rays start a little in front of the surface so it does not shade itself.
    shadow_points = origin[:, None] + np.take(ray_v, lit, axis=1) * np.maximum(depth_v[lit] - 2e-3, 0.0)
    lambert[lit[_shadowed(scene, shadow_points)]] = 0.0

    albedo = np.empty((3, len(visible)), np.float32)
    emission = np.zeros((3, len(visible)), np.float32)
    for kind in (_FLOOR, _CEILING):
        rows = np.flatnonzero(hit_v == kind)
        if len(rows) == 0:
            continue
        if kind == _FLOOR:
            _scatter(albedo, rows, scene.floor(points[0, rows], points[2, rows], footprint[rows]))
        else:
            surface_albedo, glow = scene.ceiling(points[0, rows], points[2, rows], footprint[rows])
            _scatter(albedo, rows, surface_albedo)
            _scatter(emission, rows, glow)
    rows = np.flatnonzero(hit_v >= 0)
    if len(rows):
        _scatter(
            albedo, rows, _box_albedo(scene, np.take(points, rows, axis=1), hit_v[rows], face_v[rows], footprint[rows])
        )

    # Sky light on every surface, strongest on up-facing ones, weakest on down-facing ones.
    upness = np.where(face_v == 1, -facing, 0.0)
    ambient = 0.6 + np.where(upness > 0, np.float32(0.4), np.float32(0.6 - scene.ambient_down)) * upness
    # Contact darkening near the ground, a cheap stand-in for ambient occlusion.
    occlusion = np.where(hit_v == _FLOOR, 1.0, 0.75 + 0.25 * np.clip(-points[1] / 0.6, 0.0, 1.0))
    light = scene.ambient_colour[:, None] * (ambient * occlusion) + scene.sun_colour[:, None] * lambert
    haze = np.exp(-distance / scene.haze_distance)
    colour = (albedo * light + emission) * haze + scene.haze_colour[:, None] * (1.0 - haze)

    image = np.empty((3, height * width), np.float32)
    _scatter(image, visible, colour)
    sky = np.flatnonzero(~seen)
    if len(sky):
        _scatter(image, sky, _sky(scene, np.take(ray.reshape(3, -1), sky, axis=1)))
    image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(image.reshape(3, height, width).transpose(1, 2, 0)), depth


def _sky(scene: _Scene, rays: np.ndarray) -> np.ndarray:
    """(3, n) sky colour for (3, n) world rays: horizon-to-zenith gradient and clouds.

    Depends on direction only (the sky is at infinity), so it moves only with rotation.
    """
    unit = rays / np.sqrt(np.sum(rays**2, axis=0))
    elevation = np.clip(-unit[1], 0.0, 1.0)
    colour = scene.sky_horizon[:, None] + (scene.sky_zenith - scene.sky_horizon)[:, None] * np.sqrt(elevation)
    # Clouds live on a plane at infinity: their coordinates are the ray's slopes.
    lift = np.maximum(-unit[1], 0.03)
    footprint = 1.0 / (400.0 * lift)
    cover = _fbm(unit[0] / lift, unit[2] / lift, np.uint32(scene.seed * 13 + 5), footprint, 0.6, 5)
    clouds = np.clip((cover + 0.1) * 2.5, 0.0, 1.0) * np.clip(elevation * 8.0, 0.0, 1.0)
    return _mix(colour.astype(np.float32), np.float32([0.96, 0.96, 0.97]), (clouds * 0.85).astype(np.float32))


def _box_albedo(
    scene: _Scene, points: np.ndarray, box: np.ndarray, face: np.ndarray, footprint: np.ndarray
) -> np.ndarray:
    """(3, n) albedo of n points (``points`` (3, n) world) on faces of boxes ``box`` (n,)
    whose normals lie along axes ``face`` (n,)."""
    albedo = np.empty((3, len(box)), np.float32)
    material = scene.box_material[box]
    # Per-box bounds channel-first, so per-point look-ups are fast row takes.
    bounds = np.ascontiguousarray(np.concatenate([scene.box_min, scene.box_max - scene.box_min], 1).T)
    for kind in np.flatnonzero(np.bincount(material)):
        rows = np.flatnonzero(material == kind)
        group, group_face = box[rows], face[rows]
        px, py, pz = np.take(points, rows, axis=1)
        lo_x, lo_y, lo_z, size_x, size_y, size_z = np.take(bounds, group, axis=1)
        top = group_face == 1
        across = (group_face == 2) | top  # faces looking along z, and top faces, run along x
        surface = _Surface(
            u=np.where(across, px - lo_x, pz - lo_z),
            v=np.where(top, pz - lo_z, lo_y + size_y - py),
            footprint=footprint[rows],
            extent=np.stack([np.where(across, size_x, size_z), np.where(top, size_z, size_y)]),
            colour=np.take(scene.box_colour, group, axis=1),
            seed=scene.box_seed[group],
            params=np.take(scene.box_params, group, axis=1),
            top=top,
        )
        _scatter(albedo, rows, _MATERIALS[int(kind)](surface))
    return albedo


def _shadowed(scene: _Scene, points: np.ndarray) -> np.ndarray:
    """Indices of the (3, n) world ``points`` from which a box blocks the sun.

    A box can only shade points in the volume it sweeps along the sun's rays down to the
    ground, so each box is tested only against the points inside that volume's bounds;
    points are sorted along the street so that test is a slice.
    """
    sun = scene.sun_direction
    inverse = tuple(np.float32(1.0 / (s if abs(s) > 1e-9 else 1e-9)) for s in sun)
    sweep = (-scene.box_min[:, 1] / max(-float(sun[1]), 1e-3))[:, None] * sun
    swept_min = np.minimum(scene.box_min, scene.box_min - sweep)
    swept_max = np.maximum(scene.box_max, scene.box_max - sweep)

    # Quarter-metre bins of z as 16-bit keys: numpy sorts those with a linear radix sort.
    def bin_of(z: np.ndarray) -> np.ndarray:
        return np.clip(np.floor(z * 4.0), -32000, 32000).astype(np.int16)

    keys = bin_of(points[2])
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    px, py, pz = np.take(points, order, axis=1)
    starts = np.searchsorted(keys, bin_of(swept_min[:, 2]), side="left")
    ends = np.searchsorted(keys, bin_of(swept_max[:, 2]), side="right")
    blocked = np.zeros(len(order), bool)
    for index in np.flatnonzero(ends > starts):
        lo, hi = swept_min[index], swept_max[index]
        span = slice(starts[index], ends[index])
        x, y, z = px[span], py[span], pz[span]
        candidates = np.flatnonzero(
            (x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1]) & (z >= lo[2]) & (z <= hi[2])
        )
        if len(candidates) == 0:
            continue
        candidates += starts[index]
        entry, exit_, _ = _slab(
            (px[candidates], py[candidates], pz[candidates]), inverse, scene.box_min[index], scene.box_max[index]
        )
        blocked[candidates[(entry <= exit_) & (exit_ > 0)]] = True
    return order[blocked]


# --------------------------------------------------------------------------------------
# Public API.
# --------------------------------------------------------------------------------------


def generate_sequence(config: SyntheticSceneConfig | RobotSceneConfig, seed: int) -> SyntheticSequence:
    """Render one sequence of ``config.frames_per_sequence`` frames of a new random scene.

    The scene layout, textures, lighting and camera path all follow from ``seed``: the
    same config and seed give bit-identical arrays, different seeds different scenes.

    Args:
        config: scene style, image size, frame count and camera motion; a
            :class:`~dna_depth_core.data.synthetic_robot.RobotSceneConfig` renders the
            ground-robot style (a :class:`~dna_depth_core.data.synthetic_robot.RobotSequence`).
        seed: non-negative integer.

    Returns:
        A :class:`SyntheticSequence` (uint8 images, float32 metric depths with 0 for sky,
        float32 intrinsics and camera-to-world poses, float64 timestamps).
    """
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if not isinstance(config, SyntheticSceneConfig):
        from .synthetic_robot import generate_robot_sequence  # it builds on this module

        return generate_robot_sequence(config, seed)
    rng = np.random.default_rng([seed, STYLES.index(config.style)])
    travel = config.speed * 1.15 * (config.frames_per_sequence - 1) / config.fps
    scene, lane_x = _BUILDERS[config.style](rng, travel, seed)
    poses = _trajectory(rng, config, lane_x)
    intrinsics = config.intrinsics()
    count = config.frames_per_sequence
    images = np.empty((count, config.height, config.width, 3), np.uint8)
    depths = np.empty((count, config.height, config.width), np.float32)
    for i in range(count):
        images[i], depths[i] = _render(scene, poses[i], intrinsics, config.height, config.width)
    return SyntheticSequence(
        images=images,
        depths=depths,
        intrinsics=intrinsics,
        poses=poses.astype(np.float32),
        timestamps=np.arange(count, dtype=np.float64) / config.fps,
    )


class SyntheticTripletDataset(Dataset):
    """Training triplets ``(t-1, t, t+1)`` from freshly generated synthetic sequences.

    Sequence ``i`` is generated with seed ``seed + i``; every frame that has both
    neighbours is a sample, so each sequence gives ``frames_per_sequence - 2`` samples.
    All sequences are held in memory (about 0.8 MB per 192 x 640 frame with its depth).

    Each sample is the dict described in :mod:`dna_depth_core.data`: ``frames`` float32
    (3, 3, H, W) in [0, 1], ``intrinsics`` float32 (3, 3), ``depth_gt`` float32
    (1, H, W) metres with 0 for sky, and ``source_distance`` float32 (2,) metres from the
    target camera centre to the t-1 and t+1 camera centres.

    Attributes:
        sequences: the generated :class:`SyntheticSequence` list, for ground-truth
            evaluation.
    """

    def __init__(self, config: SyntheticSceneConfig, num_sequences: int, seed: int = 0, progress: bool = False) -> None:
        if num_sequences < 1:
            raise ValueError(f"num_sequences must be >= 1, got {num_sequences}")
        if seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        self.config = config
        seeds = range(seed, seed + num_sequences)
        self.sequences: list[SyntheticSequence] = [
            generate_sequence(config, s)
            for s in tqdm(seeds, desc=f"rendering {config.style} sequences", unit="seq", disable=not progress)
        ]
        self._index = [
            (sequence, frame) for sequence in range(num_sequences) for frame in range(1, config.frames_per_sequence - 1)
        ]

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sequence_index, frame = self._index[index]
        sequence = self.sequences[sequence_index]
        frames = torch.from_numpy(sequence.images[frame - 1 : frame + 2]).permute(0, 3, 1, 2).float().div_(255.0)
        centres = sequence.poses[frame - 1 : frame + 2, :3, 3].astype(np.float64)
        distance = np.linalg.norm(centres[[0, 2]] - centres[1], axis=1)
        return {
            "frames": frames.contiguous(),
            "intrinsics": torch.from_numpy(sequence.intrinsics.copy()),
            "depth_gt": torch.from_numpy(sequence.depths[frame][None].copy()),
            "source_distance": torch.from_numpy(distance.astype(np.float32)),
        }
