"""Fine-tune DNA-Depth on your own recordings: ``ros2 run dna_depth_ros bag_finetune`` / ``dna-depth finetune-bag``.

Record a bag with your camera (images + camera_info, optionally odometry), then::

    dna-depth finetune-bag my_drive/ --init model.safetensors -o finetune_out
    ros2 launch dna_depth_ros dna_depth.launch.py checkpoint:=$PWD/finetune_out/dna_depth_finetuned.safetensors

Frames come from :mod:`dna_depth_core.data.rosbag.dataset` (cached on disk), training is the
project's :class:`~dna_depth_core.training.Trainer`, self-supervised. With ``--odom-topic``
the depth comes out in metres: the pose network's translations are first rescaled to agree
with the depth network on the bags (the multiplier that minimises the photometric loss),
then measured against the odometry, which gives the model's metres per depth unit
(``depth_scale``). When the starting checkpoint has pose weights (the shipped one has) this
is done before training too, and the run is speed-supervised in that unit (PackNet-SfM
style), which keeps the scale from drifting. The output folder holds:

- ``dna_depth_finetuned.safetensors``: the checkpoint for the node (provenance names the
  bags and topics; ``metric: true`` with odometry);
- ``report.json``, ``loss_curves.png``, ``depth_before_after.png``: validation
  photometric error before and after, loss curves, validation frames with their depth
  before and after fine-tuning;
- ``finetune.yaml``: the settings, which ``--resume`` reads to continue a killed run;
- ``training/``: the trainer's run folder (checkpoints, resume state, TensorBoard logs).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch.utils.data import DataLoader, Dataset, Subset

from dna_depth_core.checkpoint import Checkpoint, atomic_write, load_checkpoint, read_metadata, save_checkpoint
from dna_depth_core.config import config_to_dict, load_config, save_config
from dna_depth_core.errors import UserError
from dna_depth_core.losses import SelfSupervisedLossConfig
from dna_depth_core.networks import PoseNet
from dna_depth_core.training import Trainer, TrainConfig, TrainingSummary, load_train_config
from dna_depth_core.training.distributed import DistributedContext
from dna_depth_core.training.calibration import consistent_translation_scale
from dna_depth_core.training.logger import colorize_disparity
from dna_depth_core.training.objective import predict_target_to_source
from dna_depth_core.training.validation import validate

from dna_depth_core.data.rosbag.dataset import (
    BagDataConfig,
    BagDatasets,
    BagTripletDataset,
    build_bag_datasets,
    with_training_size,
)

FINETUNED_CHECKPOINT = "dna_depth_finetuned.safetensors"
SETTINGS_FILE = "finetune.yaml"
REPORT_FILE = "report.json"
LOSS_CURVES_FILE = "loss_curves.png"
DEPTH_PANEL_FILE = "depth_before_after.png"
TRAINING_DIR = "training"

DEFAULT_SPEED_WEIGHT = 0.05
"""``speed_weight`` used with ``--odom-topic`` unless overridden: the L1 travel error in
metres then weighs about as much as the photometric loss."""

POSE_WARMUP_STEPS = 100
"""``optim.pose_warmup_steps`` when ``--init`` has no pose network (e.g. an imported
depth-only checkpoint): the untrained pose network learns this many steps against the held
depth network first."""

NEAREST_DEPTH_WARNING = 1.0
"""Metres; warn when a calibrated depth unit puts the model's nearest depth beyond this."""

FINETUNE_TRAINING_DEFAULTS = {
    "optim": {"epochs": 10, "lr": 3e-4, "lr_milestones": []},
    "data": {"batch_size": 8, "num_workers": 2},
    "runtime": {"checkpoint_every_steps": 200, "log_every_steps": 10, "image_every_steps": 0},
}
"""Where fine-tuning departs from the from-scratch recipe: a short constant-rate run at 3x
the recipe's rate (at 1e-4, 400 steps on a corridor bag barely reshape a street model's
depth: AbsRel 0.34 against 0.24 at 3e-4), a CPU-friendly batch, frequent resume points.
Everything else is the paper's recipe."""


