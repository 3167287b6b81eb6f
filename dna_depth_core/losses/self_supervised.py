"""The self-supervised monocular training loss (Monodepth2 recipe, as DNA-Depth was trained).

For a target frame ``t`` with sources ``t-1`` and ``t+1``, at every output scale ``s``:

1. the scale-``s`` disparity is upsampled (bilinear) to the full input resolution and
   converted to depth in ``[min_depth, max_depth]``;
2. each source is warped into the target view with that depth, its ``target_to_source``
   transform and the full-resolution intrinsics;
3. the photometric error (``0.85 * (1 - SSIM) / 2 + 0.15 * L1``) of each warped source is
   reduced by a per-pixel minimum over sources, with auto-masking (the un-warped sources
   enter the same minimum) and averaged over all pixels;
4. edge-aware smoothness of the scale-``s`` mean-normalised disparity against the target
   downsampled to scale ``s`` is added with weight ``smoothness_weight / 2^s``.

The total is the mean over scales. As in the recipe, pixels that project outside a source
are not masked: they compare against the source's repeated border and the per-pixel
minimum usually picks the other source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import require
from ..geometry.camera import pixel_rays
from ..geometry.depth import disp_to_depth
from ..geometry.warp import warp_to_target
from .photometric import PhotometricTarget, min_reprojection, photometric_error
from .smoothness import edge_aware_smoothness


@dataclass
class SelfSupervisedLossConfig:
    """Weights and depth range of the self-supervised loss."""

    ssim_weight: float = 0.85
    """Weight of ``(1 - SSIM) / 2`` in the photometric error; L1 gets ``1 - ssim_weight``."""
    smoothness_weight: float = 1e-3
    """Edge-aware smoothness weight at scale 0; halved at each coarser scale."""
    automask: bool = True
    """Let un-warped sources enter the per-pixel minimum, ignoring static pixels."""
    min_depth: float = 0.1
    """Depth at disparity 1, in network depth units (metres for KITTI)."""
    max_depth: float = 100.0
    """Depth at disparity 0, in network depth units."""

    def __post_init__(self) -> None:
        require(0.0 <= self.ssim_weight <= 1.0, f"loss ssim_weight must be in [0, 1], got {self.ssim_weight}")
        require(self.smoothness_weight >= 0.0, f"loss smoothness_weight must be >= 0, got {self.smoothness_weight}")
        require(0.0 < self.min_depth < self.max_depth,
                f"loss depth range needs 0 < min_depth < max_depth, got {self.min_depth} and {self.max_depth}")


@dataclass
class SelfSupervisedLossOutput:
    """Result of :func:`self_supervised_loss`; ``total == photometric + smoothness``."""

    total: torch.Tensor
    """Scalar loss to minimise: mean over scales of photometric + weighted smoothness."""
    photometric: torch.Tensor
    """Scalar photometric part, mean over scales."""
    smoothness: torch.Tensor
    """Scalar smoothness part (already weighted by ``smoothness_weight / 2^s``), mean over scales."""
    automask: torch.Tensor
    """``(B, 1, H, W)`` bool at scale 0: True where a warped source beat the un-warped ones."""
    warped: torch.Tensor
    """``(B, 2, 3, H, W)`` sources (t-1, t+1) warped into the target at scale 0, detached."""
    per_scale: list[float]
    """Total loss of each scale, coarsest last."""


def _check_inputs(
    disparities: Sequence[torch.Tensor],
    frames: torch.Tensor,
    target_to_source: Sequence[torch.Tensor],
    intrinsics: torch.Tensor,
) -> None:
    if frames.ndim != 5 or frames.shape[1:3] != (3, 3):
        raise ValueError(f"frames must have shape (B, 3, 3, H, W) [t-1, t, t+1], got {tuple(frames.shape)}")
    batch, _, _, height, width = frames.shape
    if len(disparities) == 0:
        raise ValueError("disparities must hold at least one scale")
    for scale, disparity in enumerate(disparities):
        expected = (batch, 1, height // 2**scale, width // 2**scale)
        if tuple(disparity.shape) != expected:
            raise ValueError(f"disparities[{scale}] must have shape {expected}, got {tuple(disparity.shape)}")
    if len(target_to_source) != 2:
        raise ValueError(f"target_to_source must hold 2 transforms [for t-1, for t+1], got {len(target_to_source)}")
    for index, transform in enumerate(target_to_source):
        if tuple(transform.shape) != (batch, 4, 4):
            raise ValueError(f"target_to_source[{index}] must have shape ({batch}, 4, 4), got {tuple(transform.shape)}")
    if tuple(intrinsics.shape) != (batch, 3, 3):
        raise ValueError(f"intrinsics must have shape ({batch}, 3, 3), got {tuple(intrinsics.shape)}")


def self_supervised_loss(
    disparities: Sequence[torch.Tensor],
    frames: torch.Tensor,
    target_to_source: Sequence[torch.Tensor],
    intrinsics: torch.Tensor,
    config: SelfSupervisedLossConfig | None = None,
) -> SelfSupervisedLossOutput:
    """Multi-scale photometric + smoothness loss of a target frame and its two neighbours.

    Differentiable w.r.t. ``disparities`` and ``target_to_source``.

    Args:
        disparities: per scale ``s`` a ``(B, 1, H / 2^s, W / 2^s)`` disparity in [0, 1]
            (the depth network's multi-scale output; four scales in the recipe).
        frames: ``(B, 3, 3, H, W)`` un-augmented RGB in [0, 1], ordered [t-1, t, t+1].
        target_to_source: two ``(B, 4, 4)`` transforms mapping target-camera points to the
            t-1 and t+1 cameras (see :mod:`dna_depth_core.geometry.pose`).
        intrinsics: ``(B, 3, 3)`` in pixels of the full ``H x W`` frames.
        config: weights and depth range; defaults to :class:`SelfSupervisedLossConfig`.

    Returns:
        :class:`SelfSupervisedLossOutput`.
    """
    config = config or SelfSupervisedLossConfig()
    _check_inputs(disparities, frames, target_to_source, intrinsics)
    batch, _, channels, height, width = frames.shape
    target = frames[:, 1]
    # Both sources go through each warp as one batch of 2B: [t-1 samples..., t+1 samples...].
    sources = torch.cat([frames[:, 0], frames[:, 2]], dim=0)
    # The target's SSIM statistics and the pixel rays serve every scale.
    targets = PhotometricTarget(target.repeat(2, 1, 1, 1))
    transforms = torch.cat(list(target_to_source), dim=0)
    pair_intrinsics = intrinsics.repeat(2, 1, 1)
    rays = pixel_rays(pair_intrinsics, height, width, frames.dtype)

    def per_source(errors: torch.Tensor) -> torch.Tensor:
        """``(2B, 1, H, W)`` -> ``(B, 2, H, W)``."""
        return errors.view(2, batch, height, width).transpose(0, 1)

    identity_errors = per_source(photometric_error(sources, targets, config.ssim_weight)) if config.automask else None

    photometric_terms, smoothness_terms = [], []
    for scale, disparity in enumerate(disparities):
        full_disparity = disparity
        if scale > 0:
            full_disparity = F.interpolate(disparity, size=(height, width), mode="bilinear", align_corners=False)
        depth = disp_to_depth(full_disparity, config.min_depth, config.max_depth)
        warped, _ = warp_to_target(sources, depth.repeat(2, 1, 1, 1), transforms, pair_intrinsics, rays)
        reprojection_errors = per_source(photometric_error(warped, targets, config.ssim_weight))
        per_pixel_loss, automask = min_reprojection(reprojection_errors, identity_errors)
        photometric_terms.append(per_pixel_loss.mean())

        scaled_target = target if scale == 0 else F.interpolate(target, size=disparity.shape[-2:], mode="area")
        smoothness = edge_aware_smoothness(disparity, scaled_target)
        smoothness_terms.append(config.smoothness_weight / 2**scale * smoothness)
        if scale == 0:
            automask_full = automask
            warped_full = warped.detach().view(2, batch, channels, height, width).transpose(0, 1)

    photometric = torch.stack(photometric_terms).mean()
    smoothness = torch.stack(smoothness_terms).mean()
    per_scale = [float(p.detach() + s.detach()) for p, s in zip(photometric_terms, smoothness_terms)]
    return SelfSupervisedLossOutput(
        total=photometric + smoothness,
        photometric=photometric,
        smoothness=smoothness,
        automask=automask_full,
        warped=warped_full,
        per_scale=per_scale,
    )
