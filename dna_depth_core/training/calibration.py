"""Measuring a model's depth unit: metres per network depth unit, from what a bag knows.

Photometric consistency fixes only the ratio of depth to translation, and only after
training has converged: a depth network trained on one kind of scene and a pose network
run on another (or trained apart from it) can disagree by a large factor. That factor is
what :func:`consistent_translation_scale` measures, with the training loss itself.

The unit itself comes from one of the scale sources of a fine-tune:

- odometry: :func:`calibrate_depth_unit` (metres travelled over predicted translation)
  after :func:`consistent_pose_and_unit` has put the translations in the depth's unit;
- a known camera height: :func:`ground_plane_unit` (the floor plane of the predicted depth,
  :mod:`dna_depth_core.geometry.ground_plane`);
- the starting model: :func:`depth_ratio` of the fine-tuned to the starting depth shows
  whether its unit held.

:func:`implied_speed` turns a unit into the platform speed it implies, for plausibility checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from ..errors import UserError
from ..geometry import disp_to_depth
from ..geometry.ground_plane import NoGroundPlaneError, ground_plane_scale
from ..losses import SelfSupervisedLossConfig, self_supervised_loss
from .objective import predict_target_to_source

CALIBRATION_SAMPLES = 64
"""Training samples (evenly spread) that a unit measurement looks at."""

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


def at_search_edge(multiplier: float) -> bool:
    """Whether a :func:`consistent_translation_scale` multiplier lies on the edge of the searched
    range (1/16 or 16): the photometric loss still fell beyond it, so the search bracketed no
    minimum and the multiplier measures nothing."""
    low, high = float(COARSE_SCALES[0]), float(COARSE_SCALES[-1])
    return not low * (1 + 1e-6) < multiplier < high / (1 + 1e-6)


def calibration_subset(dataset: Dataset, max_samples: int = CALIBRATION_SAMPLES) -> Subset:
    """Up to ``max_samples`` evenly spread samples of ``dataset``."""
    indices = np.unique(np.linspace(0, len(dataset) - 1, min(max_samples, len(dataset))).round().astype(int))
    return Subset(dataset, indices.tolist())


@torch.no_grad()
def calibrate_depth_unit(
    pose_net: nn.Module, dataset: Dataset, device: torch.device, max_samples: int = CALIBRATION_SAMPLES
) -> float:
    """Metres per translation unit of a pose network: median of odometry distance over the
    pose network's translation length, on up to ``max_samples`` evenly spread training samples.

    A self-supervised model predicts depth and motion in one arbitrary unit (photometric
    consistency fixes only their ratio), so once the pose network's translations are in
    its depth network's unit (:func:`consistent_pose_and_unit`), this is the model's
    metres per depth unit.

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
        for batch in DataLoader(calibration_subset(dataset, max_samples), batch_size=8):
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
    depth_net: nn.Module,
    pose_net: nn.Module,
    dataset: Dataset,
    loss_config: SelfSupervisedLossConfig,
    device: torch.device,
    progress: bool = False,
) -> tuple[float, float]:
    """Put the pose network's translations in the depth network's unit, then measure that
    unit against the odometry.

    A depth network trained on one kind of scene predicts the depth of another in a unit
    of its own, which its pose network does not share (on a synthetic corridor the
    street-trained models' translations are 2-4x too long for their depth). The
    multiplier of :func:`consistent_translation_scale` is applied to ``pose_net`` in
    place, and :func:`calibrate_depth_unit` then gives metres per depth unit: measuring it
    from the pose network alone would carry that disagreement into ``depth_scale``.

    Returns:
        ``(translation_scale, metres_per_unit)``.
    """
    loader = DataLoader(calibration_subset(dataset), batch_size=8)
    translation_scale = consistent_translation_scale(depth_net, pose_net, loader, loss_config, device, progress)
    pose_net.scale_translation_(translation_scale)
    return translation_scale, calibrate_depth_unit(pose_net, dataset, device)


@dataclass(frozen=True)
class GroundPlaneUnit:
    """Metres per depth unit from the floor plane of a model's depth on a bag.

    Attributes:
        metres_per_unit: median over the frames with a floor plane.
        frames: frames with a floor plane found.
        frames_tried: frames looked at.
        spread: half the 16-84th percentile range of the frames' values over the median
            (0.05: the frames agree within about 5 %).
    """

    metres_per_unit: float
    frames: int
    frames_tried: int
    spread: float