@dataclass
class FinetuneSettings:
    """Everything that defines a fine-tune run; saved as ``OUTDIR/finetune.yaml``.

    Attributes:
        bags: bag folders or files (absolute paths).
        init: checkpoint the networks start from, ``None`` for the ``train.model`` networks
            (random, or ImageNet encoders with ``model.pretrained=true``).
        data: how frames are taken from the bags.
        train: the trainer's configuration (``runtime.output_dir`` is ``OUTDIR/training``).
        depth_unit: with odometry, metres per depth unit of the ``--init`` model on the bags,
            measured when the run starts (see :func:`consistent_pose_and_unit`) and used for
            speed supervision; ``None`` before that, without odometry, or without a trained
            pose network to measure with (then the unit is measured only at the end).
        translation_scale: with ``depth_unit``, the factor the ``--init`` pose network's
            translations are multiplied by to agree with its depth on the bags.
    """

    bags: list[str] = field(default_factory=list)
    init: str | None = None
    data: BagDataConfig = field(default_factory=BagDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    depth_unit: float | None = None
    translation_scale: float | None = None


def make_settings(
    bags: list[str],
    output_dir: str | Path,
    data: BagDataConfig,
    init: str | None = None,
    overrides: list[str] | None = None,
) -> FinetuneSettings:
    """Settings of a new run: fine-tuning defaults, the training size (``data.height`` /
    ``data.width``, or picked from the first bag's camera, see
    :class:`~dna_depth_core.data.rosbag.dataset.BagDataConfig`), the depth range from
    ``init`` (and a pose warm-up when it has no pose network), speed supervision when
    ``data.odom_topic`` is set, then the user's ``overrides``.

    Raises:
        UserError: no bag, a bad checkpoint, bad overrides, or an override that contradicts
            the data options (``data.height``/``data.width``).
    """
    if not bags:
        raise UserError("give at least one bag (a rosbag2 folder or a .db3/.mcap file)")
    data = with_training_size(bags, data)
    defaults = copy.deepcopy(FINETUNE_TRAINING_DEFAULTS)
    defaults["data"].update({"height": data.height, "width": data.width})
    defaults["runtime"]["output_dir"] = str(Path(output_dir) / TRAINING_DIR)
    if init is not None:
        metadata = read_metadata(init)
        defaults["loss"] = {"min_depth": metadata.min_depth, "max_depth": metadata.max_depth}
        if metadata.pose_encoder is None:
            defaults["optim"]["pose_warmup_steps"] = POSE_WARMUP_STEPS
    if data.odom_topic is not None:
        defaults["speed_weight"] = DEFAULT_SPEED_WEIGHT
    train = load_train_config(defaults, overrides)
    if (train.data.height, train.data.width) != (data.height, data.width):
        raise UserError("set the training size with --height/--width, not data.height/data.width overrides")
    if train.runtime.output_dir != defaults["runtime"]["output_dir"]:
        raise UserError("the training folder is OUTDIR/training; choose OUTDIR with -o, not runtime.output_dir")
    # Absolute paths, so that --resume works from any working directory.
    if data.camera_info_file is not None:
        data = dataclasses.replace(data, camera_info_file=str(Path(data.camera_info_file).resolve()))
    return FinetuneSettings(
        bags=[str(Path(bag).resolve()) for bag in bags],
        init=str(Path(init).resolve()) if init is not None else None,
        data=data,
        train=train,
    )


def load_settings(output_dir: str | Path, overrides: list[str] | None = None) -> FinetuneSettings:
    """The settings a run in ``output_dir`` was started with, plus training ``overrides``
    (e.g. ``optim.max_steps=4`` to go further than a step limit).

    Raises:
        UserError: ``output_dir`` holds no fine-tune run.
    """
    path = Path(output_dir) / SETTINGS_FILE
    if not path.exists():
        raise UserError(f"nothing to resume: {str(path)!r} does not exist; start the fine-tune without --resume")
    settings = load_config(FinetuneSettings, path)
    settings.train.runtime.output_dir = str(Path(output_dir) / TRAINING_DIR)  # the folder may have moved
    if overrides:
        settings.train = load_train_config(config_to_dict(settings.train), overrides)
    return settings


@dataclass
class FinetuneResult:
    """What a fine-tune produced.

    Attributes:
        checkpoint: the fine-tuned checkpoint for the node.
        before: validation metrics of the starting networks (``photometric``).
        after: validation metrics of the fine-tuned networks.
        summary: the trainer's summary of this run (or resumed part).
        datasets: the bag datasets and per-bag summaries.
    """

    checkpoint: Path
    before: dict[str, float]
    after: dict[str, float]
    summary: TrainingSummary
    datasets: BagDatasets


def evaluate_photometric(
    depth_net: torch.nn.Module,
    pose_net: torch.nn.Module,
    dataset: Dataset,
    settings: FinetuneSettings,
    device: torch.device,
) -> dict[str, float]:
    """Mean validation photometric error (SSIM + L1 of the warped sources, the training loss's
    photometric term, un-augmented, lower is better) of the networks on ``dataset``."""
    loader = DataLoader(dataset, batch_size=settings.train.data.batch_size, shuffle=False)
    with torch.random.fork_rng(devices=[]):
        result = validate(
            depth_net.to(device), pose_net.to(device), loader, DistributedContext(device=device),
            settings.train.loss, settings.train.speed_weight > 0,
        )
    return {"photometric": result.metrics["photometric"]}


def _calibration_subset(dataset: BagTripletDataset, max_samples: int = 64) -> Subset:
    """Up to ``max_samples`` evenly spread samples of ``dataset``."""
    indices = np.unique(np.linspace(0, len(dataset) - 1, min(max_samples, len(dataset))).round().astype(int))
    return Subset(dataset, indices.tolist())


@torch.no_grad()
def calibrate_depth_unit(
    pose_net: torch.nn.Module, dataset: BagTripletDataset, device: torch.device, max_samples: int = 64
) -> float:
    """Metres per translation unit of a pose network: median of odometry distance over the
    pose network's translation length, on up to ``max_samples`` evenly spread training samples.

    A self-supervised model predicts depth and motion in one arbitrary unit (photometric
    consistency fixes only their ratio), so once the pose network's translations are in
    its depth network's unit (:func:`consistent_pose_and_unit`), this is the model's
    metres per depth unit. Speed supervision in that unit, with the final checkpoint's
    ``depth_scale`` set to it, makes the fine-tuned model metric without first having to
    learn a change of scale, which takes far longer than a fine-tune.

    Args:
        pose_net: the pose network (left in the mode it was in).
        dataset: samples with ``source_distance`` (in the dataset's ``depth_unit``).
        device: where to run the network.

    Returns:
        Metres per translation unit (> 0).

    Raises:
        UserError: the pose network predicts no motion at all, so there is no unit to measure.
    """
    was_training = pose_net.training
    pose_net.eval()
    ratios = []
    try:
        for batch in DataLoader(_calibration_subset(dataset, max_samples), batch_size=8):
            _, translations = predict_target_to_source(pose_net, batch["frames"].to(device))
            length = translations.norm(dim=-1).cpu()
            moving = (length > 0) & (batch["source_distance"] > 0)
            metres = batch["source_distance"][moving] * dataset.depth_unit
            ratios.append((metres / length[moving]).numpy())
    finally:
        pose_net.train(was_training)
    ratios = np.concatenate(ratios)
    if ratios.size == 0 or not np.isfinite(np.median(ratios)):
        raise UserError("the pose network predicts no motion on these bags, so its depth unit cannot be measured "
                        "against the odometry; check that the camera moves in the bags (--odom-topic)")
    return float(np.median(ratios))


def consistent_pose_and_unit(
    depth_net: torch.nn.Module,
    pose_net: PoseNet,
    dataset: BagTripletDataset,
    loss_config: SelfSupervisedLossConfig,
    device: torch.device,
) -> tuple[float, float]:
    """Put the pose network's translations in the depth network's unit, then measure that
    unit against the odometry.

    A depth network trained on one kind of scene predicts the depth of another in a unit
    of its own, which its pose network does not share (on a synthetic corridor the
    street-trained models' translations are 2-4x too long for their depth). The
    translation multiplier that minimises the photometric loss on these bags
    (:func:`~dna_depth_core.training.calibration.consistent_translation_scale`) is applied
    to ``pose_net`` in place, and :func:`calibrate_depth_unit` then gives metres per depth
    unit: measuring it from the pose network alone would carry that disagreement into
    ``depth_scale``.

    Returns:
        ``(translation_scale, metres_per_unit)``.
    """
    loader = DataLoader(_calibration_subset(dataset), batch_size=8)
    translation_scale = consistent_translation_scale(depth_net, pose_net, loader, loss_config, device)
    pose_net.scale_translation_(translation_scale)
    return translation_scale, calibrate_depth_unit(pose_net, dataset, device)


def _starting_point(settings: FinetuneSettings, dataset: BagTripletDataset) -> Checkpoint | None:
    """The ``--init`` networks with their pose network put in their depth's unit on these
    bags, that unit measured on the CPU (:func:`consistent_pose_and_unit`; sets
    ``settings.translation_scale`` and ``settings.depth_unit``); ``None`` without trained
    pose weights.

    Measured on the new bags rather than taken from the checkpoint's ``depth_scale``: a
    model trained on streets, run on a corridor, predicts corridor depths in a unit of
    its own (self-supervised depth follows the image, not the metres).
    """
    if settings.init is None or read_metadata(settings.init).pose_encoder is None:
        return None
    start = load_checkpoint(settings.init, with_pose=True)
    settings.translation_scale, settings.depth_unit = consistent_pose_and_unit(
        start.depth_net, start.pose_net, dataset, settings.train.loss, torch.device("cpu"))
    return start


@torch.no_grad()
def _disparity(depth_net: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    depth_net.eval()
    device = next(depth_net.parameters()).device
    return depth_net(image[None].to(device), multiscale=False)[0].float().cpu()


def write_depth_panel(
    path: Path, dataset: Dataset, before: torch.nn.Module, after: torch.nn.Module, count: int = 4
) -> None:
    """PNG of ``count`` evenly spaced samples' target frames with depth before and after
    (coloured inverse depth, near = bright, each map scaled to its 95th percentile)."""
    indices = np.unique(np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().astype(int))
    figure = Figure(figsize=(12, 2.2 * len(indices)))
    axes = figure.subplots(len(indices), 3, squeeze=False)
    for row, index in enumerate(indices):
        image = dataset[int(index)]["frames"][1]
        panels = (image, colorize_disparity(_disparity(before, image)), colorize_disparity(_disparity(after, image)))
        titles = ("input", "before fine-tuning (near = bright)", "after fine-tuning")
        for column, (panel, title) in enumerate(zip(panels, titles)):
            axes[row, column].imshow(panel.permute(1, 2, 0).numpy())
            axes[row, column].set_axis_off()
            if row == 0:
                axes[row, column].set_title(title)
    figure.tight_layout()
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=80))


