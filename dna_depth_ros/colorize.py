"""Depth -> colour image for people (``depth/colored``)."""

from __future__ import annotations

import functools

import cv2
import numpy as np

COLORMAPS: dict[str, int | None] = {
    name[len("COLORMAP_") :].lower(): getattr(cv2, name) for name in dir(cv2) if name.startswith("COLORMAP_")
}
COLORMAPS["gray"] = None
"""Colour map names accepted by :func:`colorize_depth`: OpenCV's maps plus ``gray``."""

INVALID_COLOUR_BGR = (0, 0, 0)
"""Colour of pixels without depth (NaN)."""


@functools.cache
def colour_table(colormap: str) -> np.ndarray:
    """uint8 ``(256, 1, 3)`` BGR lookup table: entry 0 is the invalid colour (black),
    entries 1..255 run through the colour map from its first to its last colour."""
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colour map {colormap!r}; choose one of {sorted(COLORMAPS)}")
    levels = np.linspace(0, 255, 255).round().astype(np.uint8)[:, None]
    code = COLORMAPS[colormap]
    colours = cv2.cvtColor(levels, cv2.COLOR_GRAY2BGR) if code is None else cv2.applyColorMap(levels, code)
    table = np.empty((256, 1, 3), dtype=np.uint8)
    table[0] = INVALID_COLOUR_BGR
    table[1:] = colours
    table.setflags(write=False)
    return table


def valid_depth_range(depth: np.ndarray, valid: np.ndarray | None) -> tuple[float, float]:
    """``(min, max)`` of the valid depths (``valid`` uint8 mask, or ``None`` when all are),
    widened to a non-empty interval; ``(0, 1)`` when nothing is valid."""
    if valid is not None and not valid.any():
        return 0.0, 1.0
    low, high, _, _ = cv2.minMaxLoc(depth, mask=valid)
    return low, max(high, low + 1e-6)


def colour_indices(depth: np.ndarray, near: float, far: float, valid: np.ndarray | None = None) -> np.ndarray:
    """uint8 ``(H, W)`` :func:`colour_table` indices of depth: 255 at ``near`` down to 1 at
    ``far`` (depths outside take the ends), 0 where invalid. Arguments as :func:`colorize_depth`."""
    if depth.ndim != 2 or depth.dtype != np.float32:
        raise ValueError(f"depth must be a float32 (H, W) array, got {depth.dtype} {depth.shape}")
    if not near < far:
        raise ValueError(f"need near < far, got {near} and {far}")
    scale = -254.0 / (far - near)
    offset = 255.0 - scale * near
    clipped = np.clip(depth, near, far)
    indices = cv2.convertScaleAbs(clipped, alpha=scale, beta=offset)
    if valid is not None:
        indices[valid == 0] = 0
    return indices


def colorize_depth(
    depth: np.ndarray, near: float, far: float, colormap: str = "turbo", valid: np.ndarray | None = None
) -> np.ndarray:
    """Colour-map depth, linear from ``near`` (the map's last colour) to ``far`` (its first).

    Depths outside ``[near, far]`` get the end colours; invalid pixels are black.

    Args:
        depth: float32 ``(H, W)`` depth in metres (NaN where invalid).
        near, far: depth range mapped onto the colour map, metres, ``near < far``.
        colormap: a name from :data:`COLORMAPS`.
        valid: optional uint8 ``(H, W)`` mask, non-zero where depth is valid; ``None`` when
            every pixel is (then ``depth`` must hold no NaN).

    Returns:
        uint8 ``(H, W, 3)`` BGR image.
    """
    return cv2.applyColorMap(colour_indices(depth, near, far, valid), colour_table(colormap))
