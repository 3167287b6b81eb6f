"""Fine-tune DNA-Depth on your own recordings: ``ros2 run dna_depth_ros bag_finetune`` / ``dna-depth finetune-bag``.

Record a bag with your camera (images + camera_info, optionally odometry), then::

    dna-depth finetune-bag my_drive/ --init model.safetensors -o finetune_out
    ros2 launch dna_depth_ros dna_depth.launch.py checkpoint:=$PWD/finetune_out/dna_depth_finetuned.safetensors

Frames come from :mod:`dna_depth_core.data.rosbag.dataset` (cached on disk), training is the
project's :class:`~dna_depth_core.training.Trainer`, self-supervised. Where the metres come
from, and how training keeps them, is :mod:`~dna_depth_core.training.finetune_scale`:
odometry (``--odom-topic``, with the camera mount from ``/tf_static``), a known camera
height (``--camera-height``, the floor plane), or a metric starting model's own unit; the
unit is measured again at the end. Guardrails (:mod:`~dna_depth_core.training.guardrails`):
the final weights are validated, a fine-tune that made the validation error worse keeps
the starting model as its output and says so, and an implausible unit warns. The output
folder holds:

- ``dna_depth_finetuned.safetensors``: the checkpoint for the node (provenance names the
  bags, topics and scale source);
- ``report.json``, ``loss_curves.png``, ``depth_before_after.png``
  (:mod:`~dna_depth_core.training.finetune_report`): validation photometric error of the
  starting model, the best checkpoint and the output, the scale source, metres per depth
  unit and the depth range in metres, steps and epochs, loss curves, validation frames
  with their depth before and after fine-tuning beside the bag's recorded depth when it
  has a depth topic (:mod:`~dna_depth_core.data.rosbag.ground_truth`);
- ``finetune.yaml``: the settings, which ``--resume`` reads to continue a killed run (a
  run that has finished is left unchanged);
- ``training/``: the trainer's run folder (checkpoints with the output's ``depth_scale``,
  resume state, TensorBoard logs).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import Dataset

from ..checkpoint import Checkpoint, check_checkpoint, load_checkpoint, read_metadata, save_checkpoint
from ..config import config_to_dict, load_config, save_config
from ..data.rosbag.dataset import BagDataConfig, BagDatasets, build_bag_datasets, with_training_size
from ..data.rosbag.ground_truth import ground_truth_depths
from ..data.rosbag.reader import RecordedBag
from ..data.rosbag.transforms import camera_odometry, floor_normal, image_frame_id
from ..errors import UserError
from .calibration import implied_speed
from .config import TrainConfig, load_train_config
from .finetune_report import (
    PanelModel, history_curves, panel_indices, write_depth_panel, write_loss_curves, write_report,
)
from .finetune_scale import NO_SCALE, ScaleOutcome, measure_scale, own_scale, plan_scale, with_scale
from .guardrails import odometry_speed, scale_problems, validation_error, worse_than_start
from .run_folder import BEST_CHECKPOINT, LAST_CHECKPOINT, STATE_FILE_NAME, TrainingSummary, finished_run
from .trainer import Trainer

LOG = logging.getLogger(__name__)

FINETUNED_CHECKPOINT = "dna_depth_finetuned.safetensors"
SETTINGS_FILE = "finetune.yaml"
REPORT_FILE = "report.json"
LOSS_CURVES_FILE = "loss_curves.png"
DEPTH_PANEL_FILE = "depth_before_after.png"
FLOOR_NORMAL_AGREEMENT_DEG = 1.0
"""Bags whose camera mounts give floor directions further apart than this (degrees) are
fitted per frame instead (:func:`attach_floor_normal`)."""
TRAINING_DIR = "training"
OUTPUT_FILES = (FINETUNED_CHECKPOINT, SETTINGS_FILE, REPORT_FILE, LOSS_CURVES_FILE, DEPTH_PANEL_FILE)
"""What a fine-tune writes in OUTDIR besides ``training/``: the files ``--overwrite`` replaces."""

DEFAULT_SPEED_WEIGHT = 0.05
"""``speed_weight`` used with ``--odom-topic`` (and for the starting model's own pose
anchor, see :mod:`~dna_depth_core.training.finetune_scale`) unless overridden: the L1
travel error in metres then weighs about as much as the photometric loss."""

POSE_WARMUP_STEPS = 100
"""``optim.pose_warmup_steps`` when ``--init`` has no pose network (e.g. an imported
depth-only checkpoint): the untrained pose network learns this many steps against the held
depth network first."""

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
        camera_height: ``--camera-height``: metres of the camera's optical centre above the
            floor or road, ``None`` when not given.
        scale_source: the scale source chosen when the run started
            (:data:`~dna_depth_core.training.finetune_scale.SCALE_SOURCES`), ``None`` before.
        depth_unit: metres per depth unit the run trains in, fixed when it starts (a metric
            starting model's own, or measured on the bags against the odometry or the floor
            plane; see :func:`~dna_depth_core.training.finetune_scale.plan_scale`); ``None``
            before that, or when there is nothing to measure it with at the start (then
            it is measured only at the end).
        translation_scale: the factor the ``--init`` pose network's translations are
            multiplied by to agree with its depth on the bags (a relative start with
            odometry, or a metric start with odometry or its own unit to keep); ``None``
            when not measured or when the fit found no minimum.
        pixel_scale_ratio: how much the ``--init`` model's depth on the bags' frames at the
            training size is off from its depth at its own focal length in pixels
            (:func:`~dna_depth_core.training.calibration.pixel_scale_check`), measured when
            the run starts; ``None`` without ``--init`` or at the model's own pixel scale.
    """

    bags: list[str] = field(default_factory=list)
    init: str | None = None
    data: BagDataConfig = field(default_factory=BagDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    camera_height: float | None = None
    scale_source: str | None = None
    depth_unit: float | None = None
    translation_scale: float | None = None
    pixel_scale_ratio: float | None = None


def make_settings(
    bags: list[str],
    output_dir: str | Path,
    data: BagDataConfig,
    init: str | None = None,
    overrides: list[str] | None = None,
    camera_height: float | None = None,
) -> FinetuneSettings:
    """Settings of a new run: fine-tuning defaults, the training size (``data.height`` /
    ``data.width``, or picked from the first bag's camera, see
    :class:`~dna_depth_core.data.rosbag.dataset.BagDataConfig`), the depth range from
    ``init`` (and a pose warm-up when it has no pose network), speed supervision when
    ``data.odom_topic`` is set or a metric ``init`` anchors its own unit, then the user's
    ``overrides``. ``camera_height``: metres above the floor (``--camera-height``).

    Raises:
        UserError: no bag, a bad checkpoint or camera height, bad overrides, or an override
            that contradicts the data options (``data.height``/``data.width``).
    """
    if not bags:
        raise UserError("give at least one bag (a rosbag2 folder or a .db3/.mcap file)")
    if camera_height is not None and not 0.05 <= camera_height <= 10:
        raise UserError(f"--camera-height is the camera's height above the floor in metres (0.05 to 10), "
                        f"got {camera_height:g}")
    metadata = check_checkpoint(init) if init is not None else None  # the whole file, before any bag is read
    data = with_training_size(bags, data)
    defaults = copy.deepcopy(FINETUNE_TRAINING_DEFAULTS)
    defaults["data"].update({"height": data.height, "width": data.width})
    defaults["runtime"]["output_dir"] = str(Path(output_dir) / TRAINING_DIR)
    if metadata is not None:
        defaults["loss"] = {"min_depth": metadata.min_depth, "max_depth": metadata.max_depth}
        if metadata.pose_encoder is None:
            defaults["optim"]["pose_warmup_steps"] = POSE_WARMUP_STEPS
    anchored = camera_height is None and metadata is not None and metadata.metric and bool(metadata.pose_encoder)
    if data.odom_topic is not None or anchored:
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
        camera_height=camera_height,
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
    if "frame_spacing" not in (yaml.safe_load(path.read_text()).get("data") or {}):
        # Saved before the spacing was chosen automatically: those runs trained on neighbours.
        settings.data = dataclasses.replace(settings.data, frame_spacing=1)
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
        after: validation metrics of the output networks (the starting ones when
            fine-tuning made them worse).
        kept_start: the output is the starting model (fine-tuning made it worse).
        scale: the output's unit and how it was measured.
        summary: the trainer's summary of this run (or resumed part).
        datasets: the bag datasets and per-bag summaries.
    """

    checkpoint: Path
    before: dict[str, float]
    after: dict[str, float]
    kept_start: bool
    scale: ScaleOutcome
    summary: TrainingSummary
    datasets: BagDatasets


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


def attach_camera_motion(datasets: BagDatasets, settings: FinetuneSettings) -> list[str]:
    """With ``--odom-topic``, make each bag's odometry measure the camera's travel: the
    base's odometry composed with the ``/tf_static`` mount when the bag has one
    (:func:`~dna_depth_core.data.rosbag.transforms.camera_odometry`). Frames were already
    selected by the base's speed; this changes the distances the samples carry.

    Returns:
        One line per bag saying what was used or assumed.
    """
    if not datasets.train.with_distance:
        return []
    lines = []
    for sequence, bag_summary in zip(datasets.train.sequences, datasets.summaries):
        bag = RecordedBag(bag_summary.bag)
        motion = camera_odometry(bag, settings.data.odom_topic, image_frame_id(bag, bag_summary.image_topic))
        sequence.odometry = motion.track
        lines.append(f"{bag_summary.bag}: {motion.description}")
    return lines


def attach_floor_normal(datasets: BagDatasets) -> str:
    """With ``--camera-height``, take the floor's direction from the bags' camera mount
    (:func:`~dna_depth_core.data.rosbag.transforms.floor_normal`) when every bag gives
    one and they agree within :data:`FLOOR_NORMAL_AGREEMENT_DEG`; otherwise the ground-plane
    fits find the floor's tilt in each frame.

    Returns:
        One line saying which.
    """
    normals, lines = [], []
    for bag_summary in datasets.summaries:
        bag = RecordedBag(bag_summary.bag)
        normal, line = floor_normal(bag, image_frame_id(bag, bag_summary.image_topic))
        normals.append(normal)
        lines.append(line if len(datasets.summaries) == 1 else f"{bag_summary.bag}: {line}")
    if any(normal is None for normal in normals):
        fitted = "; so the floor's tilt is fitted in each frame of every bag" if len(lines) > 1 else ""
        return "; ".join(lines) + fitted
    mean = np.mean(normals, axis=0)
    mean /= np.linalg.norm(mean)
    spread = max(math.degrees(math.acos(min(1.0, float(normal @ mean)))) for normal in normals)
    if spread > FLOOR_NORMAL_AGREEMENT_DEG:
        return (f"the bags' camera mounts disagree on the floor's direction by up to {spread:.1f} degrees: the "
                "floor's tilt is fitted in each frame")
    datasets.floor_normal = mean
    return "; ".join(lines)


def evaluate_photometric(
    depth_net: torch.nn.Module,
    pose_net: torch.nn.Module,
    dataset: Dataset,
    settings: FinetuneSettings,
    device: torch.device,
) -> dict[str, float]:
    """Mean validation photometric error (SSIM + L1 of the warped sources, the training loss's
    photometric term, un-augmented, lower is better) of the networks on ``dataset``."""
    result = validation_error(depth_net, pose_net, dataset, settings.train, settings.train.speed_weight > 0, device)
    return {"photometric": result.metrics["photometric"]}


def _starting_checkpoint(settings: FinetuneSettings) -> Checkpoint | None:
    """The ``--init`` networks (with the pose network when stored), ``None`` without ``--init``."""
    if settings.init is None:
        return None
    return load_checkpoint(settings.init, with_pose=read_metadata(settings.init).pose_encoder is not None)


def _restamp(path: Path, outcome: ScaleOutcome) -> None:
    """Give an internal checkpoint the output's unit, so that every file of the run says the same."""
    if path.is_file():
        model = with_scale(load_checkpoint(path, with_pose=True), outcome)
        save_checkpoint(path, model.depth_net, model.metadata, model.pose_net)


def _warn_about_scale(settings: FinetuneSettings, datasets: BagDatasets, model: Checkpoint,
                      outcome: ScaleOutcome) -> list[str]:
    """The guardrail warnings on the output's unit (one line each), also returned for the report."""
    implied = odometry = float("nan")
    if outcome.metres_per_unit is not None and model.pose_net is not None:
        implied = implied_speed(model.pose_net, datasets.train, outcome.metres_per_unit, torch.device("cpu"))
        odometry = odometry_speed(datasets.train)
    outcome.checks.update(implied_speed_m_s=implied, odometry_speed_m_s=odometry)
    problems = scale_problems(outcome.metres_per_unit, settings.train.loss.min_depth, implied, odometry)
    for problem in problems:
        warnings.warn(problem, stacklevel=2)
    return problems


def _log_bags(datasets: BagDatasets, settings: FinetuneSettings) -> None:
    LOG.info("training frames: %dx%d pixels", settings.data.width, settings.data.height)
    for bag in datasets.summaries:
        LOG.info("%s: %s + %s%s: %d frames%s, %d static, %d segment(s), frame spacing %d -> %d training / %d "
                 "validation triplets", bag.bag, bag.image_topic, bag.camera_info_topic or bag.camera_info_file,
                 f" + {bag.odom_topic}" if bag.odom_topic else "", bag.frames, " (cached)" if bag.from_cache else "",
                 bag.static_frames, bag.segments, bag.frame_spacing, bag.train_triplets, bag.val_triplets)
    baseline = datasets.train.median_baseline()
    if baseline is not None:
        LOG.info("target-to-source baseline: median %.3f m by odometry (the loss sees depth through the parallax "
                 "it makes, which falls with the square of the distance)", baseline)


def remove_outputs(output_dir: Path) -> None:
    """Delete a previous fine-tune's :data:`OUTPUT_FILES` (``--overwrite``; the trainer clears ``training/``)."""
    for name in OUTPUT_FILES:
        (output_dir / name).unlink(missing_ok=True)


def run_finetune(
    settings: FinetuneSettings, output_dir: str | Path, resume: bool = False, overwrite: bool = False
) -> FinetuneResult | None:
    """Fine-tune as ``settings`` say and write the checkpoint and report into ``output_dir``.

    Args:
        settings: from :func:`make_settings` (new run) or :func:`load_settings` (resume).
        output_dir: the run's folder.
        resume: continue the killed or step-limited run in ``output_dir``.
        overwrite: replace the run in ``output_dir`` (its outputs and ``training/``).

    Returns:
        The result on the main process; ``None`` on the other processes of a torchrun job.
    """
    output_dir = Path(output_dir)
    datasets = build_bag_datasets(settings.bags, settings.data)
    for line in attach_camera_motion(datasets, settings):
        LOG.info("odometry: %s", line)
    if settings.camera_height is not None:
        LOG.info("camera height: %s", attach_floor_normal(datasets))
    _log_bags(datasets, settings)
    start = _starting_checkpoint(settings)
    plan = plan_scale(settings, datasets, start, settings.train.runtime.progress)
    train_config = dataclasses.replace(settings.train, speed_weight=plan.speed_weight)
    description = "ROS 2 bags " + ", ".join(f"{bag.bag} ({bag.image_topic})" for bag in datasets.summaries)
    # A resumed run restores its own weights: the starting networks matter for a new run only.
    trainer = Trainer(train_config, plan.train_dataset, datasets.val, init_checkpoint=plan.init,
                      dataset_description=description, depth_scale=plan.depth_scale, metric=plan.metric,
                      auxiliary_loss=plan.auxiliary_loss)
    main_process = trainer.context.is_main
    if main_process:
        if overwrite:
            remove_outputs(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        save_config(settings, output_dir / SETTINGS_FILE)
    evaluation_set = datasets.val if datasets.val is not None else datasets.train
    start_depth, start_pose = copy.deepcopy(trainer.depth_net), copy.deepcopy(trainer.pose_net)
    before = {}
    if main_process:
        LOG.info("validation photometric error of the starting model on %d triplets ...", len(evaluation_set))
        before = evaluate_photometric(start_depth, start_pose, evaluation_set, settings, trainer.device)
    summary = trainer.fit(resume=resume, overwrite=overwrite)
    if not main_process:
        return None
    return _finish(settings, output_dir, datasets, start, (start_depth, start_pose), before, summary,
                   train_config.speed_weight)


def _finish(settings: FinetuneSettings, output_dir: Path, datasets: BagDatasets, start: Checkpoint | None,
            start_networks: tuple[torch.nn.Module, torch.nn.Module], before: dict[str, float],
            summary: TrainingSummary, speed_weight: float) -> FinetuneResult:
    """Choose the output (the better of the starting model and the best checkpoint), measure
    its unit, write it, restamp the internal checkpoints, and report."""
    device = torch.device("cpu")
    evaluation_set = datasets.val if datasets.val is not None else datasets.train
    source = summary.best_checkpoint or summary.last_checkpoint
    trained = load_checkpoint(source, with_pose=True)
    LOG.info("validation photometric error of the fine-tuned model (%s) on %d triplets ...", source.name,
             len(evaluation_set))
    trained_error = evaluate_photometric(trained.depth_net, trained.pose_net, evaluation_set, settings, device)
    worse = None if start is None else worse_than_start(
        "fine-tuning", "photometric", before["photometric"], trained_error["photometric"], source.name)
    kept_start = worse is not None
    model, after = trained, trained_error
    if kept_start:
        warnings.warn(worse, stacklevel=2)
        # A depth-only start has no pose network of its own: the output takes the trained one.
        pose_net = start_networks[1].cpu() if start.pose_net is not None else trained.pose_net
        model = dataclasses.replace(start, depth_net=start_networks[0].cpu(), pose_net=pose_net,
                                    metadata=dataclasses.replace(start.metadata,
                                                                 pose_encoder=trained.metadata.pose_encoder))
        after = before
    outcome = measure_scale(settings, datasets, model, start_networks[0], settings.train.runtime.progress)
    # The bags' measurements are at the training size; a starting model kept at another
    # size runs at its own, where its own unit and preparation hold.
    unchanged = kept_start and (start.metadata.height, start.metadata.width) != (settings.data.height,
                                                                                 settings.data.width)
    if unchanged:
        outcome = own_scale(start, outcome.checks)
    model = with_scale(model, outcome)
    provenance = dict(trained.metadata.provenance)
    provenance.update({
        "tool": "dna-depth finetune-bag",
        "init_checkpoint": settings.init,
        "bags": [dataclasses.asdict(bag) for bag in datasets.summaries],
        "frame_rate_hz": settings.data.rate,
        "speed_supervision_weight": speed_weight,
        "camera_height_m": settings.camera_height,
        "starting_depth_unit_metres": settings.depth_unit,
        "starting_translation_scale": settings.translation_scale,
        "selected_checkpoint": "starting model (--init)" if kept_start else source.name,
        "scale_source": outcome.source,
        "depth_scale_calibration": outcome.calibration,
    })
    metadata = dataclasses.replace(model.metadata, provenance=provenance,
                                   preparation=start.metadata.preparation if unchanged else datasets.train.preparation)
    checkpoint = output_dir / FINETUNED_CHECKPOINT
    save_checkpoint(checkpoint, model.depth_net, metadata, model.pose_net)
    for name in (LAST_CHECKPOINT, BEST_CHECKPOINT):
        _restamp(Path(settings.train.runtime.output_dir) / name, outcome)
    problems = _warn_about_scale(settings, datasets, model, outcome)

    write_loss_curves(output_dir / LOSS_CURVES_FILE, history_curves(summary),
                      (before["photometric"], after["photometric"], summary.steps))
    depth_range = (settings.train.loss.min_depth, settings.train.loss.max_depth)
    starting_unit = settings.depth_unit if settings.scale_source != NO_SCALE else None
    models = [PanelModel("before fine-tuning", start_networks[0], starting_unit),
              PanelModel("output" if kept_start else "after fine-tuning", model.depth_net, outcome.metres_per_unit)]
    ground_truth = ground_truth_depths(evaluation_set, panel_indices(evaluation_set), settings.data)
    write_depth_panel(output_dir / DEPTH_PANEL_FILE, evaluation_set, models, depth_range, ground_truth.depths)
    metres = outcome.metres_per_unit
    report = {
        "checkpoint": str(checkpoint),
        "output_model": "starting model" if kept_start else source.name,
        "metric": metres is not None,
        "scale_source": outcome.source,
        "metres_per_unit": metres,
        "depth_range_metres": [depth_range[0] * metres, depth_range[1] * metres] if metres is not None else None,
        "scale_checks": outcome.checks,
        "warnings": problems,
        "starting_metres_per_unit": starting_unit,
        "steps": summary.steps,
        "epochs_completed": summary.epochs_completed,
        "epochs": round(summary.epochs, 2),
        "stop_reason": summary.stop_reason,
        "evaluated_on": "validation" if datasets.val is not None else "training (no validation split)",
        "photometric_before": before["photometric"],
        "photometric_best_checkpoint": trained_error["photometric"],
        "photometric_after": after["photometric"],
        "bags": [dataclasses.asdict(bag) for bag in datasets.summaries],
        "ground_truth_topics": ground_truth.topics,
    }
    write_report(output_dir / REPORT_FILE, report)
    scale = (f"metric depth, {metres:.4g} m per unit ({outcome.source}), {depth_range[0] * metres:.3g} to "
             f"{depth_range[1] * metres:.4g} m" if metres is not None else "relative depth")
    LOG.info("validation photometric error: before %.4f, after %.4f%s\ncheckpoint: %s (%s)\nreport: %s, %s, %s",
             before["photometric"], after["photometric"], " (the starting model was kept)" if kept_start else "",
             checkpoint, scale, output_dir / REPORT_FILE, output_dir / LOSS_CURVES_FILE, output_dir / DEPTH_PANEL_FILE)
    return FinetuneResult(checkpoint=checkpoint, before=before, after=after, kept_start=kept_start, scale=outcome,
                          summary=summary, datasets=datasets)
