"""The cheaper training step computes what the plain one did.

- The 4-scale loss (target statistics shared across scales, hand-written SSIM backward,
  separable box filter, elementwise per-pixel minimum, pixel rays built once) against a
  plain autograd transcription of the Monodepth2 recipe written here: the same loss,
  auto-mask and gradients, in float64 to 1e-10 and float32 to float precision.
- The trainer's step with activation checkpointing on and off, and with channels-last
  off: the same loss, gradients and batch-norm statistics on the same batch and seed.
- The 1x1 convolutions the trainer routes to oneDNN on the CPU against PyTorch's generic
  kernel that one thread would run them on: the same disparities and gradients.
- The allocator settings of ``dna-depth``, in a fresh process.
"""

import copy
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import default_collate

from dna_depth_core.data.synthetic import SyntheticSceneConfig, SyntheticTripletDataset
from dna_depth_core.geometry import disp_to_depth, pose_vector_to_transform, project, transform_points
from dna_depth_core.losses import (
    SSIM_C1, SSIM_C2, SelfSupervisedLossConfig, edge_aware_smoothness, self_supervised_loss,
)
from dna_depth_core.losses.photometric import TIE_OFFSET
from dna_depth_core.networks import create_depth_net
from dna_depth_core.networks.cpu_kernels import prefer_onednn_for_pointwise_convolutions
from dna_depth_core.training import Trainer, load_train_config

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


@pytest.fixture(scope="module")
def batch():
    dataset = SyntheticTripletDataset(SyntheticSceneConfig(height=HEIGHT, width=WIDTH, frames_per_sequence=4), 1, 0)
    return dataset, default_collate([dataset[index] for index in range(2)])


def _step(tmp_path, batch, *overrides):
    """One trainer step: its loss, the gradients and the networks' buffers (batch-norm statistics) after it."""
    dataset, samples = batch
    config = load_train_config(None, [
        f"data.height={HEIGHT}", f"data.width={WIDTH}", "data.batch_size=2", "data.num_workers=0",
        "runtime.device=cpu", "runtime.progress=false", "runtime.tensorboard=false",
        f"runtime.output_dir={tmp_path}", *overrides,
    ])
    trainer = Trainer(config, dataset)
    output, _ = trainer._train_step(samples)
    networks = {"depth": trainer.depth_net, "pose": trainer.pose_net}
    gradients = {f"{name}.{key}": parameter.grad for name, network in networks.items()
                 for key, parameter in network.named_parameters()}
    buffers = {f"{name}.{key}": buffer.clone() for name, network in networks.items()
               for key, buffer in network.named_buffers()}
    return float(output.total.detach()), gradients, buffers


def test_activation_checkpointing_gives_the_same_step(tmp_path, batch):
    loss, gradients, buffers = _step(tmp_path / "plain", batch)
    checkpointed_loss, checkpointed_gradients, checkpointed_buffers = _step(
        tmp_path / "checkpointed", batch, "optim.activation_checkpointing=true")
    assert checkpointed_loss == pytest.approx(loss, rel=1e-6)
    # The recomputation replays the same operations and random draws (stochastic depth,
    # dropout): the same gradients, and batch-norm statistics updated once per step.
    for key, gradient in gradients.items():
        torch.testing.assert_close(checkpointed_gradients[key], gradient, rtol=1e-5, atol=1e-6 * gradient.abs().max())
    for key, buffer in buffers.items():
        torch.testing.assert_close(checkpointed_buffers[key], buffer, rtol=1e-6, atol=1e-7)


def test_channels_last_gives_the_same_step(tmp_path, batch):
    loss, gradients, buffers = _step(tmp_path / "channels_last", batch)
    contiguous_loss, contiguous_gradients, contiguous_buffers = _step(
        tmp_path / "contiguous", batch, "runtime.channels_last=false")
    assert contiguous_loss == pytest.approx(loss, rel=1e-5)
    # Other convolution kernels sum in another order: float32 rounding of sums over many
    # pixels, small next to each network's largest gradient.
    for network in ("depth", "pose"):
        largest = max(gradient.abs().max() for key, gradient in gradients.items() if key.startswith(network))
        for key, gradient in gradients.items():
            if key.startswith(network):
                torch.testing.assert_close(contiguous_gradients[key], gradient, rtol=0, atol=2e-3 * largest)
    for key, buffer in buffers.items():
        torch.testing.assert_close(contiguous_buffers[key], buffer, rtol=1e-4, atol=1e-4)


