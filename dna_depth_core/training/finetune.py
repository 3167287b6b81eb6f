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
  photometric error before and after, metres per depth unit, steps and epochs, loss
  curves, validation frames with their depth before and after fine-tuning (colour bars in
  metres, or relative units) beside the bag's recorded depth when it has a depth topic
  (:mod:`~dna_depth_core.data.rosbag.ground_truth`);
- ``finetune.yaml``: the settings, which ``--resume`` reads to continue a killed run (a
  run that has finished is left unchanged);
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
from matplotlib import colormaps
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter
from torch.utils.data import DataLoader, Dataset, Subset

from dna_depth_core.checkpoint import (
    Checkpoint, check_checkpoint, load_checkpoint, read_metadata, save_checkpoint,
)
from dna_depth_core.config import config_to_dict, load_config, save_config
from dna_depth_core.errors import UserError
from dna_depth_core.geometry import disp_to_depth
from dna_depth_core.losses import SelfSupervisedLossConfig
from dna_depth_core.networks import PoseNet
from dna_depth_core.paths import atomic_write
from dna_depth_core.training import (
    STATE_FILE_NAME, Trainer, TrainConfig, TrainingSummary, finished_run, load_train_config,
)
from dna_depth_core.training.distributed import DistributedContext
from dna_depth_core.training.calibration import consistent_translation_scale
from dna_depth_core.training.objective import predict_target_to_source
from dna_depth_core.training.validation import validate

from dna_depth_core.data.rosbag.ground_truth import ground_truth_depths
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
    metadata = check_checkpoint(init) if init is not None else None  # the whole file, before any bag is read
    data = with_training_size(bags, data)
    defaults = copy.deepcopy(FINETUNE_TRAINING_DEFAULTS)
    defaults["data"].update({"height": data.height, "width": data.width})
    defaults["runtime"]["output_dir"] = str(Path(output_dir) / TRAINING_DIR)
    if metadata is not None:
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
    progress: bool = False,
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
    translation_scale = consistent_translation_scale(depth_net, pose_net, loader, loss_config, device, progress)
    pose_net.scale_translation_(translation_scale)
    return translation_scale, calibrate_depth_unit(pose_net, dataset, device)


def _starting_point(settings: FinetuneSettings, dataset: BagTripletDataset, progress: bool) -> Checkpoint | None:
    """The ``--init`` networks with their pose network put in their depth's unit on these
    bags, that unit measured on the CPU (:func:`consistent_pose_and_unit`; sets
    ``settings.translation_scale`` and ``settings.depth_unit``); ``None`` without trained
    pose weights. ``progress``: progress bars (a minute or more on a CPU).

    Measured on the new bags rather than taken from the checkpoint's ``depth_scale``: a
    model trained on streets, run on a corridor, predicts corridor depths in a unit of
    its own (self-supervised depth follows the image, not the metres).
    """
    if settings.init is None or read_metadata(settings.init).pose_encoder is None:
        return None
    start = load_checkpoint(settings.init, with_pose=True)
    if os.environ.get("RANK", "0") == "0":
        print(f"odometry: fitting the --init pose network to its depth and measuring its unit against the odometry "
              f"on {len(_calibration_subset(dataset))} training triplets ...", flush=True)
    settings.translation_scale, settings.depth_unit = consistent_pose_and_unit(
        start.depth_net, start.pose_net, dataset, settings.train.loss, torch.device("cpu"), progress)
    return start


@dataclass
class PanelModel:
    """One depth column of the fine-tune report: a depth network and its unit.

    Attributes:
        title: column title.
        depth_net: the network.
        metres_per_unit: metres per network depth unit on these bags; ``None`` when the
            model's depth is relative (shown in its own units).
    """

    title: str
    depth_net: torch.nn.Module
    metres_per_unit: float | None


