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


def box_filter_3x3(images: torch.Tensor) -> torch.Tensor:
    """Mean over each pixel's 3x3 neighbourhood, reflection padded (as ``avg_pool2d`` of a reflect pad).

    Summed as two passes of three shifted views, which on the CPU is several times faster
    than ``avg_pool2d`` for these many-channel full-resolution maps.

    Args:
        images: ``(B, C, H, W)`` floating tensor, H, W >= 2.

    Returns:
        ``(B, C, H, W)`` means.
    """
    padded = F.pad(images, (1, 1, 1, 1), mode="reflect")
    rows = padded[..., :-2, :] + padded[..., 1:-1, :]
    rows += padded[..., 2:, :]
    means = rows[..., :-2] + rows[..., 1:-1]
    means += rows[..., 2:]
    return means.div_(9.0)


def _box_filter_3x3_adjoint(gradient: torch.Tensor) -> torch.Tensor:
    """Transpose of :func:`box_filter_3x3`: maps a gradient w.r.t. its output to one w.r.t. its input."""
    # The 3x3 sums scatter each output into the padded image (a "full" correlation)...
    padded = F.pad(gradient, (2, 2, 2, 2))
    rows = padded[..., :-2, :] + padded[..., 1:-1, :]
    rows += padded[..., 2:, :]
    spread = rows[..., :-2] + rows[..., 1:-1]
    spread += rows[..., 2:]
    spread.div_(9.0)
    # ... and the reflection pad folds the padding back: padded row 0 is image row 1,
    # padded row H + 1 is image row H - 2 (likewise for columns; rows first, so that the
    # corners travel on to their columns).
    spread[..., 2, :] += spread[..., 0, :]
    spread[..., -3, :] += spread[..., -1, :]
    spread[..., 2] += spread[..., 0]
    spread[..., -3] += spread[..., -1]
    return spread[..., 1:-1, 1:-1]


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
    return _ssim_terms(x, PhotometricTarget(y))[0]


class PhotometricTarget:
    """An image that several predictions are compared with, and its SSIM statistics.

    The loss compares the target frame with the un-warped sources and with the warped
    sources of every scale; its 3x3 means and variances are computed once here.

    Args:
        image: ``(B, C, H, W)`` floating image, H, W >= 2; gradients do not flow into it
            through :func:`photometric_error` unless it requires grad.
    """

    def __init__(self, image: torch.Tensor) -> None:
        if image.ndim != 4 or image.shape[2] < 2 or image.shape[3] < 2:
            raise ValueError(f"target must have shape (B, C, H, W) with H, W >= 2, got {tuple(image.shape)}")
        self.image = image
        mean, mean_square = box_filter_3x3(torch.cat([image, image * image], dim=1)).split(image.shape[1], dim=1)
        self.mean = mean
        self.mean_squared = mean * mean
        self.variance = mean_square - self.mean_squared


def _ssim_terms(x: torch.Tensor, target: PhotometricTarget) -> tuple[torch.Tensor, ...]:
    """SSIM of ``x`` against ``target`` and the factors and statistics it is made of.

    Returns ``(ssim, mu_x, luminance_numerator, contrast_numerator, luminance_denominator,
    contrast_denominator)``, all ``(B, C, H, W)``.
    """
    channels = x.shape[1]
    mu_x, mean_xx, mean_xy = box_filter_3x3(torch.cat([x, x * x, x * target.image], dim=1)).split(channels, dim=1)
    mu_x_squared = mu_x * mu_x
    var_x = mean_xx - mu_x_squared
    cov_xy = mean_xy - mu_x * target.mean
    luminance_numerator = 2 * mu_x * target.mean + SSIM_C1
    contrast_numerator = 2 * cov_xy + SSIM_C2
    luminance_denominator = mu_x_squared + target.mean_squared + SSIM_C1
    contrast_denominator = var_x + target.variance + SSIM_C2
    value = (luminance_numerator * contrast_numerator) / (luminance_denominator * contrast_denominator)
    return value, mu_x, luminance_numerator, contrast_numerator, luminance_denominator, contrast_denominator