def _scalar_curves(log_dir: Path, history: list[dict[str, float]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Loss curves over the whole run: from the TensorBoard logs (which span resumes), or
    this call's history when the run logs no TensorBoard events."""
    if log_dir.exists():
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        # Events a resumed run repeats replace the killed run's (purge_orphaned_data).
        accumulator = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
        accumulator.Reload()
        curves = {}
        for tag in accumulator.Tags()["scalars"]:
            if tag.startswith(("train/", "val/")) and tag != "train/images_per_second":
                events = accumulator.Scalars(tag)
                curves[tag] = (np.array([e.step for e in events]), np.array([e.value for e in events]))
        if curves:
            return curves
    keys = [key for key in ("loss", "photometric", "smoothness", "speed") if history and key in history[0]]
    steps = np.array([record["step"] for record in history])
    return {f"train/{key}": (steps, np.array([record[key] for record in history])) for key in keys}


def write_loss_curves(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """PNG with one panel per loss term (training per step, validation per epoch)."""
    names = sorted({tag.split("/", 1)[1] for tag in curves})
    figure = Figure(figsize=(4 * max(len(names), 1), 3))
    axes = figure.subplots(1, max(len(names), 1), squeeze=False)
    for axis, name in zip(axes[0], names):
        for split, style in (("train", "-"), ("val", "o-")):
            if f"{split}/{name}" in curves:
                steps, values = curves[f"{split}/{name}"]
                axis.plot(steps, values, style, label=split, markersize=3)
        axis.set_title(name + (" (model units)" if name == "speed" else ""))
        axis.set_xlabel("step")
        axis.legend()
    figure.tight_layout()
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=80))


def _export_checkpoint(
    output_dir: Path, summary: TrainingSummary, datasets: BagDatasets, settings: FinetuneSettings,
    speed_weight: float,
) -> Path:
    """Copy the best (else last) training checkpoint to ``OUTDIR`` with provenance naming the bags.

    With odometry, the fine-tuned pose network, put in the depth's unit, measures that
    unit against the odometry (:func:`consistent_pose_and_unit`), which becomes
    ``depth_scale``: the checkpoint is metric.
    """
    source = summary.best_checkpoint or summary.last_checkpoint
    loaded = load_checkpoint(source, with_pose=True)
    provenance = dict(loaded.metadata.provenance)
    provenance.update({
        "tool": "dna-depth finetune-bag",
        "init_checkpoint": settings.init,
        "bags": [dataclasses.asdict(bag) for bag in datasets.summaries],
        "frame_rate_hz": settings.data.rate,
        "speed_supervision_weight": speed_weight,
        "starting_depth_unit_metres": settings.depth_unit,
        "starting_translation_scale": settings.translation_scale,
        "selected_checkpoint": source.name,
    })
    metadata = dataclasses.replace(loaded.metadata, provenance=provenance, preparation=datasets.train.preparation)
    if datasets.train.with_distance:
        translation_scale, depth_scale = consistent_pose_and_unit(
            loaded.depth_net, loaded.pose_net, datasets.train, settings.train.loss, torch.device("cpu"))
        provenance["depth_scale_calibration"] = (
            f"pose-network translations x {translation_scale:.4g} (photometric best fit to the depth), then the "
            f"median of odometry distance / translation over up to 64 training triplets: {depth_scale:.4g} m per unit"
        )
        metadata = dataclasses.replace(metadata, depth_scale=depth_scale, metric=True)
    destination = output_dir / FINETUNED_CHECKPOINT
    save_checkpoint(destination, loaded.depth_net, metadata, loaded.pose_net)
    return destination


def run_finetune(settings: FinetuneSettings, output_dir: str | Path, resume: bool = False) -> FinetuneResult | None:
    """Fine-tune as ``settings`` say and write the checkpoint and report into ``output_dir``.

    Args:
        settings: from :func:`make_settings` (new run) or :func:`load_settings` (resume).
        output_dir: the run's folder.
        resume: continue the killed or step-limited run in ``output_dir``.

    Returns:
        The result on the main process; ``None`` on the other processes of a torchrun job.
    """
    output_dir = Path(output_dir)
    datasets = build_bag_datasets(settings.bags, settings.data)
    main_process = os.environ.get("RANK", "0") == "0"
    if main_process:
        print(f"training frames: {settings.data.width}x{settings.data.height} pixels", flush=True)
    for bag in datasets.summaries if main_process else ():
        print(
            f"{bag.bag}: {bag.image_topic} + {bag.camera_info_topic or bag.camera_info_file}"
            + (f" + {bag.odom_topic}" if bag.odom_topic else "")
            + f": {bag.frames} frames{' (cached)' if bag.from_cache else ''}, {bag.static_frames} static, "
            f"{bag.segments} segment(s) -> {bag.train_triplets} training / {bag.val_triplets} validation triplets",
            flush=True,
        )
    # A resumed run restores its own weights: the starting networks matter for a new run only.
    init: str | Checkpoint | None = settings.init
    if datasets.train.with_distance and settings.depth_unit is None:
        init = _starting_point(settings, datasets.train) or init
    train_config = settings.train
    if datasets.train.with_distance and settings.depth_unit is None:
        # Speed supervision in metres from an untrained pose network collapses the depth
        # (it must first move its output range by orders of magnitude); train
        # self-supervised and measure the unit against the odometry at the end instead.
        train_config = dataclasses.replace(train_config, speed_weight=0.0)
        if main_process:
            print("odometry: no trained pose network to start from; training self-supervised, "
                  "the depth unit is measured against the odometry at the end (a pose network learnt "
                  "from one bag can mistake the direction of motion, which puts the unit off: for metric "
                  "depth start from a checkpoint with a pose network, such as the shipped one)", flush=True)
    elif datasets.train.with_distance:
        for dataset in (datasets.train, datasets.val):
            if dataset is not None:
                dataset.depth_unit = settings.depth_unit
        # speed_weight weighs the travel error in metres; the trainer sees it in model units.
        train_config = dataclasses.replace(train_config, speed_weight=train_config.speed_weight * settings.depth_unit)
        nearest = settings.train.loss.min_depth * settings.depth_unit
        if main_process:
            rescaled = (f" (pose translations x {settings.translation_scale:.3g} to agree with the depth)"
                        if settings.translation_scale is not None else "")  # None: a run started before the fit
            print(f"odometry: {settings.depth_unit:.4g} m per model depth unit at the start{rescaled}; "
                  "speed-supervised in that unit", flush=True)
            if nearest > NEAREST_DEPTH_WARNING:
                warnings.warn(
                    f"the starting model's depth unit is {settings.depth_unit:.3g} m, so the fine-tuned model "
                    f"cannot predict depth nearer than {nearest:.2g} m (loss.min_depth units); for close range "
                    "train from scratch on the bags (no --init): such a run measures its unit at the end",
                    stacklevel=2,
                )
    description = "ROS 2 bags " + ", ".join(f"{bag.bag} ({bag.image_topic})" for bag in datasets.summaries)
    trainer = Trainer(train_config, datasets.train, datasets.val, init_checkpoint=init,
                      dataset_description=description)
    main_process = trainer.context.is_main
    if main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        save_config(settings, output_dir / SETTINGS_FILE)
    evaluation_set = datasets.val if datasets.val is not None else datasets.train
    start_depth, start_pose = copy.deepcopy(trainer.depth_net), copy.deepcopy(trainer.pose_net)
    before = {}
    if main_process:
        before = evaluate_photometric(start_depth, start_pose, evaluation_set, settings, trainer.device)
    summary = trainer.fit(resume=resume)
    if not main_process:
        return None
    checkpoint = _export_checkpoint(output_dir, summary, datasets, settings, train_config.speed_weight)
    finetuned = load_checkpoint(checkpoint, with_pose=True)
    after = evaluate_photometric(finetuned.depth_net, finetuned.pose_net, evaluation_set, settings, trainer.device)
    log_dir = Path(settings.train.runtime.output_dir) / "tensorboard"
    write_loss_curves(output_dir / LOSS_CURVES_FILE, _scalar_curves(log_dir, summary.history))
    write_depth_panel(output_dir / DEPTH_PANEL_FILE, evaluation_set, start_depth, finetuned.depth_net)
    report = {
        "checkpoint": str(checkpoint),
        "metric": finetuned.metadata.metric,
        "steps": summary.steps,
        "epochs": summary.epochs_completed,
        "stop_reason": summary.stop_reason,
        "evaluated_on": "validation" if datasets.val is not None else "training (no validation split)",
        "photometric_before": before["photometric"],
        "photometric_after": after["photometric"],
        "bags": [dataclasses.asdict(bag) for bag in datasets.summaries],
    }
    atomic_write(output_dir / REPORT_FILE, lambda temporary: temporary.write_text(json.dumps(report, indent=2)))
    print(
        f"validation photometric error: before {before['photometric']:.4f}, after {after['photometric']:.4f}\n"
        f"checkpoint: {checkpoint} ({'metric depth' if finetuned.metadata.metric else 'relative depth'})\n"
        f"report: {output_dir / REPORT_FILE}, {output_dir / LOSS_CURVES_FILE}, {output_dir / DEPTH_PANEL_FILE}",
        flush=True,
    )
    return FinetuneResult(checkpoint=checkpoint, before=before, after=after, summary=summary, datasets=datasets)
