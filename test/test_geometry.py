"""Camera geometry against known answers: rotations, pose inversion, projection, resizing, warping."""

import math

import cv2
import numpy as np
import pytest
import torch

from dna_depth_core.geometry import (
    axis_angle_to_matrix,
    backproject,
    intrinsics_from_normalized,
    pixel_grid,
    pixel_rays,
    pose_vector_to_transform,
    project,
    scale_intrinsics,
    transform_points,
    warp_to_target,
)

HEIGHT, WIDTH = 48, 64
PLANE_DEPTH = 5.0


def make_intrinsics(batch: int = 1, dtype=torch.float64) -> torch.Tensor:
    """Square pixels, principal point a little off-centre so sign mistakes show."""
    intrinsics = torch.tensor([[52.0, 0.0, 30.7], [0.0, 50.0, 24.2], [0.0, 0.0, 1.0]], dtype=dtype)
    return intrinsics.expand(batch, 3, 3).clone()


def plane_texture(x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Smooth random RGB texture of plane coordinates in metres -> (3, ...) in [0, 1].

    Wavelengths of 2 to 6 m are 20 to 60 pixels at the plane's depth, so bilinear sampling
    reproduces it to a few thousandths.
    """
    generator = torch.Generator().manual_seed(seed)
    channels = []
    for _ in range(3):
        value = torch.full_like(x, 0.5)
        for _ in range(3):
            frequency = 1.0 + 2.0 * torch.rand(2, generator=generator, dtype=x.dtype)
            phase = 2 * math.pi * torch.rand(1, generator=generator, dtype=x.dtype)
            value = value + 0.15 * torch.sin(frequency[0] * x + frequency[1] * y + phase)
        channels.append(value)
    return torch.stack(channels)


def render_plane(target_to_camera: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Ray-trace the textured plane z = PLANE_DEPTH (target frame) seen by a camera.

    Independent of the warping code: each pixel's ray is intersected with the plane
    analytically. ``target_to_camera`` (4, 4) maps target points to this camera.
    Returns a (3, HEIGHT, WIDTH) float64 image.
    """
    v, u = torch.meshgrid(
        torch.arange(HEIGHT, dtype=torch.float64), torch.arange(WIDTH, dtype=torch.float64), indexing="ij"
    )
    pixels = torch.stack([u, v, torch.ones_like(u)]).reshape(3, -1)
    rotation, translation = target_to_camera[:3, :3], target_to_camera[:3, 3]
    centre = -rotation.T @ translation
    directions = rotation.T @ torch.linalg.inv(intrinsics) @ pixels
    distance = (PLANE_DEPTH - centre[2]) / directions[2]
    hits = centre[:, None] + distance * directions
    return plane_texture(hits[0], hits[1]).reshape(3, HEIGHT, WIDTH)


def test_axis_angle_quarter_turns():
    quarter = math.pi / 2
    axis_angles = torch.tensor([[quarter, 0, 0], [0, quarter, 0], [0, 0, quarter]], dtype=torch.float64)
    expected = torch.tensor(
        [
            [[1, 0, 0], [0, 0, -1], [0, 1, 0]],  # about x: y -> z
            [[0, 0, 1], [0, 1, 0], [-1, 0, 0]],  # about y: z -> x
            [[0, -1, 0], [1, 0, 0], [0, 0, 1]],  # about z: x -> y
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(axis_angle_to_matrix(axis_angles), expected, atol=1e-12, rtol=0)


def test_axis_angle_matches_matrix_exponential_across_angles():
    generator = torch.Generator().manual_seed(1)
    directions = torch.nn.functional.normalize(torch.randn(7, 3, dtype=torch.float64, generator=generator), dim=1)
    angles = torch.tensor([0.0, 1e-8, 1e-4, 9.9e-4, 1.01e-3, 0.3, 3.0], dtype=torch.float64)
    axis_angles = directions * angles[:, None]
    x, y, z = axis_angles.unbind(1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=1).view(-1, 3, 3)
    expected = torch.linalg.matrix_exp(skew)
    torch.testing.assert_close(axis_angle_to_matrix(axis_angles), expected, atol=1e-12, rtol=0)
    # float32 stays accurate on both sides of the small-angle switch.
    torch.testing.assert_close(axis_angle_to_matrix(axis_angles.float()), expected.float(), atol=1e-6, rtol=0)


def test_axis_angle_gradient_at_zero_is_the_rotation_generators():
    jacobian = torch.autograd.functional.jacobian(axis_angle_to_matrix, torch.zeros(1, 3))
    assert torch.isfinite(jacobian).all()
    generators = torch.tensor(
        [[[0, 0, 0], [0, 0, -1], [0, 1, 0]], [[0, 0, 1], [0, 0, 0], [-1, 0, 0]], [[0, -1, 0], [1, 0, 0], [0, 0, 0]]],
        dtype=torch.float32,
    )
    torch.testing.assert_close(jacobian[0, :, :, 0].permute(2, 0, 1), generators)


def test_pose_inverse_composes_to_identity():
    generator = torch.Generator().manual_seed(2)
    axis_angle = torch.randn(4, 3, dtype=torch.float64, generator=generator)
    translation = torch.randn(4, 3, dtype=torch.float64, generator=generator)
    forward = pose_vector_to_transform(axis_angle, translation)
    inverse = pose_vector_to_transform(axis_angle, translation, invert=True)
    identity = torch.eye(4, dtype=torch.float64).expand(4, 4, 4)
    torch.testing.assert_close(inverse @ forward, identity, atol=1e-12, rtol=0)
    torch.testing.assert_close(forward @ inverse, identity, atol=1e-12, rtol=0)
    torch.testing.assert_close(forward[:, :3, 3], translation)
    torch.testing.assert_close(forward[:, 3], torch.tensor([0, 0, 0, 1.0], dtype=torch.float64).expand(4, 4))


def test_backproject_then_project_gives_the_pixel_grid():
    intrinsics = make_intrinsics(2, torch.float32)
    intrinsics[1, 0, 1] = 0.7  # skew must be undone too
    depth = 0.5 + 20 * torch.rand(2, 1, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(3))
    points = backproject(depth, intrinsics)
    torch.testing.assert_close(points[:, 2:], depth)
    pixels = project(points, intrinsics)
    v, u = torch.meshgrid(torch.arange(HEIGHT), torch.arange(WIDTH), indexing="ij")
    torch.testing.assert_close(pixels, torch.stack([u, v], dim=-1).float().expand(2, -1, -1, -1), atol=1e-3, rtol=0)


def test_pixel_rays_are_the_points_at_depth_one_and_serve_any_depth():
    intrinsics = make_intrinsics(2)
    intrinsics[1, 0, 2] = 40.1  # a second camera in the batch
    rays = pixel_rays(intrinsics, HEIGHT, WIDTH)
    torch.testing.assert_close(rays, backproject(torch.ones(2, 1, HEIGHT, WIDTH, dtype=torch.float64), intrinsics))
    depth = 0.5 + 20 * torch.rand(2, 1, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(backproject(depth, intrinsics, rays), backproject(depth, intrinsics))
    # The pixel grid is built once per size, dtype and device, also under inference mode.
    with torch.inference_mode():
        grid = pixel_grid(HEIGHT + 1, WIDTH, torch.float32, torch.device("cpu"))
    assert pixel_grid(HEIGHT + 1, WIDTH, torch.float32, torch.device("cpu")) is grid and not grid.is_inference()
    with pytest.raises(ValueError, match=r"rays must have shape \(2, 3, 48, 64\)"):
        backproject(depth, intrinsics, rays[:, :, 1:])


def test_transform_points_applies_rotation_then_translation():
    points = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
    transform = pose_vector_to_transform(torch.tensor([[0, 0, math.pi / 2]]), torch.tensor([[10.0, 20.0, 30.0]]))
    moved = transform_points(points, transform)
    torch.testing.assert_close(moved.flatten(), torch.tensor([8.0, 21.0, 33.0]))


def test_intrinsics_from_normalized_kitti_recipe():
    intrinsics = intrinsics_from_normalized(0.58, 1.92, 0.5, 0.5, height=192, width=640)
    expected = torch.tensor([[371.2, 0, 320], [0, 368.64, 96], [0, 0, 1]])
    torch.testing.assert_close(intrinsics, expected)


def _blob_centroid(image: np.ndarray) -> np.ndarray:
    v, u = np.mgrid[: image.shape[0], : image.shape[1]]
    return np.array([(u * image).sum(), (v * image).sum()]) / image.sum()


@pytest.mark.parametrize(
    "new_size, interpolation", [((128, 85), cv2.INTER_AREA), ((610, 450), cv2.INTER_LINEAR)], ids=["down", "up"]
)
def test_scale_intrinsics_agrees_with_cv2_resize(new_size, interpolation):
    width, height = 300, 200
    intrinsics = torch.tensor([[[240.0, 0.0, 151.3], [0.0, 230.0, 97.6], [0.0, 0.0, 1.0]]], dtype=torch.float64)
    point = torch.tensor([0.4, -0.3, 2.5], dtype=torch.float64).view(1, 3, 1, 1)
    u0, v0 = project(point, intrinsics).flatten().tolist()
    v, u = np.mgrid[:height, :width]
    blob = np.exp(-((u - u0) ** 2 + (v - v0) ** 2) / (2 * 7.0**2))
    resized = cv2.resize(blob, new_size, interpolation=interpolation)

    scaled = scale_intrinsics(intrinsics, new_size[0] / width, new_size[1] / height)
    expected = project(point, scaled).flatten().numpy()
    # The half-pixel convention matters here: ignoring it would be off by 0.29 px down, 0.5 px up.
    np.testing.assert_allclose(_blob_centroid(resized), expected, atol=0.03)


def test_identity_pose_reproduces_the_target():
    image = torch.rand(2, 3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(4))
    depth = 0.1 + 50 * torch.rand(2, 1, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(5))
    identity = torch.eye(4).expand(2, 4, 4)
    warped, valid = warp_to_target(image, depth, identity, make_intrinsics(2, torch.float32))
    torch.testing.assert_close(warped, image, atol=1e-4, rtol=0)
    assert valid.all()


@pytest.mark.parametrize(
    "axis_angle, translation",
    [
        ((0.0, 0.0, 0.0), (0.5, 0.0, 0.0)),  # camera moves 0.5 m right
        ((0.0, 0.0, 0.0), (0.0, 0.0, 0.5)),  # camera moves 0.5 m forward
        ((0.02, -0.03, 0.01), (0.1, -0.05, 0.3)),
    ],
    ids=["right", "forward", "general"],
)
def test_warp_of_a_moving_camera_onto_a_plane(axis_angle, translation):
    # The source camera sits at `translation` (target frame) rotated by `axis_angle`, so
    # target_to_source is the inverse of that camera's pose.
    target_to_source = pose_vector_to_transform(
        torch.tensor([axis_angle], dtype=torch.float64), torch.tensor([translation], dtype=torch.float64), invert=True
    )
    intrinsics = make_intrinsics()
    target = render_plane(torch.eye(4, dtype=torch.float64), intrinsics[0])
    source = render_plane(target_to_source[0], intrinsics[0])
    depth = torch.full((1, 1, HEIGHT, WIDTH), PLANE_DEPTH)

    warped, valid = warp_to_target(source[None].float(), depth, target_to_source.float(), intrinsics.float())
    valid = valid[0, 0]
    assert valid.float().mean() > 0.6
    error = (warped[0] - target.float()).abs()
    assert error[:, valid].max() < 0.01
    # Invalid pixels really are outside the source: there the border is repeated instead.
    assert error[:, ~valid].max() > 0.02


def test_sideways_motion_invalidates_the_columns_it_uncovers():
    # 0.5 m to the right in front of a plane at 5 m shifts the image 52 * 0.1 = 5.2 px left.
    target_to_source = pose_vector_to_transform(torch.zeros(1, 3), torch.tensor([[-0.5, 0.0, 0.0]]))
    depth = torch.full((1, 1, HEIGHT, WIDTH), PLANE_DEPTH)
    source = torch.rand(1, 3, HEIGHT, WIDTH)
    warped, valid = warp_to_target(source, depth, target_to_source, make_intrinsics(1, torch.float32))
    expected = torch.zeros(HEIGHT, WIDTH, dtype=torch.bool)
    expected[:, 6:] = True
    assert torch.equal(valid[0, 0], expected)
    # Border padding: the uncovered columns repeat the source's first column.
    torch.testing.assert_close(warped[..., :6], source[..., :1].expand(-1, -1, -1, 6), atol=1e-5, rtol=0)


def test_points_behind_the_source_camera_are_invalid():
    # Moving 10 m forward puts the plane at 5 m behind the source camera.
    target_to_source = pose_vector_to_transform(torch.zeros(1, 3), torch.tensor([[0.0, 0.0, -10.0]]))
    depth = torch.full((1, 1, HEIGHT, WIDTH), PLANE_DEPTH)
    source = torch.rand(1, 3, HEIGHT, WIDTH)
    warped, valid = warp_to_target(source, depth, target_to_source, make_intrinsics(1, torch.float32))
    assert not valid.any()
    assert torch.isfinite(warped).all()


def test_shape_errors_name_the_expected_shape():
    intrinsics = make_intrinsics(1, torch.float32)
    with pytest.raises(ValueError, match=r"\(B, 3\)"):
        axis_angle_to_matrix(torch.zeros(3))
    with pytest.raises(ValueError, match="same batch size"):
        pose_vector_to_transform(torch.zeros(2, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        backproject(torch.ones(1, 2, 4, 4), intrinsics)
    with pytest.raises(ValueError, match=r"\(1, 3, 3\)"):
        backproject(torch.ones(1, 1, 4, 4), torch.eye(3))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        project(torch.ones(1, 4, 4, 4), intrinsics)
    with pytest.raises(ValueError, match=r"\(1, 4, 4\)"):
        transform_points(torch.ones(1, 3, 4, 4), torch.eye(4))
    with pytest.raises(ValueError, match=r"\(1, 1, 4, 4\)"):
        warp_to_target(torch.ones(1, 3, 4, 4), torch.ones(1, 1, 4, 5), torch.eye(4)[None], intrinsics)
    with pytest.raises(ValueError, match="> 0"):
        scale_intrinsics(intrinsics, 0.0, 1.0)
