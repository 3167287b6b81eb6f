"""How far the pose network's translations agree with the depth network's depth.

Photometric consistency fixes only the ratio of depth to translation, and only after
training has converged: a depth network trained on one kind of scene and a pose network
run on another (or trained apart from it) can disagree by a large factor. That factor is
what :func:`consistent_translation_scale` measures, with the training loss itself.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..losses import SelfSupervisedLossConfig, self_supervised_loss
from .objective import predict_target_to_source

COARSE_SCALES = np.geomspace(1 / 16, 16, 17)
"""Translation multipliers searched first: 1/16 to 16, a factor of sqrt(2) apart."""

REFINEMENTS = 2
"""Rounds of search between the best multiplier's neighbours: steps of 9 %, then 2 %."""

REFINE_POINTS = 9
"""Multipliers per refinement round."""


@torch.no_grad()
def consistent_translation_scale(
    depth_net: nn.Module,
    pose_net: nn.Module,
    loader: DataLoader,
    loss_config: SelfSupervisedLossConfig,
    device: torch.device,
    progress: bool = False,
) -> float:
    """The multiplier ``m`` of the pose network's translations that minimises the photometric
    loss with the depth network's depth: translations times ``m`` are in the depth's unit.

    Both networks run once per sample (in eval mode, restored afterwards); the loss is then
    evaluated for log-spaced multipliers from 1/16 to 16 and refined around the best one.
    Only the full-resolution disparity enters the loss: the coarser ones are upsampled to
    full resolution by the training loss anyway and would only multiply the cost.

    Args:
        depth_net: depth network.
        pose_net: pose network.
        loader: batches with ``frames`` ``(B, 3, 3, H, W)`` RGB in [0, 1] ([t-1, t, t+1]) and
            ``intrinsics`` ``(B, 3, 3)`` in pixels.
        loss_config: the training loss (depth range, SSIM weight, auto-masking).
        device: where to run the networks and the loss.
        progress: show progress bars (a minute or more on a CPU for 64 samples).

    Returns:
        ``m`` (> 0, dimensionless), within [1/16, 16].

    Raises:
        ValueError: ``loader`` yields no samples.
    """
    modes = depth_net.training, pose_net.training
    depth_net.eval()
    pose_net.eval()
    batches = []
    try:
        for batch in tqdm(loader, desc="pose fit: running the networks", unit="batch", leave=False,
                          disable=not progress):
            frames = batch["frames"].to(device)
            disparities = [depth_net(frames[:, 1], multiscale=False).float()]
            target_to_source, _ = predict_target_to_source(pose_net, frames)
            batches.append((frames, batch["intrinsics"].to(device), disparities, target_to_source))
    finally:
        depth_net.train(modes[0])
        pose_net.train(modes[1])
    if not batches:
        raise ValueError("consistent_translation_scale needs at least one sample")

    def photometric(scale: float) -> float:
        total, count = 0.0, 0
        for frames, intrinsics, disparities, target_to_source in batches:
            scaled = []
            for transform in target_to_source:
                transform = transform.clone()
                transform[:, :3, 3] *= scale
                scaled.append(transform)
            loss = self_supervised_loss(disparities, frames, scaled, intrinsics, loss_config)
            total += float(loss.photometric) * frames.shape[0]
            count += frames.shape[0]
        return total / count

    scales, best_scale = COARSE_SCALES, 1.0
    bar = tqdm(total=len(COARSE_SCALES) + REFINEMENTS * REFINE_POINTS, desc="pose fit: translation multipliers",
               unit="multiplier", leave=False, disable=not progress)
    with bar:
        for _ in range(REFINEMENTS + 1):
            errors = []
            for scale in scales:
                errors.append(photometric(scale))
                bar.update()
            best = int(np.argmin(errors))
            best_scale = float(scales[best])
            scales = np.geomspace(scales[max(best - 1, 0)], scales[min(best + 1, len(scales) - 1)], REFINE_POINTS)
    return best_scale
