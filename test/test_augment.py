"""Training augmentation: flips move the principal point, colour jitter touches network inputs only, per sample."""

import torch

from dna_depth_core.training.augment import (
    AugmentationConfig, ColorJitterParams, apply_color_jitter, augment_batch, flip_horizontally, sample_color_jitter,
)

HEIGHT, WIDTH = 8, 12


def _intrinsics(batch: int) -> torch.Tensor:
    return torch.tensor([[10.0, 0.0, 4.3], [0.0, 11.0, 3.6], [0.0, 0.0, 1.0]]).expand(batch, 3, 3).clone()


def _params(brightness=1.0, contrast=1.0, saturation=1.0, hue=0.0, batch=1) -> ColorJitterParams:
    def full(value):
        return torch.full((batch,), float(value))
    return ColorJitterParams(full(brightness), full(contrast), full(saturation), full(hue))


def test_flip_mirrors_images_and_projection_of_selected_samples_only():
    frames = torch.rand(2, 3, 3, HEIGHT, WIDTH)
    intrinsics = _intrinsics(2)
    flipped, new_intrinsics = flip_horizontally(frames, intrinsics, torch.tensor([True, False]))
    assert torch.equal(flipped[0], frames[0].flip(-1))
    assert torch.equal(flipped[1], frames[1])
    assert torch.equal(new_intrinsics[1], intrinsics[1])
    # A 3-D point projects to column u; its mirror image (x -> -x) through the flipped
    # intrinsics must land on the mirrored column W - 1 - u, at the same row.
    point = torch.tensor([0.7, -0.4, 3.0])
    u, v = (intrinsics[0] @ point / point[2])[:2]
    mirrored = torch.tensor([-0.7, -0.4, 3.0])
    u_flipped, v_flipped = (new_intrinsics[0] @ mirrored / mirrored[2])[:2]
    assert torch.isclose(u_flipped, WIDTH - 1 - u)
    assert torch.isclose(v_flipped, v)


def test_jitter_changes_network_inputs_but_never_the_loss_frames():
    frames = torch.rand(4, 3, 3, HEIGHT, WIDTH)
    config = AugmentationConfig(flip_probability=0.0, jitter_probability=1.0)
    batch = augment_batch(frames, _intrinsics(4), config, torch.Generator().manual_seed(0))
    assert torch.equal(batch.frames, frames)
    assert torch.equal(batch.intrinsics, _intrinsics(4))
    assert not batch.flipped.any()
    for sample in range(4):
        assert not torch.allclose(batch.network_frames[sample], frames[sample], atol=1e-3)
    assert batch.network_frames.min() >= 0 and batch.network_frames.max() <= 1


def test_flip_applies_to_loss_frames_and_network_frames_alike():
    frames = torch.rand(2, 3, 3, HEIGHT, WIDTH)
    config = AugmentationConfig(flip_probability=1.0, jitter_probability=0.0)
    batch = augment_batch(frames, _intrinsics(2), config, torch.Generator().manual_seed(0))
    assert batch.flipped.all()
    assert torch.equal(batch.frames, frames.flip(-1))
    assert torch.allclose(batch.network_frames, batch.frames, atol=1e-6)
    assert torch.allclose(batch.intrinsics[:, 0, 2], (WIDTH - 1) - _intrinsics(2)[:, 0, 2])


def test_one_set_of_jitter_factors_per_sample_shared_by_its_frames():
    image = torch.rand(3, HEIGHT, WIDTH)
    # Every sample holds the same image three times: with per-sample factors, the three
    # jittered frames of a sample stay identical while samples differ from each other.
    frames = image.expand(6, 3, 3, HEIGHT, WIDTH).clone()
    params = sample_color_jitter(6, AugmentationConfig(jitter_probability=1.0), torch.Generator().manual_seed(1))
    jittered = apply_color_jitter(frames, params)
    for sample in range(6):
        assert torch.equal(jittered[sample, 0], jittered[sample, 1])
        assert torch.equal(jittered[sample, 1], jittered[sample, 2])
    assert len(set(params.brightness.tolist())) == 6
    for sample in range(1, 6):
        assert not torch.allclose(jittered[0], jittered[sample], atol=1e-3)


def test_jitter_probability_and_factor_ranges():
    config = AugmentationConfig(jitter_probability=0.5)
    params = sample_color_jitter(2000, config, torch.Generator().manual_seed(2))
    untouched = (params.brightness == 1) & (params.contrast == 1) & (params.saturation == 1) & (params.hue == 0)
    assert 0.45 < untouched.float().mean() < 0.55
    jittered = ~untouched
    for values in (params.brightness, params.contrast, params.saturation):
        assert values[jittered].min() >= 0.8 and values[jittered].max() <= 1.2
    assert params.hue.abs().max() <= 0.1
    again = sample_color_jitter(2000, config, torch.Generator().manual_seed(2))
    assert torch.equal(again.hue, params.hue)


def test_colour_jitter_known_answers():
    image = torch.rand(1, 3, HEIGHT, WIDTH)
    assert torch.allclose(apply_color_jitter(image, _params()), image, atol=1e-5)
    assert torch.allclose(apply_color_jitter(image, _params(brightness=0.5)), image * 0.5, atol=1e-5)
    grey = apply_color_jitter(image, _params(saturation=0.0))
    assert torch.allclose(grey[:, 0], grey[:, 1], atol=1e-5) and torch.allclose(grey[:, 1], grey[:, 2], atol=1e-5)
    flat = apply_color_jitter(image, _params(contrast=0.0))
    assert torch.allclose(flat, flat.mean(), atol=1e-5)
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    assert torch.allclose(apply_color_jitter(red, _params(hue=1 / 3)).flatten(), torch.tensor([0.0, 1.0, 0.0]),
                          atol=1e-5)
    assert torch.allclose(apply_color_jitter(red, _params(hue=-1 / 3)).flatten(), torch.tensor([0.0, 0.0, 1.0]),
                          atol=1e-5)