def _forward_backward_on_one_thread(network, images):
    """Disparities, parameter gradients and whether PyTorch's generic convolution kernel ran."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the thread count at which PyTorch picks the generic kernel for 1x1
    try:
        torch.manual_seed(1)  # the same stochastic depth and dropout draws
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
            disparities = network(images, multiscale=True)
            sum(disparity.mean() for disparity in disparities).backward()
    finally:
        torch.set_num_threads(threads)
    generic = any(event.key == "aten::thnn_conv2d" for event in profile.key_averages())
    return [d.detach() for d in disparities], {k: p.grad for k, p in network.named_parameters()}, generic


def test_pointwise_convolutions_through_onednn_compute_the_same(tmp_path, batch):
    torch.manual_seed(0)
    plain = create_depth_net("dna_depth_b0").to(memory_format=torch.channels_last)
    routed = copy.deepcopy(plain)
    assert prefer_onednn_for_pointwise_convolutions(routed) > 50  # encoder and decoder
    images = batch[1]["frames"][:, 1].contiguous(memory_format=torch.channels_last)
    disparities, gradients, plain_generic = _forward_backward_on_one_thread(plain, images)
    routed_disparities, routed_gradients, routed_generic = _forward_backward_on_one_thread(routed, images)
    assert plain_generic and not routed_generic
    for disparity, routed_disparity in zip(disparities, routed_disparities):
        torch.testing.assert_close(routed_disparity, disparity, rtol=1e-5, atol=1e-6)
    # oneDNN sums a bias gradient over the batch's pixels in another order: up to 1.5e-4 of
    # it apart at the full-resolution head (as its 3x3 and depthwise ones are from float64).
    largest = max(gradient.abs().max() for gradient in gradients.values())
    for key, gradient in gradients.items():
        torch.testing.assert_close(routed_gradients[key], gradient, rtol=0,
                                   atol=5e-4 * gradient.abs().max() + 1e-7 * largest)
    assert set(routed.state_dict()) == set(plain.state_dict())

    trainer = Trainer(load_train_config(None, [
        f"data.height={HEIGHT}", f"data.width={WIDTH}", "data.batch_size=2", "data.num_workers=0", "runtime.device=cpu",
        "runtime.progress=false", "runtime.tensorboard=false", f"runtime.output_dir={tmp_path}"]), batch[0])
    assert prefer_onednn_for_pointwise_convolutions(trainer.depth_net) == 0  # the trainer routed them all


def test_allocator_settings_serve_large_blocks_from_the_heap():
    # What dna-depth applies to its process. glibc counts the blocks it serves by mmap
    # (mallinfo2().hblks): a 64 MB block is one with its defaults, none after the settings.
    script = (
        "import ctypes, sys\n"
        "from dna_depth_core.allocator import keep_freed_memory_mapped\n"
        "class MallocInfo(ctypes.Structure):\n"
        "    _fields_ = [(name, ctypes.c_size_t) for name in ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd',\n"
        "                'usmblks', 'fsmblks', 'uordblks', 'fordblks', 'keepcost')]\n"
        "libc = ctypes.CDLL(None)\n"
        "libc.malloc.restype, libc.mallinfo2.restype = ctypes.c_void_p, MallocInfo\n"
        "if sys.argv[1] == 'tuned' and not keep_freed_memory_mapped():\n"
        "    sys.exit('not applied')\n"
        "before = libc.mallinfo2().hblks\n"
        "block = libc.malloc(64 << 20)\n"
        "print(libc.mallinfo2().hblks - before)\n"
    )
    mapped = {mode: subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True,
                                   check=True).stdout.strip() for mode in ("default", "tuned")}
    assert mapped == {"default": "1", "tuned": "0"}
