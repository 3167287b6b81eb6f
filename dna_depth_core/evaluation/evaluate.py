"""Evaluate a depth predictor on KITTI Eigen test images or held-out synthetic sequences.

The loop, :func:`evaluate_predictions`, takes any predictor ``sample -> depth``: a
checkpoint through :class:`~dna_depth_core.inference.DepthEstimator`
(:func:`estimator_predictor`, :func:`evaluate_checkpoint`), which prepares each image as
the checkpoint's training frames were and as the depth node does, an untrained network,
or a constant-depth baseline, so all are measured with exactly the same protocol.
:func:`write_report` saves the result
as JSON, CSV and a side-by-side PNG.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from ..data.camera.calibration import CameraCalibration
from ..data.kitti import read_kitti_image, read_split_file
from ..data.synthetic import camera_frames, generate_sequence, scene_config
from ..errors import UserError
from ..inference import DepthEstimator
from ..metrics import (
    METRIC_NAMES,
    NoValidPixelsError,
    evaluate_depth_map,
    format_metrics_table,
    mean_metrics,
    resize_depth,
)
from ..paths import atomic_write
from .kitti_gt import GroundTruthFile

PredictFn = Callable[["EvaluationSample"], np.ndarray]
"""A depth predictor: an :class:`EvaluationSample` (its uint8 ``(H, W, 3)`` RGB image and
calibration) -> float ``(h, w)`` depth > 0 (any size; NaN where it predicts nothing)."""

REPORT_JSON = "metrics.json"
REPORT_CSV = "metrics.csv"
REPORT_PNG = "examples.png"

COLORBAR_TICKS = (0.5, 1, 2, 3, 5, 10, 20, 30, 50, 80)
"""Depths in metres labelled on the figure's logarithmic colour bars (those inside a row's range)."""


@dataclass(frozen=True)
class EvaluationProtocol:
    """How predictions are compared with ground truth (see :func:`~.metrics.evaluate_depth_map`).

    Attributes:
        min_depth: metres; ground truth must exceed it, predictions are clamped to it.
        max_depth: metres; ground truth must be below it, predictions are clamped to it.
        garg_crop: evaluate only inside the Garg crop (KITTI Eigen split).
        median_scaling: scale each prediction by ``median(gt) / median(pred)``.
    """

    min_depth: float = 1e-3
    max_depth: float = 80.0
    garg_crop: bool = True
    median_scaling: bool = True


KITTI_EIGEN_PROTOCOL = EvaluationProtocol()
"""The published Eigen-split protocol: 1e-3..80 m, Garg crop, median scaling."""

SYNTHETIC_PROTOCOL = EvaluationProtocol(garg_crop=False)
"""Synthetic scenes: dense ground truth over the whole frame, so no Garg crop; 1e-3..80 m."""


@dataclass
class EvaluationSample:
    """One test image with its ground truth.

    Attributes:
        name: identifies the image in reports (split line, sequence/frame).
        image: uint8 ``(H, W, 3)`` RGB.
        depth_gt: float32 ``(H', W')`` metres, 0 where unknown (usually ``H' = H, W' = W``).
        calibration: the camera's calibration, ``None`` when unknown (KITTI's recipe uses
            one nominal camera for all drives).
    """

    name: str
    image: np.ndarray
    depth_gt: np.ndarray
    calibration: CameraCalibration | None = None


@dataclass
class ImageResult:
    """Metrics of one image and the median-scaling factor applied (1.0 when off)."""

    name: str
    metrics: dict[str, float]
    scale: float


@dataclass
class EvaluationExample:
    """An image kept for the side-by-side figure.

    Attributes:
        name: the sample's name.
        image: uint8 ``(H, W, 3)`` RGB input.
        prediction: float32 ``(H', W')`` metres at ground-truth size, scaled and clamped as evaluated.
        depth_gt: float32 ``(H', W')`` metres, 0 where unknown.
    """

    name: str
    image: np.ndarray
    prediction: np.ndarray
    depth_gt: np.ndarray


@dataclass
class EvaluationResult:
    """Outcome of :func:`evaluate_predictions`.

    Attributes:
        protocol: the protocol used.
        metrics: per-image metrics averaged over the evaluated images.
        per_image: each evaluated image's metrics, in input order.
        skipped: names of images without any valid ground-truth pixel (not averaged).
        examples: the first few images with predictions, for :func:`render_examples`.
    """

    protocol: EvaluationProtocol
    metrics: dict[str, float]
    per_image: list[ImageResult]
    skipped: list[str] = field(default_factory=list)
    examples: list[EvaluationExample] = field(default_factory=list)

    @property
    def scale_median(self) -> float:
        """Median of the per-image median-scaling factors (1.0 without median scaling)."""
        return float(np.median([result.scale for result in self.per_image]))

    @property
    def scale_std_relative(self) -> float:
        """Standard deviation of the scaling factors divided by their median: how consistent the model's scale is."""
        scales = np.array([result.scale for result in self.per_image])
        return float(np.std(scales / np.median(scales)))

    def summary(self, name: str = "model") -> str:
        """Printable table of the mean metrics plus image counts and the scaling statistics."""
        lines = [format_metrics_table({name: self.metrics}), f"images evaluated: {len(self.per_image)}"]
        if self.skipped:
            lines.append(f"images skipped (no valid ground truth): {len(self.skipped)}")
        if self.protocol.median_scaling:
            lines.append(
                f"median scaling: factor median {self.scale_median:.4f}, relative std {self.scale_std_relative:.4f}"
            )
        else:
            lines.append("median scaling: off (metric depth)")
        return "\n".join(lines)