@torch.no_grad()
def _depth(model: PanelModel, image: torch.Tensor, depth_range: tuple[float, float]) -> np.ndarray:
    """``(H, W)`` depth of ``model`` on one ``(3, H, W)`` image, in metres or network units."""
    model.depth_net.eval()
    device = next(model.depth_net.parameters()).device
    disparity = model.depth_net(image[None].to(device), multiscale=False)[0, 0].float().cpu()
    return disp_to_depth(disparity, *depth_range).numpy() * (model.metres_per_unit or 1.0)


def _colour_range(maps: list[np.ndarray]) -> tuple[float, float]:
    """2nd to 98th percentile of the finite positive values of ``maps``, never empty."""
    values = np.concatenate([np.ones(0), *(m[np.isfinite(m) & (m > 0)] for m in maps)])
    if values.size == 0:
        values = np.ones(1)
    low, high = np.percentile(values, [2, 98])
    return float(low), float(max(high, low * 1.05))


def _show_depth(figure: Figure, axis, depth: np.ndarray, colour_range: tuple[float, float], metric: bool) -> None:
    """``depth`` on ``axis`` (near = bright, log scale) with a colour bar in metres or relative units."""
    colour_map = colormaps["magma_r"].with_extremes(bad="#9a9a9a")  # grey: no ground truth (sky)
    image = axis.imshow(np.ma.masked_invalid(depth), cmap=colour_map, norm=LogNorm(*colour_range, clip=True),
                        interpolation="nearest")
    bar = figure.colorbar(image, ax=axis, fraction=0.05, pad=0.02)
    bar.set_label("depth (m)" if metric else "depth (relative units)")
    bar.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    bar.ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    bar.ax.yaxis.set_minor_formatter(NullFormatter())


def write_depth_panel(
    path: Path,
    dataset: Dataset,
    models: list[PanelModel],
    depth_range: tuple[float, float],
    ground_truth: list[np.ndarray | None] | None = None,
    count: int = 4,
) -> None:
    """PNG of ``count`` evenly spaced samples (see :func:`panel_indices`): the target frame,
    its ground truth when given, and each model's depth, coloured on a log scale (near =
    bright) with a colour bar in metres, or in the model's own units for a relative one.
    In a row, ground truth and metric models share one colour range (the ground truth's
    when there is one), so colours compare.

    Args:
        path: the PNG to write.
        dataset: samples with ``frames`` ``(3, 3, H, W)``.
        models: the depth columns (before and after fine-tuning).
        depth_range: ``(min_depth, max_depth)`` of the networks' disparity, network units.
        ground_truth: per sample of :func:`panel_indices`, float ``(H, W)`` metres (NaN
            where unknown) or ``None``; ``None`` for no ground-truth column.
    """
    indices = panel_indices(dataset, count)
    with_truth = ground_truth is not None and any(depth is not None for depth in ground_truth)
    height, width = dataset[0]["frames"].shape[-2:]
    columns = 1 + int(with_truth) + len(models)
    figure = Figure(figsize=(3.6 * columns, (3.2 * height / width + 0.5) * len(indices)))
    axes = figure.subplots(len(indices), columns, squeeze=False)
    for row, index in enumerate(indices):
        image = dataset[int(index)]["frames"][1]
        truth = ground_truth[row] if with_truth else None
        depths = [_depth(model, image, depth_range) for model in models]
        metric_maps = [depth for depth, model in zip(depths, models) if model.metres_per_unit is not None]
        shared = _colour_range([truth] if truth is not None else metric_maps)
        cells = [("input", None, None)]
        if with_truth:
            cells.append(("ground truth", truth, True))
        cells += [(model.title, depth, model.metres_per_unit is not None) for model, depth in zip(models, depths)]
        for column, (title, depth, metric) in enumerate(cells):
            axis = axes[row, column]
            axis.set_axis_off()
            if row == 0:
                axis.set_title(title)
            if column == 0:
                axis.imshow(image.permute(1, 2, 0).numpy())
            elif depth is None:
                axis.text(0.5, 0.5, "no ground truth\nfor this frame", ha="center", va="center",
                          transform=axis.transAxes)
            else:
                _show_depth(figure, axis, depth, shared if metric else _colour_range([depth]), metric)
    figure.tight_layout()
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=80))