def _photometric_error_and_gradient_maps(
    prediction: torch.Tensor, target: PhotometricTarget, ssim_weight: float, gradient_maps: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The error of :func:`photometric_error` and, if asked, what its backward needs.

    The gradient maps are ``d error / d (mu_x, mean_xx, mean_xy)`` per channel,
    ``(B, 3C, H, W)``: SSIM depends on the prediction only through these three 3x3 means
    of ``x``, ``x^2`` and ``x y``.
    """
    channels = prediction.shape[1]
    value, mu_x, luminance_numerator, contrast_numerator, luminance_denominator, contrast_denominator = (
        _ssim_terms(prediction, target))
    dissimilarity = (1.0 - value) / 2.0
    absolute = (prediction - target.image).abs().mean(dim=1, keepdim=True)
    error = ssim_weight * dissimilarity.clamp(0.0, 1.0).mean(dim=1, keepdim=True) + (1.0 - ssim_weight) * absolute
    if not gradient_maps:
        return error, None
    # d error / d SSIM per channel; zero where the clamp to [0, 1] holds (inclusive
    # bounds, as autograd's clamp).
    inside = (dissimilarity >= 0.0) & (dissimilarity <= 1.0)
    d_ssim = inside.to(prediction.dtype).mul_(-ssim_weight / (2.0 * channels))
    denominator = luminance_denominator * contrast_denominator
    d_ssim_over_denominator = d_ssim / denominator
    # SSIM = N / D, N = l_n c_n, D = l_d c_d, with l_n = 2 mu_x mu_y + C1,
    # c_n = 2 (mean_xy - mu_x mu_y) + C2, l_d = mu_x^2 + mu_y^2 + C1,
    # c_d = mean_xx - mu_x^2 + var_y + C2:
    # dS/dmu_x = (2 mu_y (c_n - l_n) - 2 mu_x S (c_d - l_d)) / D,
    # dS/dmean_xx = -S / c_d, dS/dmean_xy = 2 l_n / D.
    d_mean = 2.0 * (target.mean * (contrast_numerator - luminance_numerator)
                    - mu_x * value * (contrast_denominator - luminance_denominator)) * d_ssim_over_denominator
    d_mean_square = -value * d_ssim / contrast_denominator
    d_mean_product = 2.0 * luminance_numerator * d_ssim_over_denominator
    return error, torch.cat([d_mean, d_mean_square, d_mean_product], dim=1)


class _PhotometricError(torch.autograd.Function):
    """:func:`photometric_error` with a hand-written backward for a target without gradient.

    Autograd would keep a dozen full-resolution intermediates of SSIM per call; this keeps
    the prediction and three gradient maps, and its backward is one adjoint box filter.
    """

    @staticmethod
    def forward(ctx, prediction: torch.Tensor, target: PhotometricTarget, ssim_weight: float) -> torch.Tensor:
        error, gradient_maps = _photometric_error_and_gradient_maps(prediction, target, ssim_weight, True)
        ctx.save_for_backward(prediction, target.image, gradient_maps)
        ctx.ssim_weight = ssim_weight
        return error

    @staticmethod
    def backward(ctx, grad_error: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        prediction, target_image, gradient_maps = ctx.saved_tensors
        channels = prediction.shape[1]
        d_mean, d_mean_square, d_mean_product = _box_filter_3x3_adjoint(gradient_maps * grad_error).split(
            channels, dim=1)
        grad = torch.sign(prediction - target_image).mul_(grad_error).mul_((1.0 - ctx.ssim_weight) / channels)
        grad += d_mean
        grad.addcmul_(prediction, d_mean_square, value=2.0)
        grad.addcmul_(target_image, d_mean_product)
        return grad, None, None


def photometric_error(
    prediction: torch.Tensor, target: torch.Tensor | PhotometricTarget, ssim_weight: float = 0.85
) -> torch.Tensor:
    """Per-pixel ``ssim_weight * (1 - SSIM) / 2 + (1 - ssim_weight) * L1``, averaged over channels.

    ``(1 - SSIM) / 2`` is clamped to [0, 1].

    Args:
        prediction: ``(B, C, H, W)`` synthesised (warped) image, values in [0, 1].
        target: ``(B, C, H, W)`` image it should reproduce, or its :class:`PhotometricTarget`
            when several predictions are compared with the same image.
        ssim_weight: weight of the SSIM term in [0, 1] (0.85 in the recipe).

    Returns:
        ``(B, 1, H, W)`` error, 0 for identical images. Differentiable w.r.t. both inputs.
    """
    if not isinstance(target, PhotometricTarget):
        _check_image_pair("prediction", prediction, "target", target)
        target = PhotometricTarget(target)
    else:
        _check_image_pair("prediction", prediction, "target", target.image)
    if not 0.0 <= ssim_weight <= 1.0:
        raise ValueError(f"ssim_weight must be in [0, 1], got {ssim_weight}")
    if prediction.requires_grad and not target.image.requires_grad and torch.is_grad_enabled():
        return _PhotometricError.apply(prediction, target, ssim_weight)
    return _photometric_error_and_gradient_maps(prediction, target, ssim_weight, gradient_maps=False)[0]


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
        per_pixel_loss = _first_minimum(reprojection_errors)[0]
        return per_pixel_loss, torch.ones_like(per_pixel_loss, dtype=torch.bool)

    batch, _, height, width = reprojection_errors.shape
    if identity_errors.ndim != 4 or identity_errors.shape[0] != batch or identity_errors.shape[2:] != (height, width):
        raise ValueError(
            f"identity_errors must have shape ({batch}, S, {height}, {width}) to match reprojection_errors, "
            f"got {tuple(identity_errors.shape)}"
        )
    # Compared with the offsets, identities win ties (as argmin's first index would with
    # the identities listed first); the loss is the winner's true error.
    shifted_identity = identity_errors.detach() - TIE_OFFSET * torch.rand_like(identity_errors)
    best_identity, identity_winner = _first_minimum(shifted_identity)
    best_reprojection, _ = _first_minimum(reprojection_errors)
    automask = best_reprojection.detach() < best_identity
    per_pixel_loss = torch.where(automask, best_reprojection, identity_errors.gather(1, identity_winner))
    return per_pixel_loss, automask


def _first_minimum(errors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimum over dim 1 and the first index reaching it, both ``(B, 1, H, W)``.

    A running elementwise comparison over the few candidates: a reduction along dim 1 of
    these maps is many times slower on the CPU. Gradients flow to the minimum's entry.
    """
    candidates = errors.unbind(dim=1)
    best = candidates[0]
    index = torch.zeros_like(best, dtype=torch.long)
    for position, candidate in enumerate(candidates[1:], start=1):
        better = candidate < best
        best = torch.where(better, candidate, best)
        index.masked_fill_(better, position)
    return best.unsqueeze(1), index.unsqueeze(1)