def evaluate_predictions(
    predict_fn: PredictFn,
    samples: Iterable[EvaluationSample],
    protocol: EvaluationProtocol = KITTI_EIGEN_PROTOCOL,
    num_examples: int = 4,
    progress: bool = True,
) -> EvaluationResult:
    """Run ``predict_fn`` on every sample and evaluate it with ``protocol``.

    Args:
        predict_fn: sample -> float ``(h, w)`` depth, > 0, any size, NaN where nothing is
            predicted (e.g. :func:`estimator_predictor`, or ``lambda sample: np.full((8, 8),
            10.0)`` for a constant-depth baseline).
        samples: the test images (a sized iterable gets a progress bar with a total).
        protocol: depth range, crop and median scaling.
        num_examples: how many of the first images to keep for the side-by-side figure.
        progress: show a tqdm progress bar.

    Returns:
        The per-image metrics, their mean, skipped images and the kept examples.

    Raises:
        UserError: no sample had any valid ground-truth pixel.
    """
    per_image, skipped, examples = [], [], []
    for sample in tqdm(samples, desc="evaluating", unit="image", disable=not progress):
        prediction = np.asarray(predict_fn(sample), dtype=np.float32)
        try:
            metrics, scale = evaluate_depth_map(
                sample.depth_gt,
                prediction,
                protocol.min_depth,
                protocol.max_depth,
                garg_crop=protocol.garg_crop,
                median_scaling=protocol.median_scaling,
            )
        except NoValidPixelsError:
            skipped.append(sample.name)
            continue
        per_image.append(ImageResult(sample.name, metrics, scale))
        if len(examples) < num_examples:
            shown = np.clip(
                resize_depth(prediction, sample.depth_gt.shape) * scale, protocol.min_depth, protocol.max_depth
            )
            examples.append(EvaluationExample(sample.name, sample.image, shown.astype(np.float32), sample.depth_gt))
    if not per_image:
        raise UserError(
            f"none of the {len(skipped)} test images has ground truth between {protocol.min_depth} and "
            f"{protocol.max_depth} m; check the ground-truth file and the depth range"
        )
    return EvaluationResult(
        protocol, mean_metrics([result.metrics for result in per_image]), per_image, skipped, examples
    )


class KittiEigenTestSet:
    """KITTI test images (e.g. the 697 of the Eigen split) with their lidar ground truth.

    Iterating yields :class:`EvaluationSample` s named by their split line, images at
    original size, loaded one at a time. ``ground_truth.definition_label`` says which
    depth the maps hold (see :mod:`~dna_depth_core.data.kitti_depth`).

    Args:
        data_root: KITTI raw root folder.
        split_file: the test split (``folder frame side`` lines).
        gt_depths: ``.npz`` for the same split, written by ``dna-depth export-gt`` or the
            published ``gt_depths.npz``.
        image_ext: ``"jpg"``, ``"png"`` or ``"auto"``.

    Raises:
        UserError: missing data root, split or ground-truth file, a ground-truth file
            exported for another split, or (while iterating) a map whose size is not its
            image's.
    """

    def __init__(
        self, data_root: str | Path, split_file: str | Path, gt_depths: str | Path, image_ext: str = "auto"
    ) -> None:
        self.data_root = Path(data_root)
        if not self.data_root.is_dir():
            raise UserError(
                f"KITTI data root {str(self.data_root)!r} is not a folder; pass the folder holding 2011_09_26 etc."
            )
        self.entries = read_split_file(split_file)
        self.ground_truth = GroundTruthFile(gt_depths, self.entries)
        self.image_ext = image_ext

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[EvaluationSample]:
        for index, entry in enumerate(self.entries):
            image = read_kitti_image(self.data_root, entry, image_ext=self.image_ext)
            depth_gt = self.ground_truth[index]
            if depth_gt.shape != image.shape[:2]:
                raise UserError(
                    f"ground-truth map {index + 1} of {str(self.ground_truth.path)!r} is "
                    f"{depth_gt.shape[0]}x{depth_gt.shape[1]} but image '{entry}' is {image.shape[0]}x{image.shape[1]}; "
                    "was the file made for another split?"
                )
            yield EvaluationSample(str(entry), image, depth_gt)