@torch.no_grad()
def _target_depths(depth_net: nn.Module, dataset: Dataset, depth_range: tuple[float, float],
                   device: torch.device, max_samples: int):
    """``(depth (B, H, W) network units, intrinsics (B, 3, 3))`` of the target frames of up
    to ``max_samples`` evenly spread samples, batch by batch (the network in eval mode)."""
    was_training = depth_net.training
    depth_net.eval()
    try:
        for batch in DataLoader(calibration_subset(dataset, max_samples), batch_size=8):
            disparity = depth_net(batch["frames"][:, 1].to(device), multiscale=False).float().cpu()
            yield disp_to_depth(disparity, *depth_range)[:, 0], batch["intrinsics"]
    finally:
        depth_net.train(was_training)


def ground_plane_unit(
    depth_net: nn.Module,
    dataset: Dataset,
    camera_height: float,
    depth_range: tuple[float, float],
    device: torch.device,
    max_samples: int = CALIBRATION_SAMPLES,
    floor_normal: np.ndarray | None = None,
) -> GroundPlaneUnit:
    """Metres per depth unit that put the camera ``camera_height`` metres above the floor
    (:func:`~dna_depth_core.geometry.ground_plane.ground_plane_scale`) in the model's
    depth of up to ``max_samples`` evenly spread target frames: their median.

    Args:
        depth_net: the depth network (left in the mode it was in).
        dataset: samples with ``frames`` ``(3, 3, H, W)`` and ``intrinsics`` ``(3, 3)`` px.
        camera_height: the optical centre's height above the floor or road, metres.
        depth_range: ``(min_depth, max_depth)`` of the network's disparity, network units.
        device: where to run the network.
        floor_normal: ``(3,)`` the floor's normal in the camera frame when the mount gives
            it (:func:`~dna_depth_core.data.rosbag.transforms.floor_normal`); ``None``: fitted.

    Raises:
        UserError: no frame shows a floor plane below the camera.
    """
    scales, tried = [], 0
    for depths, intrinsics in _target_depths(depth_net, dataset, depth_range, device, max_samples):
        for depth, camera in zip(depths, intrinsics):
            tried += 1
            try:
                scales.append(ground_plane_scale(depth, camera, camera_height, floor_normal=floor_normal).scale)
            except NoGroundPlaneError:
                continue
    if not scales:
        raise UserError(f"--camera-height: no floor or road plane below the camera in the lower half of {tried} "
                        "frames of the model's depth; it needs the ground in view (or use --odom-topic)")
    low, median, high = np.percentile(scales, [16, 50, 84])
    return GroundPlaneUnit(float(median), len(scales), tried, float((high - low) / 2 / median))


@dataclass
class PixelScaleCheck:
    """A model's depth at a fine-tune's size against its depth at its own focal length in pixels.

    Attributes:
        ratio: median over frames of each frame's median ``depth at reference_size /
            depth at training_size`` (compared at the smaller size): the factor the depth
            at the training size is off by, if the model is right at its own pixel scale.
        spread: half the 16-84th percentile range of the per-frame ratios, over the ratio.
        training_size: ``(height, width)`` of the fine-tune's frames, pixels.
        reference_size: ``(height, width)`` the frames were resized to (multiples of 32).
        focal_px: the fine-tune frames' horizontal focal length, pixels.
        model_focal_px: the model's training camera's horizontal focal length at its own
            input width, pixels.
        frames: frames compared.
    """

    ratio: float
    spread: float
    training_size: tuple[int, int]
    reference_size: tuple[int, int]
    focal_px: float
    model_focal_px: float
    frames: int