def panel_indices(dataset: Dataset, count: int = 4) -> list[int]:
    """The samples the depth panel shows: ``count`` evenly spaced ones."""
    return [int(i) for i in np.unique(np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().astype(int))]


def _scalar_curves(log_dir: Path, history: list[dict[str, float]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Loss curves over the whole run: from the TensorBoard logs (which span resumes); a
    training curve the logs lack (fewer steps than ``runtime.log_every_steps``, TensorBoard
    off) comes from this call's history."""
    curves = {}
    if log_dir.exists():
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        # Events a resumed run repeats replace the killed run's (purge_orphaned_data).
        accumulator = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            if tag.startswith(("train/", "val/")) and tag != "train/images_per_second":
                events = accumulator.Scalars(tag)
                curves[tag] = (np.array([e.step for e in events]), np.array([e.value for e in events]))
    steps = np.array([record["step"] for record in history])
    for key in ("loss", "photometric", "smoothness", "speed"):
        if history and key in history[0] and f"train/{key}" not in curves:
            curves[f"train/{key}"] = (steps, np.array([record[key] for record in history]))
    return curves


MARKERS_UP_TO = 60
"""Curves with at most this many points are drawn with a marker per point."""


def write_loss_curves(
    path: Path,
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    photometric_before_after: tuple[float, float, int] | None = None,
) -> None:
    """PNG with one panel per loss term (training per logged step, validation per epoch);
    short curves get a marker per point, so one or two steps still show.

    Args:
        photometric_before_after: ``(before, after, last step)``: the validation
            photometric error of the starting and the fine-tuned model, drawn at step 0 and
            at the last step of the photometric panel.
    """
    names = sorted({tag.split("/", 1)[1] for tag in curves} | ({"photometric"} if photometric_before_after else set()))
    figure = Figure(figsize=(4 * max(len(names), 1), 3))
    axes = figure.subplots(1, max(len(names), 1), squeeze=False)
    if not names:
        axes[0, 0].text(0.5, 0.5, "no losses were logged", ha="center", va="center", transform=axes[0, 0].transAxes)
        axes[0, 0].set_axis_off()
    for axis, name in zip(axes[0], names):
        for split, line in (("train", "-"), ("val", "--")):
            if f"{split}/{name}" in curves:
                steps, values = curves[f"{split}/{name}"]
                marker = "o" if len(steps) <= MARKERS_UP_TO else ""
                axis.plot(steps, values, marker + line, label=split, markersize=4)
        if name == "photometric" and photometric_before_after is not None:
            before, after, last_step = photometric_before_after
            axis.plot([0, last_step], [before, after], "s:", color="black", markersize=5,
                      label="validation, start and end")
        axis.set_title(name + (" (model units)" if name == "speed" else ""))
        axis.set_xlabel("step")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        low, high = axis.get_xlim()
        if high - low < 2:  # a single step: room on both sides, integer ticks
            axis.set_xlim((low + high) / 2 - 1, (low + high) / 2 + 1)
        axis.legend(fontsize="small")
    figure.tight_layout()
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=80))


def _starting_metres_per_unit(settings: FinetuneSettings) -> float | None:
    """Metres per depth unit of the starting model on these bags: measured against the
    odometry at the start, else the ``--init`` checkpoint's own scale when it is metric;
    ``None`` when its depth is relative."""
    if settings.depth_unit is not None:
        return settings.depth_unit
    if settings.init is not None:
        metadata = read_metadata(settings.init)
        return metadata.depth_scale if metadata.metric else None
    return None


