"""Photometric reconstruction error of the Monodepth2 recipe: SSIM + L1, per-pixel minimum, auto-masking.

Images are floating ``(B, C, H, W)`` tensors with values in [0, 1] (RGB in the recipe);
errors are unitless, per pixel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SSIM_C1 = 0.01**2
"""SSIM luminance stabiliser, (0.01 * dynamic range 1)^2."""
SSIM_C2 = 0.03**2
"""SSIM contrast stabiliser, (0.03 * dynamic range 1)^2."""

TIE_OFFSET = 1e-5
"""Largest random amount subtracted from identity (un-warped) errors before the minimum."""


def _check_image_pair(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.ndim != 4:
        raise ValueError(f"{name_a} must have shape (B, C, H, W), got {tuple(a.shape)}")
    if b.shape != a.shape:
        raise ValueError(f"{name_b} must have the shape of {name_a} {tuple(a.shape)}, got {tuple(b.shape)}")
    if a.shape[2] < 2 or a.shape[3] < 2:
        raise ValueError(f"images must be at least 2x2 pixels, got {tuple(a.shape[2:])}")


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Structural similarity map from 3x3 box-filtered statistics (reflection padded).

    ``SSIM = (2 mu_x mu_y + C1)(2 cov_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(var_x + var_y + C2))``
    with ``C1 = 0.01^2``, ``C2 = 0.03^2`` (images in [0, 1]); 1 for identical images.

    Args:
        x, y: ``(B, C, H, W)`` floating images of equal shape, H, W >= 2.

    Returns:
        ``(B, C, H, W)`` SSIM per pixel and channel, in [-1, 1].
    """
    _check_image_pair("x", x, "y", y)
    channels = x.shape[1]
    stacked = F.pad(torch.cat([x, y, x * x, y * y, x * y], dim=1), (1, 1, 1, 1), mode="reflect")
    mu_x, mu_y, mean_xx, mean_yy, mean_xy = F.avg_pool2d(stacked, 3, stride=1).split(channels, dim=1)
    var_x = mean_xx - mu_x * mu_x
    var_y = mean_yy - mu_y * mu_y
    cov_xy = mean_xy - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + SSIM_C1) * (2 * cov_xy + SSIM_C2)
    denominator = (mu_x * mu_x + mu_y * mu_y + SSIM_C1) * (var_x + var_y + SSIM_C2)
    return numerator / denominator


def photometric_error(prediction: torch.Tensor, target: torch.Tensor, ssim_weight: float = 0.85) -> torch.Tensor:
    """Per-pixel ``ssim_weight * (1 - SSIM) / 2 + (1 - ssim_weight) * L1``, averaged over channels.

    ``(1 - SSIM) / 2`` is clamped to [0, 1].

    Args:
        prediction: ``(B, C, H, W)`` synthesised (warped) image, values in [0, 1].
        target: ``(B, C, H, W)`` image it should reproduce.
        ssim_weight: weight of the SSIM term in [0, 1] (0.85 in the recipe).

    Returns:
        ``(B, 1, H, W)`` error, 0 for identical images.
    """
    _check_image_pair("prediction", prediction, "target", target)
    if not 0.0 <= ssim_weight <= 1.0:
        raise ValueError(f"ssim_weight must be in [0, 1], got {ssim_weight}")
    dissimilarity = ((1.0 - ssim(prediction, target)) / 2.0).clamp(0.0, 1.0).mean(dim=1, keepdim=True)
    absolute = (prediction - target).abs().mean(dim=1, keepdim=True)
    return ssim_weight * dissimilarity + (1.0 - ssim_weight) * absolute


def min_reprojection(
    reprojection_errors: torch.Tensor, identity_errors: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel minimum over source frames, with auto-masking.

    Taking the minimum over sources lets each pixel use the source where it is visible
    (occlusions, frame borders). With ``identity_errors`` (the errors of the un-warped
    sources against the target) entering the same minimum, pixels that look the same
    without warping - a static camera, objects moving with the camera, textureless
    areas - are explained by no motion at all and give no gradient to depth or pose.

    Ties are broken towards the identity: a random amount in [0, 1e-5) is subtracted from
    the identity errors for the comparison only (the returned loss is the winner's true
    error), so a static scene is masked out even when warping reproduces it exactly.

    Args:
        reprojection_errors: ``(B, S, H, W)`` error of each warped source.
        identity_errors: ``(B, S', H, W)`` error of each un-warped source, or None to
            disable auto-masking.

    Returns:
        ``per_pixel_loss`` ``(B, 1, H, W)`` the minimum error, and ``automask``
        ``(B, 1, H, W)`` bool: True where a warped source won (the pixel trains the
        networks); all True without ``identity_errors``.
    """
    if reprojection_errors.ndim != 4 or reprojection_errors.shape[1] < 1:
        raise ValueError(
            f"reprojection_errors must have shape (B, S, H, W) with S >= 1, got {tuple(reprojection_errors.shape)}"
        )
    if identity_errors is None:
        per_pixel_loss = reprojection_errors.min(dim=1, keepdim=True).values
        return per_pixel_loss, torch.ones_like(per_pixel_loss, dtype=torch.bool)

    batch, _, height, width = reprojection_errors.shape
    if identity_errors.ndim != 4 or identity_errors.shape[0] != batch or identity_errors.shape[2:] != (height, width):
        raise ValueError(
            f"identity_errors must have shape ({batch}, S, {height}, {width}) to match reprojection_errors, "
            f"got {tuple(identity_errors.shape)}"
        )
    # Identity candidates come first so that argmin's first-index rule also favours them.
    candidates = torch.cat([identity_errors, reprojection_errors], dim=1)
    offsets = torch.cat(
        [-TIE_OFFSET * torch.rand_like(identity_errors), torch.zeros_like(reprojection_errors)], dim=1
    )
    winner = (candidates.detach() + offsets).argmin(dim=1, keepdim=True)
    return candidates.gather(1, winner), winner >= identity_errors.shape[1]
