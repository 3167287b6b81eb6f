"""Procedural textures and materials of the synthetic scenes.

Coordinates are metres on a surface; ``footprint`` is the size in metres that one pixel
covers there, used to box-filter every pattern so that distant surfaces turn smooth
instead of aliasing (and flickering from frame to frame). Colours are channel-first
``(3, n)`` float32 albedo. A material is a function of the visible points of one kind of
box (:class:`_Surface`); :data:`_MATERIALS` maps the material ids the scene builders use
to those functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# --------------------------------------------------------------------------------------
# Procedural texture primitives.
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