class SyntheticTestSet:
    """Held-out synthetic sequences from :mod:`dna_depth_core.data.synthetic`, every frame a test image.

    Sequence ``i`` is generated with seed ``seed + i``; pick seeds training never uses.
    Iterating yields :class:`EvaluationSample` s named ``"seed<seed>/frame<k>"``, with the
    generator's dense ground truth (0 where unknown, e.g. sky). The robot style's images
    are its raw, distorted frames with their plumb_bob calibration, and its ground truth
    is in the rectified geometry, where predictions on the prepared frames land.

    Args:
        style: scene style of :data:`~dna_depth_core.data.synthetic.STYLES`.
        num_sequences: how many sequences.
        seed: seed of the first sequence.
        height: image height in pixels.
        width: image width in pixels.
        frames_per_sequence: frames generated (and evaluated) per sequence.
    """

    def __init__(
        self, style: str, num_sequences: int, seed: int, height: int, width: int, frames_per_sequence: int
    ) -> None:
        if num_sequences < 1 or seed < 0:
            raise UserError(f"need at least one synthetic sequence and a seed >= 0, got {num_sequences} and {seed}")
        try:
            self.config = scene_config(style, height, width, frames_per_sequence)
        except ValueError as error:
            raise UserError(f"invalid synthetic test set: {error}") from None
        self.num_sequences = num_sequences
        self.seed = seed

    def __len__(self) -> int:
        return self.num_sequences * self.config.frames_per_sequence

    def __iter__(self) -> Iterator[EvaluationSample]:
        for seed in range(self.seed, self.seed + self.num_sequences):
            sequence = generate_sequence(self.config, seed)
            images, calibration = camera_frames(sequence, source=f"synthetic camera (seed {seed})")
            for index, (image, depth) in enumerate(zip(images, sequence.depths, strict=True)):
                yield EvaluationSample(f"seed{seed}/frame{index:03d}", image, depth, calibration)


def estimator_predictor(estimator: DepthEstimator) -> PredictFn:
    """The predictor of a :class:`~dna_depth_core.inference.DepthEstimator`: each sample's
    image prepared with its calibration (rectified, centre-cropped, resized as the
    checkpoint's training frames were, depth times the focal-length factor), depth on the
    image, NaN outside the network's view."""
    return lambda sample: estimator.estimate(sample.image, sample.calibration, resolution="input")


def evaluate_checkpoint(
    checkpoint_path: str | Path,
    samples: Iterable[EvaluationSample],
    protocol: EvaluationProtocol = KITTI_EIGEN_PROTOCOL,
    median_scaling: bool | None = None,
    device: str = "auto",
    num_examples: int = 4,
    progress: bool = True,
) -> EvaluationResult:
    """Evaluate a checkpoint file through :class:`~dna_depth_core.inference.DepthEstimator`.

    Args:
        checkpoint_path: ``.safetensors`` checkpoint.
        samples: test images, e.g. :class:`KittiEigenTestSet` or :class:`SyntheticTestSet`.
        protocol: depth range and crop; its ``median_scaling`` is replaced as below.
        median_scaling: ``None`` scales unless the checkpoint says its depth is metric;
            ``True``/``False`` force it.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        num_examples: images kept for the figure.
        progress: show a progress bar.
    """
    estimator = DepthEstimator.from_checkpoint(checkpoint_path, device=device)
    if median_scaling is None:
        median_scaling = not estimator.metadata.metric
    protocol = dataclasses.replace(protocol, median_scaling=median_scaling)
    return evaluate_predictions(estimator_predictor(estimator), samples, protocol, num_examples, progress)


