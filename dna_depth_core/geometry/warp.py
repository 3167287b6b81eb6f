"""Inverse warping: synthesise the target view from a source view, target depth and motion.

Conventions are those of :mod:`dna_depth_core.geometry.camera` (x right, y down, z
forward; pixel centres at integer coordinates) and :mod:`dna_depth_core.geometry.pose`
(``target_to_source`` maps target-camera points to source-camera points).

Sampling follows the Monodepth2 recipe: bilinear, border padding, ``align_corners=True``
with pixel coordinates normalised by ``(W - 1, H - 1)``, which is exactly the
integer-pixel-centre convention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .camera import backproject, project, transform_points

_MIN_PROJECTION_DEPTH = 1e-7
"""Points closer than this (z, in depth units) to the source camera plane count as behind it."""
_BORDER_TOLERANCE = 1e-3
"""Pixels by which a projection may overshoot the outer pixel centres and still be valid:
float rounding puts e.g. an identity warp's border pixels a few 1e-6 px outside."""


def warp_to_target(
    source: torch.Tensor,
    target_depth: torch.Tensor,
    target_to_source: torch.Tensor,
    intrinsics: torch.Tensor,
    rays: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample ``source`` into the target view.

    Each target pixel is lifted with its depth, moved into the source camera, projected
    with the same intrinsics and the source is sampled there. Differentiable w.r.t.
    ``source``, ``target_depth`` and ``target_to_source``.

    Args:
        source: ``(B, C, H, W)`` floating source image (or any feature map).
        target_depth: ``(B, 1, H, W)`` z-depth of the target pixels, metres or network units.
        target_to_source: ``(B, 4, 4)`` rigid transform from target to source camera.
        intrinsics: ``(B, 3, 3)`` pixels of this ``H x W`` size, shared by both views.
        rays: ``(B, 3, H, W)`` :func:`~dna_depth_core.geometry.camera.pixel_rays` of
            ``intrinsics``, when warping with several depth maps.

    Returns:
        ``warped`` ``(B, C, H, W)``: the source seen from the target (pixels projecting
        outside the source repeat its border), and ``valid`` ``(B, 1, H, W)`` bool: True
        where the point lies in front of the source camera and projects inside the source
        image's outer pixel centres ``[0, W - 1] x [0, H - 1]`` (up to 1e-3 px), i.e. where
        the bilinear sample is interpolated from real source pixels.
    """
    if source.ndim != 4:
        raise ValueError(f"source must have shape (B, C, H, W), got {tuple(source.shape)}")
    batch, _, height, width = source.shape
    if target_depth.shape != (batch, 1, height, width):
        raise ValueError(
            f"target_depth must have shape ({batch}, 1, {height}, {width}) to match source, "
            f"got {tuple(target_depth.shape)}"
        )
    if height < 2 or width < 2:
        raise ValueError(f"images must be at least 2x2 pixels to warp, got {height}x{width}")

    source_points = transform_points(backproject(target_depth, intrinsics, rays), target_to_source)
    pixels = project(source_points, intrinsics, eps=_MIN_PROJECTION_DEPTH)
    u, v = pixels.unbind(dim=-1)
    valid = (
        (source_points[:, 2] > _MIN_PROJECTION_DEPTH)
        & (u >= -_BORDER_TOLERANCE) & (u <= width - 1 + _BORDER_TOLERANCE)
        & (v >= -_BORDER_TOLERANCE) & (v <= height - 1 + _BORDER_TOLERANCE)
    ).unsqueeze(1)

    scale = pixels.new_tensor([2.0 / (width - 1), 2.0 / (height - 1)])
    grid = (pixels * scale - 1.0).to(source.dtype)
    warped = F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return warped, valid
