"""Where a fine-tune's metres come from, how training keeps them, and how they are checked.

One scale source per run, in this order of preference (:data:`SCALE_SOURCES`):

- ``odometry`` (``--odom-topic``): the camera's travel (the base's odometry with the
  ``/tf_static`` mount, :mod:`dna_depth_core.data.rosbag.transforms`) supervises the pose
  network's translations; a metric starting model is speed-supervised in its own unit from
  the first step (its translations first fitted to its depth, :func:`agree_pose_with_depth`),
  a relative one after its unit was measured, one without pose weights only at the end
  (also when the start's refit finds no minimum,
  :func:`~dna_depth_core.training.calibration.at_search_edge`); the end-of-run measurement
  keeps the supervised unit when its refit finds none;
- ``camera height`` (``--camera-height H``): the floor plane of the predicted depth is
  pulled to H metres below the camera (:class:`GroundPlaneLoss`) in the starting model's
  unit measured on the bag, and measured again at the end; its distance is measured along
  the floor's direction from the bags' camera mount when they have one
  (:func:`~dna_depth_core.training.finetune.attach_floor_normal`);
- ``starting model``: a metric starting model with neither keeps its unit: its own pose
  network's translations on the bag, fitted to its depth (:func:`agree_pose_with_depth`),
  anchor the fine-tuned one's (:class:`AnchoredDataset`),
  and at the end the fine-tuned depth must still match the starting depth's scale
  (within :data:`HELD_TOLERANCE`), or the result is labelled relative with a warning;
- ``none``: relative depth.

A starting model fine-tuned at another focal length in pixels than it was trained at reads
depth nearer or farther there (:func:`~dna_depth_core.training.calibration.pixel_scale_check`,
measured once per run): a metric start's kept unit (``starting model``) is multiplied by
that factor; the odometry and the floor set their own units, and the factor is reported.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..checkpoint import Checkpoint
from ..errors import UserError
from ..geometry import disp_to_depth, pixel_rays
from ..geometry.ground_plane import NoGroundPlaneError, ground_plane_scale, plane_distance
from .calibration import (
    CALIBRATION_SAMPLES, at_search_edge, calibration_subset, consistent_pose_and_unit, consistent_translation_scale,
    depth_ratio, ground_plane_unit, pixel_scale_check, translation_lengths,
)

LOG = logging.getLogger(__name__)

ODOMETRY, CAMERA_HEIGHT, STARTING_MODEL, NO_SCALE = "odometry", "camera height", "starting model", "none"
SCALE_SOURCES = (ODOMETRY, CAMERA_HEIGHT, STARTING_MODEL, NO_SCALE)
"""What fixes a fine-tuned model's metres per depth unit, most preferred first."""

GROUND_PLANE_WEIGHT = 0.1
"""Weight of :class:`GroundPlaneLoss` (mean absolute log error of the camera height);
an error of 10 % then adds about 0.01, a tenth of a typical photometric loss: enough to
hold the unit, not enough to flatten the floor's shape."""

HELD_TOLERANCE = 0.1
"""A metric start's unit held when the fine-tuned depth is within this fraction of the
starting depth (median over the bag's frames)."""

PIXEL_SCALE_TOLERANCE = 0.1
"""A starting model's depth at the fine-tune's size that differs by more than this fraction
from its depth at its own pixel scale has its unit corrected (a metric start's) or reported."""


def check_start_pixel_scale(settings, datasets, start: Checkpoint) -> float:
    """Measure :attr:`FinetuneSettings.pixel_scale_ratio` for a new run (logged), and return the
    factor a metric start's unit is multiplied by at the training size (1 within
    :data:`PIXEL_SCALE_TOLERANCE`, or at the model's own pixel scale)."""
    metadata = start.metadata
    if settings.scale_source is None:
        depth_range = (settings.train.loss.min_depth, settings.train.loss.max_depth)
        check = pixel_scale_check(start.depth_net, datasets.train, metadata.preparation.fx * metadata.width,
                                  depth_range, torch.device("cpu"))
        settings.pixel_scale_ratio = None if check is None else check.ratio
        if check is not None:
            (height, width), (ref_height, ref_width) = check.training_size, check.reference_size
            off = abs(check.ratio - 1) > PIXEL_SCALE_TOLERANCE
            (LOG.warning if off else LOG.info)(
                "the starting model was trained at %dx%d (focal %.0f px); at this fine-tune's %dx%d (focal %.0f px) "
                "its depth on %d frames of the bags is %.2fx its depth on them at %dx%d, its own pixel scale "
                "(networks judge distance partly by size in pixels)%s", metadata.width, metadata.height,
                check.model_focal_px, width, height, check.focal_px, check.frames, 1 / check.ratio, ref_width,
                ref_height, "; --width %d --height %d would keep its pixel scale" % (ref_width, ref_height)
                if off else "")
    ratio = settings.pixel_scale_ratio
    return ratio if ratio is not None and abs(ratio - 1) > PIXEL_SCALE_TOLERANCE else 1.0


