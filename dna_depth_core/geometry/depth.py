"""Disparity <-> depth conversion of the Monodepth2 recipe."""

from __future__ import annotations

import torch


def disp_to_depth(disp: torch.Tensor, min_depth: float = 0.1, max_depth: float = 100.0) -> torch.Tensor:
    """Map sigmoid disparity in [0, 1] to depth in [min_depth, max_depth].

    ``depth = 1 / (1 / max_depth + (1 / min_depth - 1 / max_depth) * disp)``: disparity 0
    is ``max_depth``, disparity 1 is ``min_depth``, linear in inverse depth between.

    Args:
        disp: any shape, values in [0, 1].
        min_depth: depth at disparity 1, in network depth units (> 0).
        max_depth: depth at disparity 0 (> min_depth).

    Returns:
        Depth of the same shape and dtype, in network depth units.
    """
    if not 0 < min_depth < max_depth:
        raise ValueError(f"need 0 < min_depth < max_depth, got {min_depth} and {max_depth}")
    min_inverse, max_inverse = 1.0 / max_depth, 1.0 / min_depth
    return 1.0 / (min_inverse + (max_inverse - min_inverse) * disp)
