"""The cheaper training step computes what the plain one did.

- The 4-scale loss (target statistics shared across scales, hand-written SSIM backward,
  separable box filter, elementwise per-pixel minimum, pixel rays built once) against a
  plain autograd transcription of the Monodepth2 recipe written here: the same loss,
  auto-mask and gradients, in float64 to 1e-10 and float32 to float precision.
"""


import pytest
import torch
import torch.nn.functional as F

from dna_depth_core.data.synthetic import SyntheticSceneConfig, SyntheticTripletDataset
from dna_depth_core.geometry import disp_to_depth, pose_vector_to_transform, project, transform_points
from dna_depth_core.losses import (
    SSIM_C1, SSIM_C2, SelfSupervisedLossConfig, edge_aware_smoothness, self_supervised_loss,
)
from dna_depth_core.losses.photometric import TIE_OFFSET

HEIGHT, WIDTH = 64, 96


def _plain_photometric_error(prediction, target, ssim_weight):
    """SSIM + L1 as the recipe writes it: reflection pad, 3x3 avg_pool, autograd all through."""
    def pool(images):
        return F.avg_pool2d(F.pad(images, (1, 1, 1, 1), mode="reflect"), 3, stride=1)

    mu_x, mu_y = pool(prediction), pool(target)
    var_x = pool(prediction * prediction) - mu_x * mu_x
    var_y = pool(target * target) - mu_y * mu_y
    cov_xy = pool(prediction * target) - mu_x * mu_y
    ssim = ((2 * mu_x * mu_y + SSIM_C1) * (2 * cov_xy + SSIM_C2)
            / ((mu_x * mu_x + mu_y * mu_y + SSIM_C1) * (var_x + var_y + SSIM_C2)))
    dissimilarity = ((1 - ssim) / 2).clamp(0, 1).mean(dim=1, keepdim=True)
    return ssim_weight * dissimilarity + (1 - ssim_weight) * (prediction - target).abs().mean(dim=1, keepdim=True)


def _plain_warp(source, depth, target_to_source, intrinsics):
    batch, _, height, width = source.shape
    v, u = torch.meshgrid(torch.arange(height, dtype=depth.dtype), torch.arange(width, dtype=depth.dtype),
                          indexing="ij")
    pixels = torch.stack([u.flatten(), v.flatten(), torch.ones(height * width, dtype=depth.dtype)])
    points = (torch.linalg.inv(intrinsics) @ pixels).view(batch, 3, height, width) * depth
    coordinates = project(transform_points(points, target_to_source), intrinsics)
    grid = coordinates * coordinates.new_tensor([2 / (width - 1), 2 / (height - 1)]) - 1
    return F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _plain_loss(disparities, frames, target_to_source, intrinsics, config):
    """The recipe, step by step: per scale upsample, warp, error, argmin over [identity, warped]."""
    batch, _, _, height, width = frames.shape
    target = frames[:, 1]
    sources = [frames[:, 0], frames[:, 2]]
    # Both sources as one batch of 2B, the identity errors viewed (B, 2, H, W) from it: the
    # layout the tie-breaking offsets are drawn in.
    identity = _plain_photometric_error(torch.cat(sources), target.repeat(2, 1, 1, 1), config.ssim_weight)
    identity = identity.view(2, batch, height, width).transpose(0, 1)
    photometric, smoothness = [], []
    for scale, disparity in enumerate(disparities):
        full = disparity if scale == 0 else F.interpolate(disparity, size=(height, width), mode="bilinear",
                                                          align_corners=False)
        depth = disp_to_depth(full, config.min_depth, config.max_depth)
        reprojection = torch.cat([
            _plain_photometric_error(_plain_warp(source, depth, transform, intrinsics), target, config.ssim_weight)
            for source, transform in zip(sources, target_to_source)], dim=1)
        candidates = torch.cat([identity, reprojection], dim=1)
        offsets = torch.cat([-TIE_OFFSET * torch.rand_like(identity), torch.zeros_like(reprojection)], dim=1)
        winner = (candidates.detach() + offsets).argmin(dim=1, keepdim=True)
        photometric.append(candidates.gather(1, winner).mean())
        if scale == 0:
            automask = winner >= 2
        scaled = target if scale == 0 else F.interpolate(target, size=disparity.shape[-2:], mode="area")
        smoothness.append(config.smoothness_weight / 2**scale * edge_aware_smoothness(disparity, scaled))
    return torch.stack(photometric).mean(), torch.stack(smoothness).mean(), automask


