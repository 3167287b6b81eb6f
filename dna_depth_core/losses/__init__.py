"""Self-supervised training losses: photometric reconstruction, auto-masking, smoothness."""

from .photometric import (
    SSIM_C1, SSIM_C2, PhotometricTarget, box_filter_3x3, min_reprojection, photometric_error, ssim,
)
from .self_supervised import SelfSupervisedLossConfig, SelfSupervisedLossOutput, self_supervised_loss
from .smoothness import edge_aware_smoothness

__all__ = [
    "SSIM_C1",
    "SSIM_C2",
    "PhotometricTarget",
    "SelfSupervisedLossConfig",
    "SelfSupervisedLossOutput",
    "box_filter_3x3",
    "edge_aware_smoothness",
    "min_reprojection",
    "photometric_error",
    "self_supervised_loss",
    "ssim",
]