@torch.no_grad()
def pixel_scale_check(
    depth_net: nn.Module,
    dataset: Dataset,
    model_focal_px: float,
    depth_range: tuple[float, float],
    device: torch.device,
    max_samples: int = CALIBRATION_SAMPLES,
) -> PixelScaleCheck | None:
    """How a model's depth changes when it runs at another pixel scale than it was trained at.

    A monocular network judges distance partly by how many pixels things span, so the
    same view at twice the resolution reads nearer (the shipped model at 448x256 against
    its own 224x160: about 0.7x on the floor). Each of up to ``max_samples`` evenly spread
    target frames is also resized (area when shrinking, bilinear when enlarging) to the
    size whose horizontal focal length in pixels is ``model_focal_px`` (sides rounded to
    multiples of 32), both are run, and their depths compared at the smaller size.

    Args:
        depth_net: the depth network (left in the mode it was in).
        dataset: samples with ``frames`` ``(3, 3, H, W)`` and ``intrinsics`` ``(3, 3)`` px.
        model_focal_px: the model's training ``fx``, pixels at its input width (its
            preparation record's ``fx`` x its width).
        depth_range: ``(min_depth, max_depth)`` of the network's disparity, network units.

    Returns:
        ``None`` when the reference size rounds to the frames' own size (nothing to compare).
    """
    was_training = depth_net.training
    depth_net.eval()
    ratios, sizes, focal = [], None, None
    try:
        for batch in DataLoader(calibration_subset(dataset, max_samples), batch_size=8):
            frames = batch["frames"][:, 1].to(device)
            height, width = frames.shape[-2:]
            focal = float(batch["intrinsics"][:, 0, 0].median())
            factor = model_focal_px / focal
            reference = (max(32, round(height * factor / 32) * 32), max(32, round(width * factor / 32) * 32))
            if reference == (height, width):
                return None
            shrink = reference[0] * reference[1] < height * width
            resized = F.interpolate(frames, size=reference, mode="area") if shrink else F.interpolate(
                frames, size=reference, mode="bilinear", align_corners=False)
            depth = disp_to_depth(depth_net(frames, multiscale=False).float(), *depth_range)
            depth_reference = disp_to_depth(depth_net(resized, multiscale=False).float(), *depth_range)
            if shrink:
                depth = F.interpolate(depth, size=reference, mode="area")
            else:
                depth_reference = F.interpolate(depth_reference, size=(height, width), mode="area")
            ratios += [float(torch.median(r / d)) for r, d in zip(depth_reference.cpu(), depth.cpu())]
            sizes = ((int(height), int(width)), reference)
    finally:
        depth_net.train(was_training)
    low, median, high = np.percentile(ratios, [16, 50, 84])
    return PixelScaleCheck(float(median), float((high - low) / 2 / median), sizes[0], sizes[1], focal,
                           float(model_focal_px), len(ratios))


def depth_ratio(
    before: nn.Module,
    after: nn.Module,
    dataset: Dataset,
    depth_range: tuple[float, float],
    device: torch.device,
    max_samples: int = CALIBRATION_SAMPLES,
) -> tuple[float, float]:
    """How much one depth network's depth differs in scale from another's on the same frames.

    Returns:
        ``(ratio, spread)``: the median over up to ``max_samples`` frames of each frame's
        median ``after / before`` depth ratio, and half its 16-84th percentile range over
        the ratio.
    """
    ratios = []
    for (depth_before, _), (depth_after, _) in zip(
            _target_depths(before, dataset, depth_range, device, max_samples),
            _target_depths(after, dataset, depth_range, device, max_samples)):
        ratios += [float(torch.median(a / b)) for a, b in zip(depth_after, depth_before)]
    low, median, high = np.percentile(ratios, [16, 50, 84])
    return float(median), float((high - low) / 2 / median)


@torch.no_grad()
def translation_lengths(pose_net: nn.Module, dataset: Dataset, device: torch.device,
                        progress: bool = False) -> np.ndarray:
    """float32 ``(N, 2)`` lengths of the pose network's translations to each sample's
    previous and next frames, network units, for every sample of ``dataset`` (eval mode)."""
    was_training = pose_net.training
    pose_net.eval()
    lengths = []
    try:
        for batch in tqdm(DataLoader(dataset, batch_size=8), desc="pose anchor", unit="batch", leave=False,
                          disable=not progress):
            _, translations = predict_target_to_source(pose_net, batch["frames"].to(device))
            lengths.append(translations.norm(dim=-1).float().cpu().numpy())
    finally:
        pose_net.train(was_training)
    return np.concatenate(lengths)


def frame_intervals(dataset, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """For samples ``indices`` of a bag dataset: the target's and the sources' stamps,
    float64 ``(N, 3)`` seconds (previous, target, next), and the seconds from the target to
    each source, ``(N, 2)``."""
    stamps = np.array([dataset.sequences[int(row[0])].stamps[row[1:]] for row in dataset.triplets[indices]])
    return stamps, np.abs(stamps[:, [0, 2]] - stamps[:, 1:2])


def implied_speed(pose_net: nn.Module, dataset, metres_per_unit: float, device: torch.device,
                  max_samples: int = CALIBRATION_SAMPLES) -> float:
    """Median platform speed in m/s that the pose network's translations imply with this
    unit, on up to ``max_samples`` evenly spread samples of a bag dataset (its triplets'
    frame stamps give the time between frames)."""
    subset = calibration_subset(dataset, max_samples)
    lengths = translation_lengths(pose_net, subset, device)
    _, seconds = frame_intervals(dataset, subset.indices)
    moving = seconds > 0
    return float(np.median(lengths[moving] * metres_per_unit / seconds[moving])) if moving.any() else float("nan")
