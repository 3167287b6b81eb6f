"""Camera geometry: depth conversion, projection, poses and view warping (pure functions)."""

from .camera import (
    backproject, intrinsics_from_normalized, pixel_grid, pixel_rays, project, scale_intrinsics, transform_points,
)
from .depth import disp_to_depth
from .ground_plane import GroundPlaneFit, NoGroundPlaneError, fit_ground_plane, ground_plane_scale, plane_distance
from .pose import axis_angle_to_matrix, pose_vector_to_transform
from .warp import warp_to_target

__all__ = [
    "axis_angle_to_matrix",
    "backproject",
    "disp_to_depth",
    "fit_ground_plane",
    "ground_plane_scale",
    "GroundPlaneFit",
    "NoGroundPlaneError",
    "intrinsics_from_normalized",
    "pixel_grid",
    "pixel_rays",
    "plane_distance",
    "pose_vector_to_transform",
    "project",
    "scale_intrinsics",
    "transform_points",
    "warp_to_target",
]