class GroundPlaneLoss:
    """Training term that keeps the camera ``camera_height`` metres above the floor.

    Per target frame, the floor plane is fitted on the detached depth
    (:func:`~dna_depth_core.geometry.ground_plane.ground_plane_scale`); with its normal
    and pixels fixed, the plane's distance is differentiable in the depth
    (:func:`~dna_depth_core.geometry.ground_plane.plane_distance`), and the loss is
    ``weight * mean |log(distance * metres_per_unit / camera_height)|`` over the frames
    with a floor in view (0 when none has one).

    Args:
        camera_height: metres.
        metres_per_unit: the unit the model is trained in (metres per network depth unit).
        depth_range: ``(min_depth, max_depth)`` of the disparity, network units.
        weight: see :data:`GROUND_PLANE_WEIGHT`.
        floor_normal: ``(3,)`` the floor's normal in the camera frame when the camera mount
            gives it (mirrored for flipped samples); ``None``: fitted per frame.
    """

    def __init__(self, camera_height: float, metres_per_unit: float, depth_range: tuple[float, float],
                 weight: float = GROUND_PLANE_WEIGHT, floor_normal: np.ndarray | None = None) -> None:
        self.camera_height, self.metres_per_unit = camera_height, metres_per_unit
        self.depth_range, self.weight = depth_range, weight
        self.floor_normal = None if floor_normal is None else np.asarray(floor_normal, dtype=np.float64)

    def __call__(self, disparity: torch.Tensor, intrinsics: torch.Tensor,
                 flipped: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """``disparity`` ``(B, 1, H, W)``, ``intrinsics`` ``(B, 3, 3)`` px, ``flipped`` ``(B,)``
        bool (``None``: none) -> ``(weighted loss, {"ground_plane": unweighted loss})``."""
        depth = disp_to_depth(disparity.float(), *self.depth_range)
        mirrored = [False] * len(depth) if flipped is None else flipped.tolist()
        fits = []
        for index, (frame, camera) in enumerate(zip(depth.detach().cpu(), intrinsics.detach().cpu())):
            normal = self.floor_normal
            if normal is not None and mirrored[index]:
                normal = normal * np.array([-1.0, 1.0, 1.0])  # a mirrored image mirrors the camera's x axis
            try:
                fits.append((index, ground_plane_scale(frame[0], camera, self.camera_height, floor_normal=normal)))
            except NoGroundPlaneError:
                continue
        if not fits:
            zero = disparity.sum() * 0.0
            return zero, {"ground_plane": 0.0}
        chosen = torch.tensor([index for index, _ in fits], device=depth.device)
        normals = torch.tensor(np.stack([fit.normal for _, fit in fits]), dtype=depth.dtype, device=depth.device)
        inliers = torch.stack([fit.inliers for _, fit in fits]).to(depth.device)
        height, width = depth.shape[-2:]
        rays = pixel_rays(intrinsics[chosen].to(depth.dtype), height, width)
        distance = plane_distance(depth[chosen], rays, normals, inliers)
        error = torch.log(distance * self.metres_per_unit / self.camera_height).abs().mean()
        return self.weight * error, {"ground_plane": float(error.detach())}


class AnchoredDataset(Dataset):
    """A bag dataset whose samples carry ``source_distance``: the starting pose network's
    translation lengths (network units) on each sample, so that speed supervision holds
    the fine-tuned pose network, and with it the depth, to the starting model's unit.

    Args:
        dataset: the bag's training samples.
        lengths: float32 ``(N, 2)`` from :func:`~dna_depth_core.training.calibration.translation_lengths`.
    """

    def __init__(self, dataset: Dataset, lengths: np.ndarray) -> None:
        if len(lengths) != len(dataset):
            raise ValueError(f"need one pair of lengths per sample: {len(lengths)} for {len(dataset)} samples")
        self.dataset, self.lengths = dataset, torch.from_numpy(np.asarray(lengths, dtype=np.float32))

    @property
    def preparation(self):
        """The wrapped dataset's frame preparation (for the checkpoint)."""
        return self.dataset.preparation

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.dataset[index] | {"source_distance": self.lengths[index]}


def agree_pose_with_depth(settings, datasets, start: Checkpoint, new_run: bool, progress: bool) -> None:
    """Put a metric starting model's pose translations in its depth's unit on the bags.

    A metric start's depth network reads metres from what a scene looks like, and that
    carries to a new environment better than its pose network's translations, which also
    learnt how fast the training scenes' cameras moved (on the held-out warehouse, driven at
    0.8 m/s, the shipped pose network says 3.2x the true travel while its depth is within
    6 % of metres). Anchoring to, or speed-supervising against, translations that disagree
    with the depth would drag the depth to the pose network's scale. So the translations
    are multiplied by :func:`~dna_depth_core.training.calibration.consistent_translation_scale`
    (``start.pose_net`` in place), measured when a run starts and recorded in
    ``settings.translation_scale``, which ``--resume`` applies again; a fit that runs to the
    edge of its search (too little parallax) measures nothing and is not applied.
    """
    if new_run:
        LOG.info("fitting the starting pose network's translations to its depth on %d training triplets ...",
                 min(CALIBRATION_SAMPLES, len(datasets.train)))
        loader = torch.utils.data.DataLoader(calibration_subset(datasets.train), batch_size=8)
        multiplier = consistent_translation_scale(start.depth_net, start.pose_net, loader, settings.train.loss,
                                                  torch.device("cpu"), progress)
        if at_search_edge(multiplier):
            LOG.info("the starting pose network's translations are kept as they are: fitting them to its depth ran "
                     "to the edge of the searched multipliers (x %.3g), too little parallax to measure", multiplier)
            return
        settings.translation_scale = multiplier
        LOG.info("the starting pose network's translations x %.3g agree with its depth on the bags", multiplier)
    if settings.translation_scale is not None:
        start.pose_net.scale_translation_(settings.translation_scale)


@dataclass
class ScalePlan:
    """How a run is trained for its scale source.

    Attributes:
        source: one of :data:`SCALE_SOURCES`.
        init: the starting networks (loaded, possibly with the pose translations refitted)
            or the ``--init`` path, or ``None``.
        train_dataset: the training samples (anchored for ``starting model``).
        speed_weight: the trainer's ``speed_weight`` in model units (0: none).
        depth_scale: metres per unit the run's checkpoints record while training.
        metric: whether the run's checkpoints are metric while training.
        auxiliary_loss: the ground-plane term, or ``None``.
    """

    source: str
    init: Checkpoint | str | None
    train_dataset: Dataset
    speed_weight: float
    depth_scale: float
    metric: bool
    auxiliary_loss: GroundPlaneLoss | None = None


def plan_scale(settings, datasets, start: Checkpoint | None, progress: bool) -> ScalePlan:
    """Choose the scale source and measure what a new run needs at its start.

    Sets ``settings.scale_source``, and for a new run ``settings.depth_unit`` (and
    ``settings.translation_scale``), which ``--resume`` then reuses; logs one line per
    decision.

    Args:
        settings: the :class:`~dna_depth_core.training.finetune.FinetuneSettings`.
        datasets: the bag datasets (odometry attached when ``--odom-topic`` is given).
        start: the ``--init`` checkpoint loaded with its pose network, ``None`` without ``--init``.
        progress: show progress bars.
    """
    metadata = start.metadata if start is not None else None
    metric_start = metadata is not None and metadata.metric
    has_pose = start is not None and start.pose_net is not None
    new_run = settings.scale_source is None
    depth_range = (settings.train.loss.min_depth, settings.train.loss.max_depth)
    speed_weight, init = settings.train.speed_weight, start or settings.init
    train_dataset, auxiliary = datasets.train, None
    cpu = torch.device("cpu")
    pixel_scale = check_start_pixel_scale(settings, datasets, start) if start is not None else 1.0
    if datasets.train.with_distance:
        source = ODOMETRY
        if metric_start and has_pose:
            agree_pose_with_depth(settings, datasets, start, new_run, progress)
            if new_run:
                # Not corrected for the pixel scale: the odometry sets the unit, and a corrected
                # start did not end nearer metric in a 384x288 warehouse A/B (3 seeds, 30 steps).
                settings.depth_unit = metadata.depth_scale
                LOG.info("odometry: the starting model is metric (%.4g m per unit): speed-supervised in metres "
                         "from the first step", settings.depth_unit)
        elif new_run and has_pose:
            LOG.info("odometry: fitting the --init pose network to its depth and measuring its unit against the "
                     "odometry on %d training triplets ...", min(CALIBRATION_SAMPLES, len(datasets.train)))
            translation_scale, unit = consistent_pose_and_unit(
                start.depth_net, start.pose_net, datasets.train, settings.train.loss, cpu, progress)
            if at_search_edge(translation_scale):
                start.pose_net.scale_translation_(1 / translation_scale)  # the start as it was
                warnings.warn(f"odometry: fitting the --init pose network's translations to its depth on the bags "
                              f"ran to the edge of the searched multipliers (x {translation_scale:.3g}), so it "
                              "measured nothing (too little parallax?): training self-supervised, the depth unit is "
                              "measured against the odometry at the end", stacklevel=2)
            else:
                settings.translation_scale, settings.depth_unit = translation_scale, unit
        if settings.depth_unit is None:
            # Speed supervision in metres from an untrained pose network collapses the depth
            # (it must first move its output range by orders of magnitude).
            speed_weight = 0.0
            if not has_pose:
                LOG.info("odometry: no trained pose network to start from; training self-supervised, the depth "
                         "unit is measured against the odometry at the end (for metric depth from the first step "
                         "start from a checkpoint with a pose network, such as the shipped one)")
        else:
            for dataset in (datasets.train, datasets.val):
                if dataset is not None:
                    dataset.depth_unit = settings.depth_unit
            speed_weight *= settings.depth_unit  # weighed in metres, seen by the trainer in model units
            rescaled = (f" (pose translations x {settings.translation_scale:.3g} to agree with the depth)"
                        if settings.translation_scale is not None else "")
            LOG.info("odometry: %.4g m per model depth unit at the start%s; speed-supervised in that unit",
                     settings.depth_unit, rescaled)
    elif settings.camera_height is not None:
        source = CAMERA_HEIGHT
        if new_run and start is not None:
            measured = ground_plane_unit(start.depth_net, datasets.train, settings.camera_height, depth_range, cpu,
                                         floor_normal=datasets.floor_normal)
            settings.depth_unit = measured.metres_per_unit
            LOG.info("camera height: the starting model's floor plane gives %.4g m per depth unit on %d of %d "
                     "frames (spread %.0f %%)%s", measured.metres_per_unit, measured.frames, measured.frames_tried,
                     100 * measured.spread,
                     f"; its checkpoint says {metadata.depth_scale:.4g}" if metric_start else "")
        if settings.depth_unit is not None:
            auxiliary = GroundPlaneLoss(settings.camera_height, settings.depth_unit, depth_range,
                                        floor_normal=datasets.floor_normal)
            LOG.info("camera height: training keeps the floor %.3g m below the camera", settings.camera_height)
        else:
            LOG.info("camera height: no starting model; training self-supervised, the unit is measured from the "
                     "floor plane at the end")
    elif metric_start:
        source = STARTING_MODEL
        settings.depth_unit = metadata.depth_scale * pixel_scale
        corrected = "" if pixel_scale == 1 else f", its {metadata.depth_scale:.4g} x {pixel_scale:.3g} at this size"
        if has_pose and speed_weight > 0:
            agree_pose_with_depth(settings, datasets, start, new_run, progress)
            lengths = translation_lengths(start.pose_net, datasets.train, cpu, progress)
            train_dataset = AnchoredDataset(datasets.train, lengths)
            speed_weight *= settings.depth_unit  # as with odometry: weighed in metres
            LOG.info("no odometry or camera height: keeping the metric starting model's unit (%.4g m per unit%s), "
                     "its pose network's translations on the bag anchor the fine-tuned one's", settings.depth_unit,
                     corrected)
        else:
            LOG.info("no odometry or camera height: the metric starting model has no pose network to anchor its "
                     "unit (%.4g m per unit%s); whether it held is checked at the end", settings.depth_unit,
                     corrected)
    else:
        source = NO_SCALE
        LOG.info("no odometry, camera height or metric starting model: the depth is relative (give --odom-topic "
                 "or --camera-height for metres)")
    settings.scale_source = source
    metric = source != NO_SCALE and settings.depth_unit is not None
    return ScalePlan(source, init, train_dataset, speed_weight, settings.depth_unit or 1.0, metric, auxiliary)


@dataclass
class ScaleOutcome:
    """The fine-tuned model's unit, measured at the end.

    Attributes:
        source: the scale source that held (:data:`SCALE_SOURCES`; ``none`` when it did not).
        metres_per_unit: metres per depth unit; ``None`` for relative depth.
        calibration: one line saying how it was measured (checkpoint provenance).
        checks: measured values for ``report.json`` (``odometry_metres_per_unit``,
            ``ground_plane_metres_per_unit``, ``depth_ratio_to_start``...).
    """

    source: str
    metres_per_unit: float | None
    calibration: str
    checks: dict[str, Any]


def measure_scale(settings, datasets, model: Checkpoint, start_depth: torch.nn.Module | None,
                  progress: bool) -> ScaleOutcome:
    """Measure the output model's unit on the bags the way its scale source allows, and
    check it against the other sources the bags offer (``--camera-height`` with odometry).

    ``model``'s pose network may be refitted in place (odometry); ``start_depth`` is the
    starting depth network as it was before training (for the ``starting model`` check).
    A metric start whose unit did not hold gives relative depth and one warning.
    """
    source, checks = settings.scale_source, {"pixel_scale_ratio": settings.pixel_scale_ratio}
    depth_range = (settings.train.loss.min_depth, settings.train.loss.max_depth)
    cpu = torch.device("cpu")
    evaluation = datasets.val if datasets.val is not None else datasets.train
    metres, calibration = None, "relative depth: no scale source"
    if source == ODOMETRY:
        LOG.info("odometry: measuring the fine-tuned model's metres per depth unit ...")
        translation_scale, metres = consistent_pose_and_unit(
            model.depth_net, model.pose_net, datasets.train, settings.train.loss, cpu, progress)
        checks.update(odometry_metres_per_unit=metres, translation_fit=translation_scale)
        calibration = (f"pose-network translations x {translation_scale:.4g} (photometric best fit to the depth), "
                       f"then the median of odometry distance / translation over up to {CALIBRATION_SAMPLES} "
                       f"training triplets: {metres:.4g} m per unit")
        # The unit the speed supervision trained in (None: not supervised from the start).
        held = settings.depth_unit if settings.train.speed_weight > 0 else None
        if held is not None and at_search_edge(translation_scale):
            # No minimum inside the searched range (frames without parallax, say): the fit
            # measured nothing, while the training held the translations to the odometry.
            # (An interior fit, even 4x, is taken: in a 384x288 warehouse run it was right.)
            model.pose_net.scale_translation_(1 / translation_scale)  # back to the unit it was trained in
            warnings.warn(f"odometry: fitting the fine-tuned pose network's translations to its depth at the end "
                          f"ran to the edge of the searched multipliers (x {translation_scale:.3g}), so it measured "
                          f"nothing: the result keeps the unit its speed supervision trained in ({held:.4g} m per "
                          f"unit), not the fit's {metres:.4g}", stacklevel=2)
            calibration = (f"speed-supervised on the odometry in {held:.4g} m per unit from the first step; the "
                           f"end-of-run photometric fit (translations x {translation_scale:.4g}, {metres:.4g} m per "
                           "unit) was at the edge of its search and was not used")
            metres = held
    if settings.camera_height is not None:
        LOG.info("camera height: measuring the floor plane of the fine-tuned model's depth ...")
        try:
            measured = ground_plane_unit(model.depth_net, datasets.train, settings.camera_height, depth_range, cpu,
                                         floor_normal=datasets.floor_normal)
        except UserError:
            # The training is done: a floor the fine-tuned depth no longer shows must not
            # lose it. The unit the training held the floor at stands, unchecked, if there is one.
            measured = None
            checks["ground_plane_metres_per_unit"] = None
            if source == CAMERA_HEIGHT and settings.depth_unit is not None:
                metres = settings.depth_unit
                calibration = (f"floor plane {settings.camera_height:g} m below the camera at the start: "
                               f"{metres:.4g} m per unit, held by the training, not re-measured (no floor plane "
                               "in the fine-tuned model's depth)")
            elif source == CAMERA_HEIGHT:
                source, calibration = NO_SCALE, "relative: no floor plane in the fine-tuned model's depth"
            if metres is not None:
                outcome = f"; kept the unit the training held ({metres:.4g} m per unit)"
            else:
                outcome = "; the result is labelled relative" if source == NO_SCALE else ""
            warnings.warn("--camera-height: no floor plane below the camera in the fine-tuned model's depth, so its "
                          f"unit could not be measured at the end{outcome}", stacklevel=2)
        checks["floor_normal_from_mount"] = None if datasets.floor_normal is None else datasets.floor_normal.tolist()
        if measured is not None:
            checks.update(ground_plane_metres_per_unit=measured.metres_per_unit, ground_plane_frames=measured.frames,
                          ground_plane_spread=measured.spread)
        if measured is not None and source == CAMERA_HEIGHT:
            metres = measured.metres_per_unit
            direction = ("its direction from the camera mount" if datasets.floor_normal is not None
                         else "its tilt fitted per frame")
            calibration = (f"floor plane {settings.camera_height:g} m below the camera (--camera-height; {direction}), "
                           f"median over {measured.frames} of {measured.frames_tried} training frames: {metres:.4g} m "
                           "per unit")
    if source == STARTING_MODEL:
        ratio, spread = depth_ratio(start_depth, model.depth_net, evaluation, depth_range, cpu)
        checks.update(depth_ratio_to_start=ratio, depth_ratio_spread=spread)
        if abs(ratio - 1) <= HELD_TOLERANCE and math.isfinite(ratio):
            metres = settings.depth_unit
            ratio_to_own = settings.pixel_scale_ratio
            resized = ("" if ratio_to_own is None or abs(ratio_to_own - 1) <= PIXEL_SCALE_TOLERANCE else
                       f", the starting unit x {ratio_to_own:.3g} for its depth at the training size")
            calibration = (f"kept from the metric starting model ({metres:.4g} m per unit{resized}): the fine-tuned "
                           f"depth is {ratio:.3f} x the starting depth on {len(evaluation)} bag triplets")
        else:
            source = NO_SCALE
            calibration = f"relative: the starting model's scale did not hold (depth ratio {ratio:.3g})"
            warnings.warn(f"the metric starting model's scale did not hold on the bag (fine-tuned depth {ratio:.2f} x "
                          "the starting depth), so the result is labelled relative; give --odom-topic or "
                          "--camera-height for metric depth", stacklevel=2)
    return ScaleOutcome(source, metres, calibration, checks)


def own_scale(start: Checkpoint, checks: dict[str, Any]) -> ScaleOutcome:
    """The scale of a starting model output unchanged at its own input size (``checks``: what the
    bags measured at the training size, kept for the report)."""
    metadata = start.metadata
    if not metadata.metric:
        return ScaleOutcome(NO_SCALE, None, "relative: the starting model, kept unchanged", checks)
    return ScaleOutcome(STARTING_MODEL, metadata.depth_scale,
                        f"the starting model kept unchanged at its own {metadata.width}x{metadata.height} input: its "
                        f"own {metadata.depth_scale:.4g} m per unit", checks)


def with_scale(model: Checkpoint, outcome: ScaleOutcome) -> Checkpoint:
    """``model`` with its metadata's ``depth_scale`` and ``metric`` from ``outcome``."""
    metadata = dataclasses.replace(model.metadata, depth_scale=outcome.metres_per_unit or 1.0,
                                   metric=outcome.metres_per_unit is not None)
    return dataclasses.replace(model, metadata=metadata)
