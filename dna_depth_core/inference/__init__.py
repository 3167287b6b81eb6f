"""Inference: a uint8 image in, depth out."""

from .estimator import DepthEstimator, resolve_device

__all__ = ["DepthEstimator", "resolve_device"]
