"""Depth evaluation: the Eigen-split protocol, KITTI ground truth and the evaluation loop.

The metrics themselves live in :mod:`dna_depth_core.metrics` (training validates with them
too) and are re-exported here.
"""

from ..data.kitti_depth import kitti_depth_map, project_points_to_depth
from ..metrics import (
    HIGHER_IS_BETTER,
    METRIC_LABELS,
    METRIC_NAMES,
    NoValidPixelsError,
    compute_depth_metrics,
    evaluate_depth_map,
    format_metrics_table,
    garg_crop_mask,
    mean_metrics,
)
from .evaluate import (
    KITTI_EIGEN_PROTOCOL,
    SYNTHETIC_PROTOCOL,
    EvaluationExample,
    EvaluationProtocol,
    EvaluationResult,
    EvaluationSample,
    ImageResult,
    KittiEigenTestSet,
    PredictFn,
    SyntheticTestSet,
    estimator_predictor,
    evaluate_checkpoint,
    evaluate_predictions,
    render_examples,
    write_report,
)
from .kitti_gt import GroundTruthFile, export_ground_truth

__all__ = [
    "HIGHER_IS_BETTER",
    "KITTI_EIGEN_PROTOCOL",
    "METRIC_LABELS",
    "METRIC_NAMES",
    "SYNTHETIC_PROTOCOL",
    "EvaluationExample",
    "EvaluationProtocol",
    "EvaluationResult",
    "EvaluationSample",
    "GroundTruthFile",
    "ImageResult",
    "KittiEigenTestSet",
    "NoValidPixelsError",
    "PredictFn",
    "SyntheticTestSet",
    "compute_depth_metrics",
    "estimator_predictor",
    "evaluate_checkpoint",
    "evaluate_depth_map",
    "evaluate_predictions",
    "export_ground_truth",
    "format_metrics_table",
    "garg_crop_mask",
    "kitti_depth_map",
    "mean_metrics",
    "project_points_to_depth",
    "render_examples",
    "write_report",
]