def write_report(
    result: EvaluationResult, output_dir: str | Path, context: dict[str, Any] | None = None
) -> dict[str, Path]:
    """Save ``result`` under ``output_dir`` (each file written atomically).

    Files: ``metrics.json`` (mean metrics, protocol, counts, scaling statistics,
    ``context`` such as the checkpoint and data paths), ``metrics.csv`` (one row per
    image with its scaling factor, then a ``mean`` row whose scale is the median
    factor) and ``examples.png`` (:func:`render_examples`, when examples were kept).

    Returns:
        ``{"json": path, "csv": path[, "png": path]}``.
    """
    output_dir = Path(output_dir)
    summary = {
        "context": context or {},
        "protocol": dataclasses.asdict(result.protocol),
        "num_images": len(result.per_image),
        "num_skipped": len(result.skipped),
        "skipped": result.skipped,
        "metrics": result.metrics,
        "scale_median": result.scale_median,
        "scale_std_relative": result.scale_std_relative,
    }
    paths = {"json": output_dir / REPORT_JSON, "csv": output_dir / REPORT_CSV}
    atomic_write(paths["json"], lambda temporary: temporary.write_text(json.dumps(summary, indent=2) + "\n"))

    def write_csv(temporary: Path) -> None:
        with open(temporary, "w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(["image", *METRIC_NAMES, "scale"])
            for image in result.per_image:
                writer.writerow(
                    [image.name, *(f"{image.metrics[name]:.6f}" for name in METRIC_NAMES), f"{image.scale:.6f}"]
                )
            writer.writerow(
                ["mean", *(f"{result.metrics[name]:.6f}" for name in METRIC_NAMES), f"{result.scale_median:.6f}"]
            )

    atomic_write(paths["csv"], write_csv)
    if result.examples:
        paths["png"] = output_dir / REPORT_PNG
        atomic_write(paths["png"], lambda temporary: render_examples(result.examples, temporary, result.protocol))
    return paths


def render_examples(examples: list[EvaluationExample], path: str | Path, protocol: EvaluationProtocol) -> None:
    """Save a PNG with one row per example: input, prediction and ground truth.

    Prediction and ground truth of a row share one logarithmic colour scale in metres
    (the 2nd to 98th percentile of the evaluated ground truth; near is bright). Ground
    truth outside the protocol's depth range (sky, no lidar return, beyond
    ``max_depth``) is grey. Sparse ground truth (lidar) is dilated for display only.
    """
    # Imported here: matplotlib is slow to import and only figures need it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    height, width = examples[0].depth_gt.shape
    panel_width = 4.0  # inches
    figure = Figure(
        figsize=(3 * panel_width + 1.2, len(examples) * (panel_width * height / width + 0.35)), layout="constrained"
    )
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(examples), 3, squeeze=False)
    for row, example in zip(axes, examples, strict=True):
        valid = (example.depth_gt > protocol.min_depth) & (example.depth_gt < protocol.max_depth)
        gt = np.where(valid, example.depth_gt, 0.0).astype(np.float32)
        sparse = valid.mean() < 0.5
        if sparse:
            gt = cv2.dilate(gt, np.ones((5, 5), np.uint8))
        low, high = np.percentile(gt[gt > 0], [2, 98]) if valid.any() else (protocol.min_depth, protocol.max_depth)
        colours = dict(cmap=_depth_colormap(), norm=LogNorm(low, max(high, low * 1.01)), interpolation="nearest")
        row[0].imshow(example.image)
        row[0].set_title(example.name, fontsize=8)
        row[1].imshow(example.prediction, **colours)
        row[1].set_title("prediction" + (" (median-scaled)" if protocol.median_scaling else ""), fontsize=8)
        shown = row[2].imshow(np.ma.masked_where(gt <= 0, gt), **colours)
        row[2].set_title("ground truth" + (" (sparse, dilated for display)" if sparse else ""), fontsize=8)
        for axis in row:
            axis.set_axis_off()
        colorbar = figure.colorbar(shown, ax=row.tolist(), fraction=0.03, pad=0.01, label="depth (m)")
        colorbar.ax.minorticks_off()
        ticks = [tick for tick in COLORBAR_TICKS if low <= tick <= high] or [low, high]
        colorbar.set_ticks(ticks, labels=[f"{tick:.3g}" for tick in ticks])
    figure.savefig(path, dpi=100, format="png")


def _depth_colormap():
    from matplotlib import colormaps

    return colormaps["magma_r"].with_extremes(bad=(0.5, 0.5, 0.5))
