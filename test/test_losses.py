"""Self-supervised losses against known answers: SSIM, photometric error, auto-masking, smoothness."""

import math

import pytest
import torch

from dna_depth_core.errors import UserError
from dna_depth_core.geometry import intrinsics_from_normalized, pose_vector_to_transform
from dna_depth_core.losses import (
    SSIM_C1,
    SSIM_C2,
    PhotometricTarget,
    SelfSupervisedLossConfig,
    box_filter_3x3,
    edge_aware_smoothness,
    min_reprojection,
    photometric_error,
    self_supervised_loss,
    ssim,
)
from dna_depth_core.losses.photometric import _box_filter_3x3_adjoint

BATCH, HEIGHT, WIDTH = 2, 64, 96
NUM_SCALES = 4


def random_images(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def intrinsics(batch: int = BATCH) -> torch.Tensor:
    return intrinsics_from_normalized(0.58, 1.92, 0.5, 0.5, HEIGHT, WIDTH).expand(batch, 3, 3)


def constant_disparities(value: float, batch: int = BATCH) -> list[torch.Tensor]:
    return [torch.full((batch, 1, HEIGHT >> s, WIDTH >> s), value) for s in range(NUM_SCALES)]


def disparity_of_depth(depth: float, config: SelfSupervisedLossConfig) -> float:
    """Inverse of disp_to_depth."""
    min_inverse, max_inverse = 1 / config.max_depth, 1 / config.min_depth
    return (1 / depth - min_inverse) / (max_inverse - min_inverse)


def sideways_triplet(plane_depth: float, step: float) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A camera sliding right by ``step`` m per frame in front of a textured fronto-parallel plane.

    Returns frames (1, 3, 3, H, W) [t-1, t, t+1] and the true target_to_source transforms.
    The texture is a smooth function of the plane's x, y in metres.
    """
    fx, cx = intrinsics()[0, 0, 0].item(), intrinsics()[0, 0, 2].item()
    fy, cy = intrinsics()[0, 1, 1].item(), intrinsics()[0, 1, 2].item()
    v, u = torch.meshgrid(torch.arange(HEIGHT), torch.arange(WIDTH), indexing="ij")
    y = (v.double() - cy) / fy * plane_depth
    frames = []
    for camera_x in (-step, 0.0, step):
        x = (u.double() - cx) / fx * plane_depth + camera_x
        red = 0.5 + 0.2 * torch.sin(1.3 * x + 0.4 * y)
        green = 0.5 + 0.2 * torch.sin(0.7 * x - 1.1 * y + 1.0)
        blue = 0.5 + 0.2 * torch.cos(2.1 * x + 0.9 * y)
        frames.append(torch.stack([red, green, blue]))
    transforms = [
        pose_vector_to_transform(torch.zeros(1, 3), torch.tensor([[camera_x, 0.0, 0.0]]), invert=True)
        for camera_x in (-step, step)
    ]
    return torch.stack(frames)[None].float(), transforms


def test_ssim_of_equal_images_is_one_and_drops_for_different_ones():
    image = random_images(BATCH, 3, HEIGHT, WIDTH)
    torch.testing.assert_close(ssim(image, image), torch.ones_like(image), atol=1e-5, rtol=0)
    other = random_images(BATCH, 3, HEIGHT, WIDTH, seed=1)
    assert ssim(image, other).mean() < 0.1
    assert 0.3 < ssim(image, (image + 0.3 * other) / 1.3).mean() < 0.99


def test_ssim_of_constant_images_is_the_luminance_term():
    a, b = 0.2, 0.7
    # float64: in float32 the variance E[x^2] - mu^2 of a constant cancels to ~1e-8, which
    # is a visible 1e-5 next to C2.
    value = ssim(torch.full((1, 3, 8, 8), a, dtype=torch.float64), torch.full((1, 3, 8, 8), b, dtype=torch.float64))
    expected = (2 * a * b + SSIM_C1) / (a * a + b * b + SSIM_C1)
    torch.testing.assert_close(value, torch.full_like(value, expected), atol=1e-12, rtol=0)


@pytest.mark.parametrize("row, column", [(5, 7), (0, 0), (15, 11)], ids=["interior", "corner", "far-corner"])
def test_ssim_uses_3x3_windows_reflected_at_the_border(row, column):
    x, y = (random_images(1, 1, 16, 12, seed=seed).double() for seed in (4, 5))

    def reflect(index: int, size: int) -> int:
        return -index if index < 0 else 2 * (size - 1) - index if index >= size else index

    rows = [reflect(row + offset, 16) for offset in (-1, 0, 1)]
    columns = [reflect(column + offset, 12) for offset in (-1, 0, 1)]
    window_x, window_y = (image[0, 0][rows][:, columns].flatten() for image in (x, y))
    mu_x, mu_y = window_x.mean(), window_y.mean()
    var_x, var_y = window_x.var(unbiased=False), window_y.var(unbiased=False)
    cov_xy = ((window_x - mu_x) * (window_y - mu_y)).mean()
    expected = ((2 * mu_x * mu_y + SSIM_C1) * (2 * cov_xy + SSIM_C2)
                / ((mu_x**2 + mu_y**2 + SSIM_C1) * (var_x + var_y + SSIM_C2)))
    assert ssim(x, y)[0, 0, row, column].item() == pytest.approx(expected.item(), abs=1e-12)


def test_photometric_error_zero_for_identical_images_and_known_for_constants():
    image = random_images(BATCH, 3, HEIGHT, WIDTH)
    error = photometric_error(image, image)
    assert error.shape == (BATCH, 1, HEIGHT, WIDTH)
    assert error.abs().max() < 1e-5

    a, b = 0.2, 0.7
    constant_a, constant_b = (torch.full((1, 3, 8, 8), value, dtype=torch.float64) for value in (a, b))
    error = photometric_error(constant_a, constant_b)
    ssim_value = (2 * a * b + SSIM_C1) / (a * a + b * b + SSIM_C1)
    expected = 0.85 * (1 - ssim_value) / 2 + 0.15 * abs(a - b)
    torch.testing.assert_close(error, torch.full_like(error, expected), atol=1e-12, rtol=0)


@pytest.mark.parametrize("height, width", [(2, 2), (2, 3), (7, 5)])
def test_box_filter_is_a_reflect_padded_3x3_mean_and_its_adjoint_is_its_transpose(height, width):
    images = random_images(2, 3, height, width).double().requires_grad_()
    expected = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(images, (1, 1, 1, 1), mode="reflect"), 3, 1)
    torch.testing.assert_close(box_filter_3x3(images), expected, atol=1e-15, rtol=0)
    gradient = random_images(2, 3, height, width, seed=1).double()
    expected.backward(gradient)
    torch.testing.assert_close(_box_filter_3x3_adjoint(gradient), images.grad, atol=1e-15, rtol=0)


def test_photometric_error_gradient_is_exact():
    # The hand-written backward against finite differences (float64).
    target = random_images(2, 3, 6, 7).double()
    prediction = (0.7 * target + 0.3 * random_images(2, 3, 6, 7, seed=1).double()).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: photometric_error(x, target), (prediction,))
    statistics = PhotometricTarget(target)
    assert torch.autograd.gradcheck(lambda x: photometric_error(x, statistics, ssim_weight=0.3), (prediction,))
    # A target that needs a gradient too goes through autograd.
    target.requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: photometric_error(x, y), (prediction, target))


def test_min_reprojection_takes_the_minimum_and_masks_where_identity_wins():
    reprojection = torch.tensor([[[[0.2, 0.5, 0.3]], [[0.4, 0.1, 0.3]]]])  # (1, 2, 1, 3)
    identity = torch.tensor([[[[0.3, 0.05, 0.3]], [[0.9, 0.9, 0.9]]]])
    loss, automask = min_reprojection(reprojection, identity)
    torch.testing.assert_close(loss, torch.tensor([[[[0.2, 0.05, 0.3]]]]))
    # Last pixel is an exact tie between a warped source and the identity: the identity wins.
    assert automask.tolist() == [[[[True, False, False]]]]

    loss, automask = min_reprojection(reprojection, None)
    torch.testing.assert_close(loss, torch.tensor([[[[0.2, 0.1, 0.3]]]]))
    assert automask.all()


def test_smoothness_zero_for_constant_disparity():
    image = random_images(BATCH, 3, HEIGHT, WIDTH)
    assert edge_aware_smoothness(torch.full((BATCH, 1, HEIGHT, WIDTH), 0.3), image).item() == pytest.approx(0, abs=1e-7)


def test_smoothness_of_a_ramp_is_its_normalised_slope_and_relaxed_at_edges():
    slope, offset = 0.01, 0.2
    ramp = (offset + slope * torch.arange(WIDTH, dtype=torch.float32)).expand(1, 1, HEIGHT, WIDTH)
    mean = offset + slope * (WIDTH - 1) / 2
    flat_image = torch.full((1, 3, HEIGHT, WIDTH), 0.5)
    assert edge_aware_smoothness(ramp, flat_image).item() == pytest.approx(slope / mean, rel=1e-4)
    # Scale invariance: doubling the disparity changes nothing after mean normalisation.
    assert edge_aware_smoothness(2 * ramp, flat_image).item() == pytest.approx(slope / mean, rel=1e-4)

    stripes = (torch.arange(WIDTH) % 2).float().expand(1, 3, HEIGHT, WIDTH)  # an edge between every column
    assert edge_aware_smoothness(ramp, stripes).item() == pytest.approx(math.exp(-1) * slope / mean, rel=1e-4)


def test_static_camera_is_masked_out():
    frame = random_images(BATCH, 3, HEIGHT, WIDTH)
    frames = frame[:, None].expand(BATCH, 3, 3, HEIGHT, WIDTH)
    generator = torch.Generator().manual_seed(2)
    small_motion = [
        pose_vector_to_transform(0.01 * torch.randn(BATCH, 3, generator=generator),
                                 0.1 * torch.randn(BATCH, 3, generator=generator))
        for _ in range(2)
    ]
    identity = [torch.eye(4).expand(BATCH, 4, 4)] * 2
    for transforms in (small_motion, identity):
        output = self_supervised_loss(constant_disparities(0.2), frames, transforms, intrinsics())
        assert output.automask.shape == (BATCH, 1, HEIGHT, WIDTH)
        assert not output.automask.any()
        assert output.photometric.item() < 1e-5


def test_true_depth_and_motion_beat_wrong_depth():
    config = SelfSupervisedLossConfig()
    plane_depth = 8.0
    frames, transforms = sideways_triplet(plane_depth, step=0.4)
    right = self_supervised_loss(constant_disparities(disparity_of_depth(plane_depth, config), 1), frames, transforms,
                                 intrinsics(1), config)
    wrong = self_supervised_loss(constant_disparities(disparity_of_depth(3.0, config), 1), frames, transforms,
                                 intrinsics(1), config)
    swapped = self_supervised_loss(constant_disparities(disparity_of_depth(plane_depth, config), 1), frames,
                                   transforms[::-1], intrinsics(1), config)
    # Constant disparity: smoothness is 0, the photometric term decides.
    assert right.smoothness.item() == pytest.approx(0, abs=1e-7)
    assert right.photometric.item() < 1e-3
    assert wrong.photometric.item() > 0.02 and swapped.photometric.item() > 0.02
    # The motion is real, so warped sources explain (nearly) every pixel better than static ones.
    assert right.automask.float().mean() > 0.95
    # The warped source t+1 matches the target where it is visible (the left ~2 px are not).
    warped_next = right.warped[0, 1]
    assert (warped_next - frames[0, 1])[:, :, 4:].abs().max() < 0.01


def test_output_is_consistent_and_gradients_are_finite():
    frames = random_images(BATCH, 3, 3, HEIGHT, WIDTH)
    disparities = [(0.05 + 0.5 * random_images(BATCH, 1, HEIGHT >> s, WIDTH >> s, seed=s)).requires_grad_()
                   for s in range(NUM_SCALES)]
    # Zero rotation exercises the small-angle branch of the gradient.
    axis_angle = torch.zeros(BATCH, 3, requires_grad=True)
    translation = torch.tensor([[0.05, 0.0, 0.1], [-0.02, 0.01, 0.3]], requires_grad=True)
    transforms = [pose_vector_to_transform(axis_angle, translation, invert=True),
                  pose_vector_to_transform(axis_angle, translation)]
    output = self_supervised_loss(disparities, frames, transforms, intrinsics())
    output.total.backward()

    torch.testing.assert_close(output.total, output.photometric + output.smoothness)
    assert output.total.item() == pytest.approx(sum(output.per_scale) / NUM_SCALES, rel=1e-5)
    assert output.warped.shape == (BATCH, 2, 3, HEIGHT, WIDTH) and not output.warped.requires_grad
    assert output.automask.dtype == torch.bool
    for tensor in (*disparities, axis_angle, translation):
        assert torch.isfinite(tensor.grad).all()
        assert tensor.grad.abs().sum() > 0


def test_coarse_scales_warp_with_bilinearly_upsampled_disparity():
    frames = random_images(BATCH, 3, 3, HEIGHT, WIDTH)
    transforms = [pose_vector_to_transform(torch.full((BATCH, 3), 0.01), torch.full((BATCH, 3), sign * 0.2))
                  for sign in (-1, 1)]
    coarse = 0.05 + 0.5 * random_images(BATCH, 1, HEIGHT // 2, WIDTH // 2, seed=3)
    upsampled = torch.nn.functional.interpolate(coarse, size=(HEIGHT, WIDTH), mode="bilinear", align_corners=False)
    config = SelfSupervisedLossConfig(smoothness_weight=0.0, automask=False)
    two_scales = self_supervised_loss([upsampled, coarse], frames, transforms, intrinsics(), config)
    full_resolution = self_supervised_loss([upsampled], frames, transforms, intrinsics(), config)
    assert two_scales.per_scale[1] == pytest.approx(full_resolution.per_scale[0], rel=1e-6)


def test_automask_off_lets_every_pixel_train():
    frame = random_images(BATCH, 3, HEIGHT, WIDTH)
    frames = frame[:, None].expand(BATCH, 3, 3, HEIGHT, WIDTH)
    identity = [torch.eye(4).expand(BATCH, 4, 4)] * 2
    output = self_supervised_loss(constant_disparities(0.2), frames, identity, intrinsics(),
                                  SelfSupervisedLossConfig(automask=False))
    assert output.automask.all()


def test_bad_inputs_are_rejected_with_the_expected_shape():
    frames = random_images(BATCH, 3, 3, HEIGHT, WIDTH)
    identity = [torch.eye(4).expand(BATCH, 4, 4)] * 2
    with pytest.raises(ValueError, match=r"\(B, 3, 3, H, W\)"):
        self_supervised_loss(constant_disparities(0.2), frames[:, :2], identity, intrinsics())
    with pytest.raises(ValueError, match=r"disparities\[1\] must have shape \(2, 1, 32, 48\)"):
        self_supervised_loss([constant_disparities(0.2)[0]] * 2, frames, identity, intrinsics())
    with pytest.raises(ValueError, match="2 transforms"):
        self_supervised_loss(constant_disparities(0.2), frames, identity[:1], intrinsics())
    with pytest.raises(ValueError, match=r"intrinsics must have shape \(2, 3, 3\)"):
        self_supervised_loss(constant_disparities(0.2), frames, identity, intrinsics()[0])
    with pytest.raises(ValueError, match="must have the shape of"):
        photometric_error(frames[:, 0], frames[:, 1, :, :-1])
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        edge_aware_smoothness(frames[:, 0], frames[:, 1])
    with pytest.raises(UserError, match="min_depth"):
        SelfSupervisedLossConfig(min_depth=0.0)
