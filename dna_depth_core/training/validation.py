"""Validation during training: photometric loss, and depth metrics when ground truth is known."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..metrics import ABS_REL, METRIC_NAMES, NoValidPixelsError, evaluate_depth_map
from ..geometry import disp_to_depth
from ..losses import SelfSupervisedLossConfig
from .distributed import DistributedContext, all_reduce_sum
from .objective import compute_objective

PHOTOMETRIC = "photometric"
"""Criterion name when the validation samples carry no ground-truth depth."""


@dataclass
class ValidationResult:
    """Validation summary over all processes.

    Attributes:
        criterion: ``"abs_rel"`` when samples had ``depth_gt``, else ``"photometric"``;
            the value that selects ``best.safetensors`` (lower is better).
        value: the criterion's value.
        metrics: ``photometric`` (mean over samples) and, with ground truth, the depth
            metrics of :mod:`dna_depth_core.metrics` averaged over images.
        num_samples: validation samples seen.
    """

    criterion: str
    value: float
    metrics: dict[str, float]
    num_samples: int


@torch.no_grad()
def validate(
    depth_net: nn.Module,
    pose_net: nn.Module,
    loader: DataLoader,
    context: DistributedContext,
    loss_config: SelfSupervisedLossConfig,
    metric_depth: bool,
    min_depth: float = 1e-3,
    max_depth: float = 80.0,
    garg_crop: bool = False,
    autocast: bool = False,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> ValidationResult:
    """Evaluate the networks (in eval mode, un-augmented) on this process's shard, reduced over all.

    Args:
        depth_net, pose_net: networks (put in eval mode here; the caller restores train mode).
        loader: validation samples (``frames``, ``intrinsics``, optional ``depth_gt``).
        context: process placement.
        loss_config: loss for the photometric criterion.
        metric_depth: the network predicts metres (no median scaling).
        min_depth, max_depth: ground-truth range evaluated, metres.
        garg_crop: restrict depth metrics to the Garg crop.
        autocast: run networks under CUDA float16 autocast.
        memory_format: memory format of network inputs.
    """
    depth_net.eval()
    pose_net.eval()
    photometric_sum, num_samples = 0.0, 0
    metric_sums = torch.zeros(len(METRIC_NAMES), dtype=torch.float64)
    num_images = 0
    for batch in loader:
        frames = batch["frames"].to(context.device, non_blocking=True)
        intrinsics = batch["intrinsics"].to(context.device, non_blocking=True)
        output = compute_objective(depth_net, pose_net, frames, frames, intrinsics, loss_config,
                                   autocast=autocast, memory_format=memory_format)
        photometric_sum += float(output.loss.photometric) * frames.shape[0]
        num_samples += frames.shape[0]
        if "depth_gt" not in batch:
            continue
        depth = disp_to_depth(output.disparities[0], loss_config.min_depth, loss_config.max_depth)
        for predicted, truth in zip(depth[:, 0].cpu().numpy(), batch["depth_gt"][:, 0].numpy()):
            try:
                values, _ = evaluate_depth_map(truth, predicted, min_depth, max_depth, garg_crop,
                                               median_scaling=not metric_depth)
            except NoValidPixelsError:
                continue
            metric_sums += torch.tensor([values[name] for name in METRIC_NAMES], dtype=torch.float64)
            num_images += 1
    totals = all_reduce_sum(context, torch.cat([
        torch.tensor([photometric_sum, num_samples, num_images], dtype=torch.float64), metric_sums]))
    photometric_sum, num_samples, num_images = totals[:3].tolist()
    if num_samples == 0:
        raise ValueError("the validation set is empty")
    metrics = {PHOTOMETRIC: photometric_sum / num_samples}
    if num_images > 0:
        metrics.update({name: float(value) / num_images for name, value in zip(METRIC_NAMES, totals[3:])})
        return ValidationResult(ABS_REL, metrics[ABS_REL], metrics, int(num_samples))
    return ValidationResult(PHOTOMETRIC, metrics[PHOTOMETRIC], metrics, int(num_samples))
