"""Depth metrics and the KITTI Eigen-split evaluation protocol (pure numpy functions).

Per image: the prediction is resized to the ground-truth size, pixels with
``min_depth < gt < max_depth`` (inside the Garg crop for KITTI) are kept, the prediction
is median-scaled to the ground truth (for scale-ambiguous models) and clamped to
``[min_depth, max_depth]``, then the seven standard metrics are computed. Benchmarks
average them over images.

A bottom-layer module (numpy and OpenCV only) because training's validation and the
evaluation tools both score with it; :mod:`dna_depth_core.evaluation` re-exports it.
"""

from __future__ import annotations

import cv2
import numpy as np

ABS_REL = "abs_rel"
SQ_REL = "sq_rel"
RMSE = "rmse"
RMSE_LOG = "rmse_log"
DELTA_1 = "d1"
DELTA_2 = "d2"
DELTA_3 = "d3"

METRIC_NAMES = (ABS_REL, SQ_REL, RMSE, RMSE_LOG, DELTA_1, DELTA_2, DELTA_3)
"""Keys of a metrics dict, in the order tables list them."""

METRIC_LABELS = {
    ABS_REL: "AbsRel",
    SQ_REL: "SqRel",
    RMSE: "RMSE",
    RMSE_LOG: "RMSElog",
    DELTA_1: "d<1.25",
    DELTA_2: "d<1.25^2",
    DELTA_3: "d<1.25^3",
}
"""Column headings used in printed tables and reports."""

HIGHER_IS_BETTER = frozenset({DELTA_1, DELTA_2, DELTA_3})
"""Metrics where larger is better (the error metrics are lower-is-better)."""

DELTA_THRESHOLD = 1.25
"""Accuracy threshold: d_k is the fraction of pixels with ``max(gt/pred, pred/gt) < 1.25^k``."""

GARG_CROP = (0.40810811, 0.99189189, 0.03594771, 0.96405229)
"""Garg crop as fractions of the image size: ``(top, bottom, left, right)``."""


class NoValidPixelsError(ValueError):
    """A ground-truth map has no pixel inside the evaluated depth range (and crop)."""


