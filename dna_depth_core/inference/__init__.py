"""Inference: a uint8 image in, depth out, on the fastest available backend."""

from .backends import AUTO_PREFERENCE, BACKEND_NAMES, backend_available, resolve_backend
from .estimator import DepthEstimator
from .fused import FusedDepthNet

__all__ = [
    "AUTO_PREFERENCE", "BACKEND_NAMES", "DepthEstimator", "FusedDepthNet", "backend_available", "resolve_backend",
]
