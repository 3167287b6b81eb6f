"""The network input size for a camera: what bag fine-tuning trains at, unless told otherwise."""

from __future__ import annotations

import math

DEFAULT_PIXEL_BUDGET = 640 * 192
"""Network input pixels :func:`pick_network_size` aims for: the KITTI recipe's 640x192."""

NETWORK_STRIDE = 32
"""Network input sides are multiples of this (the encoder's total stride)."""


def pick_network_size(
    image_size: tuple[int, int],
    pixel_budget: int = DEFAULT_PIXEL_BUDGET,
    height: int | None = None,
    width: int | None = None,
) -> tuple[int, int]:
    """Network input ``(height, width)`` for a camera's ``image_size = (height, width)``.

    Both sides are multiples of 32. Without ``height``/``width``: among the sizes using
    between half and all of ``pixel_budget`` (at most the image's own pixel count, so
    nothing is enlarged), the one whose aspect ratio is closest to the image's, the larger
    on a tie: 4:3 gives 384x288, 16:9 448x256, 1242x375 (KITTI) 640x192. With one of
    ``height``/``width`` given, the other follows the aspect ratio; with both, they are
    returned as they are.
    """
    image_height, image_width = image_size
    aspect = image_width / image_height
    if height is not None and width is not None:
        return height, width
    if height is not None:
        return height, max(NETWORK_STRIDE, round(height * aspect / NETWORK_STRIDE) * NETWORK_STRIDE)
    if width is not None:
        return max(NETWORK_STRIDE, round(width / aspect / NETWORK_STRIDE) * NETWORK_STRIDE), width
    budget = min(pixel_budget, image_height * image_width)
    if budget < NETWORK_STRIDE**2:
        return NETWORK_STRIDE, NETWORK_STRIDE
    best: tuple[float, int, tuple[int, int]] | None = None
    sides = range(NETWORK_STRIDE, budget // NETWORK_STRIDE + 1, NETWORK_STRIDE)
    for candidate_height in sides:
        for candidate_width in sides:
            area = candidate_height * candidate_width
            if not budget / 2 <= area <= budget:
                continue
            error = round(abs(math.log(candidate_width / candidate_height / aspect)), 9)
            key = (error, -area, (candidate_height, candidate_width))
            if best is None or key < best:
                best = key
    if best is None:  # a budget so small only the smallest size fits
        return NETWORK_STRIDE, NETWORK_STRIDE
    return best[2]