def compute_depth_metrics(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """The seven standard depth metrics over matching pixels.

    Args:
        gt: ``(N,)`` ground-truth depths in metres, all > 0.
        pred: ``(N,)`` predicted depths in metres, all > 0 (already scaled/clamped).

    Returns:
        ``{name: value}`` for :data:`METRIC_NAMES`:
        ``abs_rel = mean(|gt - pred| / gt)``, ``sq_rel = mean((gt - pred)^2 / gt)``,
        ``rmse = sqrt(mean((gt - pred)^2))`` (metres),
        ``rmse_log = sqrt(mean((ln gt - ln pred)^2))``,
        ``d_k = mean(max(gt / pred, pred / gt) < 1.25^k)`` for k = 1, 2, 3.
        Computed in float64.
    """
    gt = np.asarray(gt, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    if gt.ndim != 1 or gt.shape != pred.shape:
        raise ValueError(f"gt and pred must be matching (N,) arrays, got {gt.shape} and {pred.shape}")
    if gt.size == 0:
        raise NoValidPixelsError("no pixels to evaluate")
    if not (np.all(gt > 0) and np.all(pred > 0)):
        raise ValueError("gt and pred depths must all be > 0; mask invalid pixels and clamp predictions first")
    ratio = np.maximum(gt / pred, pred / gt)
    difference = gt - pred
    return {
        ABS_REL: float(np.mean(np.abs(difference) / gt)),
        SQ_REL: float(np.mean(difference**2 / gt)),
        RMSE: float(np.sqrt(np.mean(difference**2))),
        RMSE_LOG: float(np.sqrt(np.mean((np.log(gt) - np.log(pred)) ** 2))),
        DELTA_1: float(np.mean(ratio < DELTA_THRESHOLD)),
        DELTA_2: float(np.mean(ratio < DELTA_THRESHOLD**2)),
        DELTA_3: float(np.mean(ratio < DELTA_THRESHOLD**3)),
    }


def garg_crop_mask(height: int, width: int) -> np.ndarray:
    """Boolean ``(height, width)`` mask of the Garg crop.

    True on rows ``int(0.40810811 H) .. int(0.99189189 H) - 1`` and columns
    ``int(0.03594771 W) .. int(0.96405229 W) - 1`` (bounds truncated to integers), e.g.
    rows 153..370 and columns 44..1196 of a 375 x 1242 KITTI image.
    """
    top, bottom, left, right = GARG_CROP
    mask = np.zeros((height, width), dtype=bool)
    mask[int(top * height) : int(bottom * height), int(left * width) : int(right * width)] = True
    return mask


def resize_depth(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinearly resize a dense, positive depth map in inverse depth (as the benchmark resizes disparity).

    Args:
        depth: float ``(h, w)`` depth, all > 0.
        size: output ``(height, width)`` in pixels.

    Returns:
        float32 ``(height, width)`` depth.
    """
    if tuple(size) == depth.shape:
        return depth.astype(np.float32, copy=False)
    inverse = cv2.resize((1.0 / depth).astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return 1.0 / inverse


def evaluate_depth_map(
    gt: np.ndarray,
    pred: np.ndarray,
    min_depth: float = 1e-3,
    max_depth: float = 80.0,
    garg_crop: bool = True,
    median_scaling: bool = True,
) -> tuple[dict[str, float], float]:
    """Evaluate one predicted depth map against ground truth with the Eigen-split protocol.

    Args:
        gt: float ``(H, W)`` ground-truth depth in metres, 0 (or anything outside the
            range) where unknown.
        pred: float ``(h, w)`` predicted depth, any size, > 0 and finite where predicted,
            NaN where the model did not predict (outside the part of the image it saw:
            such pixels are not evaluated); resized to ``(H, W)`` with :func:`resize_depth`.
        min_depth: pixels need ``gt > min_depth`` (metres); predictions are clamped to it.
        max_depth: pixels need ``gt < max_depth`` (metres); predictions are clamped to it.
        garg_crop: also restrict to :func:`garg_crop_mask` (KITTI).
        median_scaling: multiply the prediction by ``median(gt) / median(pred)`` over the
            valid pixels (for models that know depth only up to scale).

    Returns:
        ``(metrics, scale)``: :func:`compute_depth_metrics` of the valid pixels and the
        median-scaling factor applied (1.0 without median scaling).

    Raises:
        NoValidPixelsError: no ground-truth pixel lies in range (and crop).
    """
    if gt.ndim != 2 or pred.ndim != 2:
        raise ValueError(f"gt and pred must be (H, W) maps, got shapes {gt.shape} and {pred.shape}")
    predicted = ~np.isnan(pred)
    if not np.all(np.isfinite(pred[predicted])) or not np.all(pred[predicted] > 0) or not predicted.any():
        raise ValueError("predicted depth must be finite and > 0 (NaN only where nothing is predicted)")
    pred = resize_depth(pred, gt.shape)
    valid = (gt > min_depth) & (gt < max_depth) & ~np.isnan(pred)
    if garg_crop:
        valid &= garg_crop_mask(*gt.shape)
    if not valid.any():
        raise NoValidPixelsError(f"no predicted ground-truth pixel between {min_depth} and {max_depth} m")
    gt_valid = gt[valid].astype(np.float64)
    pred_valid = pred[valid].astype(np.float64)
    scale = 1.0
    if median_scaling:
        scale = float(np.median(gt_valid) / np.median(pred_valid))
        pred_valid = pred_valid * scale
    pred_valid = np.clip(pred_valid, min_depth, max_depth)
    return compute_depth_metrics(gt_valid, pred_valid), scale


def mean_metrics(per_image: list[dict[str, float]]) -> dict[str, float]:
    """Average per-image metric dicts (the benchmark's "averaged over images")."""
    if not per_image:
        raise ValueError("no per-image metrics to average")
    return {name: float(np.mean([metrics[name] for metrics in per_image])) for name in METRIC_NAMES}


def format_metrics_table(rows: dict[str, dict[str, float]]) -> str:
    """A fixed-width text table: one row per ``{row_name: metrics}`` entry, columns :data:`METRIC_NAMES`."""
    name_width = max([len("model")] + [len(name) for name in rows])
    header = f"{'model':<{name_width}} | " + " | ".join(f"{METRIC_LABELS[name]:>9}" for name in METRIC_NAMES)
    lines = [header, "-" * len(header)]
    for row_name, metrics in rows.items():
        lines.append(f"{row_name:<{name_width}} | " + " | ".join(f"{metrics[name]:>9.4f}" for name in METRIC_NAMES))
    return "\n".join(lines)