def finished_finetune(output_dir: str | Path, settings: FinetuneSettings) -> str | None:
    """One line when the fine-tune in ``output_dir`` has reached its limits and its report
    was written after its last training step (``--resume`` then has nothing to do); ``None``
    otherwise (a run killed during the final measurement resumes into the export)."""
    reached = finished_run(settings.train)
    report = Path(output_dir) / REPORT_FILE
    state = Path(settings.train.runtime.output_dir) / STATE_FILE_NAME
    if reached is None or not report.is_file() or report.stat().st_mtime < state.stat().st_mtime:
        return None
    return (f"the fine-tune in {str(output_dir)!r} already finished ({reached}); nothing changed. "
            "Resume with more --epochs or --steps to train further")


def _export_checkpoint(
    output_dir: Path, summary: TrainingSummary, datasets: BagDatasets, settings: FinetuneSettings,
    speed_weight: float,
    progress: bool,
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
        print("odometry: measuring the fine-tuned model's metres per depth unit ...", flush=True)
        translation_scale, depth_scale = consistent_pose_and_unit(
            loaded.depth_net, loaded.pose_net, datasets.train, settings.train.loss, torch.device("cpu"), progress)
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
        init = _starting_point(settings, datasets.train, main_process and settings.train.runtime.progress) or init
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
        print(f"validation photometric error of the starting model on {len(evaluation_set)} triplets ...", flush=True)
        before = evaluate_photometric(start_depth, start_pose, evaluation_set, settings, trainer.device)
    summary = trainer.fit(resume=resume)
    if not main_process:
        return None
    checkpoint = _export_checkpoint(output_dir, summary, datasets, settings, train_config.speed_weight,
                                    settings.train.runtime.progress)
    finetuned = load_checkpoint(checkpoint, with_pose=True)
    print(f"validation photometric error of the fine-tuned model on {len(evaluation_set)} triplets ...", flush=True)
    after = evaluate_photometric(finetuned.depth_net, finetuned.pose_net, evaluation_set, settings, trainer.device)
    log_dir = Path(settings.train.runtime.output_dir) / "tensorboard"
    write_loss_curves(output_dir / LOSS_CURVES_FILE, _scalar_curves(log_dir, summary.history),
                      (before["photometric"], after["photometric"], summary.steps))
    metres_after = finetuned.metadata.depth_scale if finetuned.metadata.metric else None
    models = [PanelModel("before fine-tuning", start_depth, _starting_metres_per_unit(settings)),
              PanelModel("after fine-tuning", finetuned.depth_net, metres_after)]
    depth_range = (settings.train.loss.min_depth, settings.train.loss.max_depth)
    ground_truth = ground_truth_depths(evaluation_set, panel_indices(evaluation_set), settings.data)
    write_depth_panel(output_dir / DEPTH_PANEL_FILE, evaluation_set, models, depth_range, ground_truth.depths)
    report = {
        "checkpoint": str(checkpoint),
        "metric": finetuned.metadata.metric,
        "metres_per_unit": metres_after,
        "starting_metres_per_unit": models[0].metres_per_unit,
        "steps": summary.steps,
        "epochs_completed": summary.epochs_completed,
        "epochs": round(summary.epochs, 2),
        "stop_reason": summary.stop_reason,
        "evaluated_on": "validation" if datasets.val is not None else "training (no validation split)",
        "photometric_before": before["photometric"],
        "photometric_after": after["photometric"],
        "bags": [dataclasses.asdict(bag) for bag in datasets.summaries],
        "ground_truth_topics": ground_truth.topics,
    }
    atomic_write(output_dir / REPORT_FILE, lambda temporary: temporary.write_text(json.dumps(report, indent=2)))
    print(
        f"validation photometric error: before {before['photometric']:.4f}, after {after['photometric']:.4f}\n"
        f"checkpoint: {checkpoint} ({'metric depth' if finetuned.metadata.metric else 'relative depth'})\n"
        f"report: {output_dir / REPORT_FILE}, {output_dir / LOSS_CURVES_FILE}, {output_dir / DEPTH_PANEL_FILE}",
        flush=True,
    )
    return FinetuneResult(checkpoint=checkpoint, before=before, after=after, summary=summary, datasets=datasets)
