"""Ground-plane scale on rendered synthetic frames whose camera height is known."""

import functools

import numpy as np
import pytest
import torch

from dna_depth_core.data.synthetic import generate_sequence, scene_config
from dna_depth_core.geometry import pixel_rays
from dna_depth_core.geometry.ground_plane import NoGroundPlaneError, ground_plane_scale, plane_distance


@functools.lru_cache(maxsize=None)
def _rendered(style: str, height: int, width: int):
    """Three frames of one sequence (the minimum a sequence has), rendered once per style."""
    config = scene_config(style, height, width, frames_per_sequence=3)
    return config, generate_sequence(config, seed=3)


@pytest.mark.parametrize("style, height, width", [("robot", 120, 160), ("street", 96, 320)])
@pytest.mark.parametrize("metres_per_unit", [0.02, 3.7])
def test_scale_from_known_camera_height(style, height, width, metres_per_unit):
    """Ground truth in a unit of ``metres_per_unit`` metres gives that unit back within 5 %
    (robot: 0.5 m camera pitched 5 degrees down over a furnished floor; street: 1.65 m)."""
    config, sequence = _rendered(style, height, width)
    for depth in sequence.depths:
        fit = ground_plane_scale(depth / metres_per_unit, sequence.intrinsics, config.camera_height)
        assert fit.scale == pytest.approx(metres_per_unit, rel=0.05)
        assert fit.distance * fit.scale == pytest.approx(config.camera_height)
        assert 0 < fit.inlier_fraction <= 1 and fit.inliers.shape == (height, width)
        assert not fit.inliers[: height // 2].any()  # only the lower half is searched
    if style == "robot":
        assert fit.tilt_deg == pytest.approx(5.0, abs=1.0)  # the robot camera's pitch


def test_no_floor_in_view():
    """A fronto-parallel wall is no floor: one clear error instead of a scale."""
    intrinsics = np.array([[100.0, 0, 80], [0, 100, 60], [0, 0, 1]])
    with pytest.raises(NoGroundPlaneError, match="degrees"):
        ground_plane_scale(np.full((120, 160), 3.0), intrinsics, 0.5)
    with pytest.raises(NoGroundPlaneError, match="at least 3"):
        ground_plane_scale(np.zeros((120, 160)), intrinsics, 0.5)


def test_plane_distance_is_differentiable():
    """The training signal: the distance of the fitted pixels moves with the depth."""
    config, sequence = _rendered("robot", 120, 160)
    fit = ground_plane_scale(sequence.depths[0], sequence.intrinsics, config.camera_height)
    depth = torch.from_numpy(sequence.depths[0])[None, None].double().requires_grad_(True)
    rays = pixel_rays(torch.from_numpy(sequence.intrinsics)[None].double(), 120, 160)
    distance = plane_distance(depth, rays, torch.from_numpy(fit.normal)[None], fit.inliers[None])
    assert float(distance.detach()) == pytest.approx(fit.distance, rel=0.01)
    (2 * distance).sum().backward()
    assert depth.grad[0, 0][fit.inliers].gt(0).all() and depth.grad[0, 0][~fit.inliers].eq(0).all()


def test_known_floor_normal_measures_the_distance_along_it():
    """With the camera mount's floor direction given, the fit keeps it and measures the
    floor's distance along it: the unit comes back within 5 % on exact depth, and a
    floor "above" the camera is refused with a clear error."""
    config, sequence = _rendered("robot", 120, 160)
    pitch = np.radians(5.0)  # the robot camera's mount: pitched 5 degrees down
    normal = np.array([0.0, np.cos(pitch), np.sin(pitch)])
    for depth in sequence.depths:
        fit = ground_plane_scale(depth / 0.02, sequence.intrinsics, config.camera_height, floor_normal=2 * normal)
        assert fit.scale == pytest.approx(0.02, rel=0.05)
        np.testing.assert_allclose(fit.normal, normal)
        assert fit.tilt_deg == pytest.approx(5.0) and fit.inliers.any()
    with pytest.raises(ValueError, match="points up"):
        ground_plane_scale(sequence.depths[0], sequence.intrinsics, 0.5, floor_normal=-normal)


def test_known_floor_normal_corrects_a_tilted_depth_map():
    """A depth map whose floor reads too far near the camera and too near farther away
    (the way a network's depth errs) is still nearly a plane, but a tilted one (13 degrees
    instead of 5): the free fit's unit is about 20 % off, the known normal's right."""
    config, sequence = _rendered("robot", 120, 160)
    pitch = np.radians(5.0)
    normal = np.array([0.0, np.cos(pitch), np.sin(pitch)])
    for depth in sequence.depths:
        depth = depth.astype(np.float64)
        squashed = np.where(depth > 0, depth ** 0.75, 0.0)  # a compressed depth range
        free = ground_plane_scale(squashed, sequence.intrinsics, config.camera_height)
        known = ground_plane_scale(squashed, sequence.intrinsics, config.camera_height, floor_normal=normal)
        truth = np.median((depth / squashed)[known.inliers.numpy()])  # what makes this floor metric
        assert known.scale == pytest.approx(truth, rel=0.02)
        assert abs(free.scale / truth - 1) > 0.1 and free.tilt_deg > 10
