"""Measure precision configurations against float32 on ground truth: the figures of a precision record.

Each configuration (precision, backend) runs on held-out synthetic sequences of every
scene style (:data:`~dna_depth_core.data.synthetic.STYLES`: street, corridor, the
ground robot's rectified frames) at the network input size,
seeds from :data:`TEST_SEED` on (those of ``dna-depth evaluate --data synthetic``, which
training never uses), evaluated with the synthetic protocol (whole frame, 1e-3..80 m,
median scaling unless the checkpoint is metric). The reference is PyTorch eager float32
on the original network. Per style it yields the change of mean AbsRel and d<1.25 and the
99th percentile of the per-pixel relative depth change; a configuration's change is the
worst over the styles, judged by :func:`~dna_depth_core.inference.precision.budget_verdict`.
Latency is the median of batch-1 forward passes timed interleaved round-robin, so load
from other processes hits every configuration alike.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import ModelMetadata
from ..data.synthetic import STYLES, generate_sequence, scene_config
from ..geometry import disp_to_depth
from ..inference import DepthEstimator
from ..inference.backends import backend_available
from ..inference.precision import (
    DEFAULT_BUDGET, PRECISION_BACKENDS, AccuracyBudget, AccuracyChange, BudgetVerdict, MeasuredConfiguration,
    PrecisionRecord, budget_verdict, precision_unavailable_reason, weights_fingerprint,
)
from .evaluate import SYNTHETIC_PROTOCOL, EvaluationProtocol
from ..metrics import ABS_REL, DELTA_1, evaluate_depth_map, mean_metrics

TEST_SEED = 100_000
"""First seed of the test sequences (``dna-depth evaluate``'s held-out synthetic seeds)."""


@dataclass
class StyleTestSet:
    """Ground-truth test frames of one scene style at the network input size.

    Attributes:
        style: the scene style.
        images: uint8 ``(h, w, 3)`` RGB frames (rectified, for the robot's distorted camera).
        depths: float32 ``(h, w)`` ground-truth depth in metres, 0 where unknown (sky).
    """

    style: str
    images: list[np.ndarray]
    depths: list[np.ndarray]


def budget_test_sets(
    height: int, width: int, sequences: int = 2, frames: int = 6, styles: tuple[str, ...] = STYLES,
    seed: int = TEST_SEED,
) -> list[StyleTestSet]:
    """Render ``sequences`` test sequences of ``frames`` frames for each style, ``height`` x ``width`` pixels."""
    test_sets = []
    for style in styles:
        config = scene_config(style, height, width, frames_per_sequence=max(frames, 3))
        images, depths = [], []
        for sequence_seed in range(seed, seed + sequences):
            sequence = generate_sequence(config, sequence_seed)
            images.extend(sequence.images[:frames])
            depths.extend(sequence.depths[:frames])
        test_sets.append(StyleTestSet(style, images, depths))
    return test_sets


def describe_test_sets(test_sets: list[StyleTestSet], seed: int = TEST_SEED) -> str:
    """One line naming the test images, e.g. for :attr:`PrecisionRecord.test_data`."""
    height, width = test_sets[0].images[0].shape[:2]
    counts = ", ".join(f"{len(test_set.images)} {test_set.style}" for test_set in test_sets)
    return f"synthetic test sequences (seeds {seed}+) at {width}x{height}: {counts} frames"


Forward = Callable[[torch.Tensor], torch.Tensor]
"""``(1, 3, h, w)`` float RGB in [0, 1] -> ``(1, 1, h, w)`` disparity."""


def predict_depths(forward: Forward, test_sets: list[StyleTestSet], metadata: ModelMetadata,
                   device: torch.device) -> list[list[np.ndarray]]:
    """Depth (``depth_scale`` x network depth) of ``forward`` on every frame, per style."""
    depths = []
    for test_set in test_sets:
        style_depths = []
        for image in test_set.images:
            tensor = torch.from_numpy(image).to(device).permute(2, 0, 1)[None].float().div_(255.0)
            with torch.inference_mode():
                disparity = forward(tensor).float()
            depth = disp_to_depth(disparity, metadata.min_depth, metadata.max_depth)[0, 0].cpu().numpy()
            style_depths.append(depth * np.float32(metadata.depth_scale))
        depths.append(style_depths)
    return depths


def accuracy_changes(
    reference: list[list[np.ndarray]], candidate: list[list[np.ndarray]], test_sets: list[StyleTestSet],
    protocol: EvaluationProtocol,
) -> list[AccuracyChange]:
    """Per style, what ``candidate`` depths change against ``reference`` on ground truth."""
    changes = []
    for test_set, reference_depths, candidate_depths in zip(test_sets, reference, candidate, strict=True):
        def metrics(depths: list[np.ndarray]) -> dict[str, float]:
            return mean_metrics([
                evaluate_depth_map(gt, depth, protocol.min_depth, protocol.max_depth, garg_crop=protocol.garg_crop,
                                   median_scaling=protocol.median_scaling)[0]
                for gt, depth in zip(test_set.depths, depths, strict=True)
            ])

        before, after = metrics(reference_depths), metrics(candidate_depths)
        relative = np.concatenate([
            (np.abs(c.astype(np.float64) - r) / r).ravel() for r, c in zip(reference_depths, candidate_depths,
                                                                            strict=True)
        ])
        changes.append(AccuracyChange(
            abs_rel=after[ABS_REL] - before[ABS_REL], d1=after[DELTA_1] - before[DELTA_1],
            pixel_change_p99=float(np.percentile(relative, 99)),
        ))
    return changes


@dataclass
class ConfigurationResult:
    """One measured configuration.

    Attributes:
        precision: the precision.
        backend: the backend.
        per_style: the change per test style.
        change: the worst of ``per_style``.
        verdict: the budget's verdict on ``change``.
        latency_ms: median batch-1 latency, milliseconds.
    """

    precision: str
    backend: str
    per_style: dict[str, AccuracyChange]
    change: AccuracyChange
    verdict: BudgetVerdict
    latency_ms: float


def available_configurations(device: torch.device, has_int8_model: bool) -> list[tuple[str, str]]:
    """Every (precision, backend) that can run on ``device`` here, float32 first."""
    configurations = []
    for (device_type, precision), backends in PRECISION_BACKENDS.items():
        if device_type != device.type or precision_unavailable_reason(precision, device):
            continue
        if precision == "int8" and not has_int8_model:
            continue
        configurations.extend((precision, backend) for backend in backends if backend_available(backend, device))
    return configurations


def measure_configurations(
    depth_net: torch.nn.Module,
    metadata: ModelMetadata,
    device: torch.device,
    configurations: list[tuple[str, str]],
    test_sets: list[StyleTestSet],
    int8_model: bytes | None = None,
    rounds: int = 10,
    budget: AccuracyBudget = DEFAULT_BUDGET,
    log: Callable[[str], None] = print,
) -> list[ConfigurationResult]:
    """Run every configuration on the test sets and time it (see the module docstring)."""
    protocol = dataclasses.replace(SYNTHETIC_PROTOCOL, median_scaling=not metadata.metric)
    network = depth_net.eval().to(device)
    reference = predict_depths(lambda images: network(images, multiscale=False), test_sets, metadata, device)
    estimators, changes = {}, {}
    for precision, backend in configurations:
        log(f"running {precision} on {backend} ...")
        estimator = DepthEstimator(depth_net, metadata, device=str(device), backend=backend, precision=precision,
                                   int8_model=int8_model)
        estimators[(precision, backend)] = estimator
        changes[(precision, backend)] = accuracy_changes(
            reference, predict_depths(estimator.predict_disparity, test_sets, metadata, device), test_sets, protocol
        )
    image = torch.from_numpy(test_sets[0].images[0]).to(device).permute(2, 0, 1)[None].float().div_(255.0)
    times: dict[tuple[str, str], list[float]] = {key: [] for key in estimators}
    for _ in range(rounds):
        for key, estimator in estimators.items():
            started = time.perf_counter()
            estimator.predict_disparity(image)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[key].append(time.perf_counter() - started)
    results = []
    for (precision, backend), per_style in changes.items():
        change = AccuracyChange.worst(per_style)
        styles = {test_set.style: style_change for test_set, style_change in zip(test_sets, per_style, strict=True)}
        results.append(ConfigurationResult(precision, backend, styles, change, budget_verdict(change, budget),
                                           statistics.median(times[(precision, backend)]) * 1e3))
    return results


def precision_record(
    results: list[ConfigurationResult], depth_net: torch.nn.Module, metadata: ModelMetadata, device: torch.device,
    machine: str, test_data: str, int8_calibration: str = "", budget: AccuracyBudget = DEFAULT_BUDGET,
) -> PrecisionRecord:
    """The :class:`PrecisionRecord` of measured ``results``."""
    return PrecisionRecord(
        weights=weights_fingerprint(depth_net), height=metadata.height, width=metadata.width, budget=budget,
        machine=machine, test_data=test_data, int8_calibration=int8_calibration,
        configurations=[
            MeasuredConfiguration(
                precision=result.precision, backend=result.backend, device=device.type,
                latency_ms=round(result.latency_ms, 2), abs_rel_change=result.change.abs_rel,
                d1_change=result.change.d1, pixel_change_p99=result.change.pixel_change_p99, met=result.verdict.met,
            )
            for result in results
        ],
    )


def format_results(results: list[ConfigurationResult]) -> str:
    """A markdown table: per configuration the worst change, the per-style changes, latency and verdict."""
    lines = [
        "| precision | backend | ΔAbsRel (worst) | Δd1 (worst) | pixel p99 (worst) | per style ΔAbsRel / Δd1 / p99 "
        "| median latency (ms) | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        per_style = "; ".join(
            f"{style} {c.abs_rel:+.4f} / {c.d1:+.4f} / {c.pixel_change_p99:.2%}"
            for style, c in result.per_style.items()
        )
        lines.append(
            f"| {result.precision} | {result.backend} | {result.change.abs_rel:+.4f} | {result.change.d1:+.4f} "
            f"| {result.change.pixel_change_p99:.2%} | {per_style} | {result.latency_ms:.1f} | {result.verdict} |"
        )
    return "\n".join(lines)


def calibrate_checkpoint(
    source: str | Path,
    destination: str | Path,
    device: torch.device,
    int8: bool = True,
    calibration_frames: tuple[list[np.ndarray], str] | None = None,
    calibration_count: int = 48,
    sequences: int = 2,
    frames: int = 6,
    rounds: int = 10,
    log: Callable[[str], None] = print,
) -> tuple[PrecisionRecord, list[ConfigurationResult]]:
    """Measure every configuration available on ``device`` for checkpoint ``source`` and write
    ``destination`` (may be ``source``) with the :class:`PrecisionRecord` and, when it met the
    budget, the int8 model.

    Args:
        int8: calibrate and measure int8 (CPU only).
        calibration_frames: ``(frames, description)`` to calibrate int8 on; ``None`` reuses
            an int8 model the checkpoint stores, else regenerates the checkpoint's synthetic
            training frames (:func:`~dna_depth_core.export.quantize.training_frames`).
        calibration_count: how many training frames to regenerate.
        sequences, frames: test sequences per style and frames per sequence.
        rounds: timed runs per configuration.

    The record keeps what an earlier record measured on other device types for the same weights.
    """
    from ..checkpoint import load_checkpoint
    from ..errors import UserError
    from ..inference.backends import physical_core_count
    from ..inference.precision import cpu_description, read_checkpoint_precision, write_checkpoint_precision

    checkpoint = load_checkpoint(source)
    depth_net, metadata = checkpoint.depth_net, checkpoint.metadata
    old_record, int8_model = read_checkpoint_precision(source)
    if old_record is not None and old_record.weights != weights_fingerprint(depth_net):
        old_record = None  # measured for other weights: nothing of it still holds
    calibration = old_record.int8_calibration if old_record is not None and int8_model is not None else ""
    if not int8 or device.type != "cpu":
        int8_model, calibration = (None, "") if not int8 else (int8_model, calibration)
    elif calibration_frames is not None or int8_model is None:
        from ..export.quantize import quantize_int8, training_frames

        try:
            images, calibration = calibration_frames or training_frames(metadata, calibration_count)
            log(f"calibrating int8 on {calibration} ...")
            int8_model = quantize_int8(depth_net, metadata, images)
        except UserError as error:
            int8_model, calibration = None, ""
            log(f"int8 not measured: {error}")
    else:
        log(f"int8: measuring the model stored in the checkpoint ({calibration or 'calibration not recorded'})")

    log(f"rendering test sequences ({sequences} x {frames} frames per style) ...")
    test_sets = budget_test_sets(metadata.height, metadata.width, sequences, frames)
    configurations = available_configurations(device, int8_model is not None)
    results = measure_configurations(depth_net, metadata, device, configurations, test_sets, int8_model, rounds, log=log)
    machine = cpu_description() if device.type == "cpu" else torch.cuda.get_device_name(device)
    machine = f"{machine}, {physical_core_count()} physical cores"
    record = precision_record(results, depth_net, metadata, device, machine, describe_test_sets(test_sets, TEST_SEED),
                              calibration)
    if old_record is not None:
        record.configurations += [entry for entry in old_record.configurations if entry.device != device.type]
    # An int8 model that failed the budget is not kept: nothing may run it by accident.
    int8_met = any(entry.met for entry in record.configurations if entry.precision == "int8")
    write_checkpoint_precision(source, destination, record, int8_model if int8_met else None)
    return record, results
