"""Edge-aware disparity smoothness of the Monodepth2 recipe."""

from __future__ import annotations

import torch

_MEAN_EPS = 1e-7
"""Keeps the mean normalisation finite for an all-zero disparity map."""


def edge_aware_smoothness(disparity: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """First-order disparity smoothness, relaxed at image edges.

    The disparity is divided by its per-image mean first, so the penalty does not favour
    shrinking the (scale-ambiguous) disparity. Then
    ``mean(|dx d| * exp(-mean_c |dx I|)) + mean(|dy d| * exp(-mean_c |dy I|))`` over
    neighbouring-pixel differences.

    Args:
        disparity: ``(B, 1, H, W)`` positive disparity (any scale), H, W >= 2.
        image: ``(B, C, H, W)`` image at the same resolution, values in [0, 1].

    Returns:
        Scalar loss, 0 for a constant disparity.
    """
    if disparity.ndim != 4 or disparity.shape[1] != 1:
        raise ValueError(f"disparity must have shape (B, 1, H, W), got {tuple(disparity.shape)}")
    batch, _, height, width = disparity.shape
    if height < 2 or width < 2:
        raise ValueError(f"disparity must be at least 2x2 pixels, got {height}x{width}")
    if image.ndim != 4 or image.shape[0] != batch or image.shape[2:] != (height, width):
        raise ValueError(
            f"image must have shape ({batch}, C, {height}, {width}) to match disparity, got {tuple(image.shape)}"
        )
    normalised = disparity / (disparity.mean(dim=(2, 3), keepdim=True) + _MEAN_EPS)

    disparity_dx = (normalised[..., :, 1:] - normalised[..., :, :-1]).abs()
    disparity_dy = (normalised[..., 1:, :] - normalised[..., :-1, :]).abs()
    image_dx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(dim=1, keepdim=True)
    image_dy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(dim=1, keepdim=True)
    return (disparity_dx * torch.exp(-image_dx)).mean() + (disparity_dy * torch.exp(-image_dy)).mean()
