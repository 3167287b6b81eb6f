"""Guardrails of training and fine-tuning: never silently worse, never silently implausible.

:func:`validation_error` is the trainer's validation of any pair of networks (a starting
model, a checkpoint) on one process; :func:`worse_than_start` is the one line a run says
when training made that error worse, and the output is then the starting model (``dna-depth
train --init``, :mod:`~dna_depth_core.training.run_output`; ``dna-depth finetune-bag``).
:func:`scale_problems` says, in one line each, what is wrong with a result's unit: a
nearest possible depth beyond :data:`NEAREST_DEPTH_WARNING`, or a unit that makes the
platform move implausibly (against the odometry when the bag has it, else outside
:data:`PLAUSIBLE_SPEED`). The fine-tune warns with them whatever route produced the unit.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .calibration import calibration_subset, frame_intervals
from .config import TrainConfig
from .distributed import DistributedContext
from .validation import ABS_REL, PHOTOMETRIC, ValidationResult, validate

NEAREST_DEPTH_WARNING = 1.0
"""Metres; a model whose nearest possible depth (``min_depth x depth_scale``) is beyond
this cannot see a robot's obstacles."""

PLAUSIBLE_SPEED = (0.02, 40.0)
"""m/s; without odometry, a unit that makes the camera move slower or faster than this
between frames (a creeping robot to a motorway) is implausible."""

ODOMETRY_SPEED_FACTOR = 2.0
"""With odometry, a unit whose implied speed is off the odometry's by more than this factor
is implausible."""


CRITERION_NAMES = {PHOTOMETRIC: "photometric error", ABS_REL: "AbsRel"}
"""How the one-line messages name a validation criterion."""


def validation_error(depth_net: nn.Module, pose_net: nn.Module, dataset: Dataset, config: TrainConfig,
                     metric_depth: bool, device: torch.device) -> ValidationResult:
    """The trainer's validation of these networks on all of ``dataset`` in this process: the
    same loss, criterion (AbsRel with ground truth, else the photometric error; lower is
    better) and depth limits (``config.validation``). The networks are left in eval mode;
    the random draws (auto-mask noise) do not shift the caller's streams.

    Args:
        metric_depth: the networks predict metres (AbsRel without median scaling).
    """
    loader = DataLoader(dataset, batch_size=config.data.batch_size, shuffle=False)
    options = config.validation
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        return validate(depth_net.to(device), pose_net.to(device), loader, DistributedContext(device=device),
                        config.loss, metric_depth, options.min_depth, options.max_depth, options.garg_crop)


def worse_than_start(activity: str, criterion: str, before: float, best: float, best_name: str) -> str | None:
    """The line saying that ``activity`` (``"training"``, ``"fine-tuning"``) made the
    validation ``criterion`` worse, from ``before`` (the starting model) to ``best`` (the
    checkpoint ``best_name``), so the output is the starting model; ``None`` when it is not worse."""
    if not best > before:
        return None
    return (f"{activity} made the validation {CRITERION_NAMES.get(criterion, criterion)} worse ({before:.4f} -> "
            f"{best:.4f} for {best_name}); the output is the starting model")


def odometry_speed(dataset, max_samples: int = 64) -> float:
    """Median camera speed in m/s by the odometry over up to ``max_samples`` evenly spread
    triplets of a bag dataset with odometry (NaN when it has none)."""
    if not dataset.with_distance:
        return float("nan")
    indices = calibration_subset(dataset, max_samples).indices
    stamps, seconds = frame_intervals(dataset, indices)
    metres = np.array([dataset.sequences[int(row[0])].odometry.distance(np.full(2, stamp[1]), stamp[[0, 2]])
                       for row, stamp in zip(dataset.triplets[indices], stamps)])
    moving = seconds > 0
    return float(np.nanmedian(metres[moving] / seconds[moving])) if moving.any() else float("nan")


def scale_problems(metres_per_unit: float | None, min_depth: float, implied: float, odometry: float) -> list[str]:
    """One line per problem with a result's unit; empty when there is none (or it is relative).

    Args:
        metres_per_unit: the result's unit, ``None`` for relative depth.
        min_depth: depth of disparity 1, network units.
        implied: the speed its pose network implies with that unit, m/s (NaN: unknown).
        odometry: the odometry's speed, m/s (NaN: no odometry).
    """
    if metres_per_unit is None:
        return []
    problems = []
    nearest = min_depth * metres_per_unit
    if nearest > NEAREST_DEPTH_WARNING:
        problems.append(
            f"the depth unit is {metres_per_unit:.3g} m, so the model cannot predict depth nearer than {nearest:.2g} m "
            "(loss.min_depth units); start from a metric model with a close range, or train from scratch on the bags")
    if math.isfinite(implied) and math.isfinite(odometry) and odometry > 0:
        if not 1 / ODOMETRY_SPEED_FACTOR <= implied / odometry <= ODOMETRY_SPEED_FACTOR:
            problems.append(f"the depth unit ({metres_per_unit:.3g} m) makes the camera move at {implied:.3g} m/s, "
                            f"the odometry says {odometry:.3g} m/s: the unit is implausible for the bag's motion")
    elif math.isfinite(implied) and not PLAUSIBLE_SPEED[0] <= implied <= PLAUSIBLE_SPEED[1]:
        problems.append(f"the depth unit ({metres_per_unit:.3g} m) makes the camera move at {implied:.3g} m/s, "
                        f"outside {PLAUSIBLE_SPEED[0]:g}-{PLAUSIBLE_SPEED[1]:g} m/s: the unit is implausible for the "
                        "bag's motion")
    return problems
