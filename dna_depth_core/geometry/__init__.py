"""Camera geometry: depth conversion, projection, poses and view warping (pure functions)."""

from .depth import disp_to_depth

__all__ = ["disp_to_depth"]