def _loss_inputs(dtype):
    dataset = SyntheticTripletDataset(SyntheticSceneConfig(height=HEIGHT, width=WIDTH, frames_per_sequence=4), 1, 0)
    frames = torch.stack([dataset[index]["frames"] for index in range(2)]).to(dtype)
    intrinsics = torch.stack([dataset[index]["intrinsics"] for index in range(2)]).to(dtype)
    generator = torch.Generator().manual_seed(0)
    disparities = [(0.05 + 0.3 * torch.rand(2, 1, HEIGHT >> s, WIDTH >> s, generator=generator)).to(dtype)
                   for s in range(4)]
    axis_angle = (0.02 * torch.randn(4, 3, generator=generator)).to(dtype)
    translation = (0.3 * torch.randn(4, 3, generator=generator)).to(dtype)
    return frames, intrinsics, disparities, axis_angle, translation


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-10), (torch.float32, 1e-5)],
                         ids=["float64", "float32"])
def test_loss_and_gradients_equal_a_plain_transcription_of_the_recipe(dtype, tolerance):
    frames, intrinsics, disparities, axis_angle, translation = _loss_inputs(dtype)
    config = SelfSupervisedLossConfig()
    results = []
    for loss in ("optimised", "plain"):
        leaves = [d.clone().requires_grad_() for d in disparities] + [axis_angle.clone().requires_grad_(),
                                                                      translation.clone().requires_grad_()]
        transforms = [pose_vector_to_transform(leaves[4][:2], leaves[5][:2], invert=True),
                      pose_vector_to_transform(leaves[4][2:], leaves[5][2:])]
        torch.manual_seed(3)  # the same tie-breaking offsets for both
        if loss == "optimised":
            output = self_supervised_loss(leaves[:4], frames, transforms, intrinsics, config)
            photometric, smoothness, automask = output.photometric, output.smoothness, output.automask
        else:
            photometric, smoothness, automask = _plain_loss(leaves[:4], frames, transforms, intrinsics, config)
        (photometric + smoothness).backward()
        results.append((photometric.detach(), smoothness.detach(), automask, [leaf.grad for leaf in leaves]))
    (photometric, smoothness, automask, gradients), (plain_photometric, plain_smoothness, plain_automask,
                                                     plain_gradients) = results
    torch.testing.assert_close(photometric, plain_photometric, rtol=tolerance, atol=0)
    torch.testing.assert_close(smoothness, plain_smoothness, rtol=tolerance, atol=0)
    assert 0.05 < automask.float().mean() < 0.95  # both outcomes of the minimum occur
    if dtype == torch.float64:
        assert torch.equal(automask, plain_automask)
        for gradient, plain in zip(gradients, plain_gradients):
            assert plain.abs().max() > 0
            torch.testing.assert_close(gradient, plain, rtol=tolerance, atol=tolerance * plain.abs().max())
    else:
        # float32 rounding may flip a near-tie of the minimum at a few pixels, and the pose
        # gradients sum millions of cancelling terms: compare the disparity gradients,
        # which are local, pixel by pixel.
        assert (automask != plain_automask).float().mean() < 1e-3
        for gradient, plain in zip(gradients[:4], plain_gradients[:4]):
            torch.testing.assert_close(gradient, plain, rtol=0, atol=1e-4 * plain.abs().max())
