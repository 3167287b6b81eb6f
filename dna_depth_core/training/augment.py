"""Training augmentation of the Monodepth2 recipe, batched and per sample.

Two augmentations, each drawn independently per sample with its own probability:

* Horizontal flip of every frame of a sample (and of its ground-truth depth), with the
  principal point mirrored so the intrinsics still describe the flipped images. The loss
  sees flipped frames: a flipped sequence is just another valid sequence.
* Colour jitter (brightness, contrast, saturation, hue), with one set of factors per
  sample shared by its three frames, applied only to the copies fed to the depth and
  pose networks. The photometric loss compares the un-jittered frames, so the networks
  learn to ignore colour changes instead of the loss having to explain them.

All randomness comes from an explicit :class:`torch.Generator` so a run, and a resumed
run, draws the same augmentations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import require


@dataclass
class AugmentationConfig:
    """Per-sample augmentation of training batches (validation is never augmented).

    Attributes:
        flip_probability: chance that a sample (all its frames) is mirrored left-right.
        jitter_probability: chance that a sample's network inputs are colour-jittered.
        brightness: range of the brightness factor (image times factor).
        contrast: range of the contrast factor (blend with the image's mean grey level).
        saturation: range of the saturation factor (blend with the grey image).
        hue: maximum hue shift as a fraction of the colour wheel (0.1 = 36 degrees),
            drawn uniformly from ``[-hue, hue]``.
    """

    flip_probability: float = 0.5
    jitter_probability: float = 0.5
    brightness: tuple[float, float] = (0.8, 1.2)
    contrast: tuple[float, float] = (0.8, 1.2)
    saturation: tuple[float, float] = (0.8, 1.2)
    hue: float = 0.1

    def __post_init__(self) -> None:
        for key in ("flip_probability", "jitter_probability"):
            value = getattr(self, key)
            require(0.0 <= value <= 1.0, f"augmentation.{key} must be in [0, 1], got {value}")
        for key in ("brightness", "contrast", "saturation"):
            low, high = getattr(self, key)
            require(0.0 <= low <= high,
                    f"augmentation.{key} must be a range [low, high] with 0 <= low <= high, got {[low, high]}")
        require(0.0 <= self.hue <= 0.5, f"augmentation.hue must be in [0, 0.5], got {self.hue}")


@dataclass
class ColorJitterParams:
    """One set of colour-jitter factors per sample; identity values for samples left alone.

    Attributes:
        brightness: ``(B,)`` multiplicative factors (1 = unchanged).
        contrast: ``(B,)`` factors (1 = unchanged).
        saturation: ``(B,)`` factors (1 = unchanged).
        hue: ``(B,)`` hue shifts, fraction of the colour wheel (0 = unchanged).
    """

    brightness: torch.Tensor
    contrast: torch.Tensor
    saturation: torch.Tensor
    hue: torch.Tensor


@dataclass
class AugmentedBatch:
    """A training batch after augmentation.

    Attributes:
        frames: ``(B, 3, 3, H, W)`` [prev, target, next] RGB in [0, 1], flipped where drawn,
            never jittered: what the photometric loss compares.
        network_frames: same shape, flipped and colour-jittered: what the networks see.
        intrinsics: ``(B, 3, 3)`` pixels, principal point mirrored for flipped samples.
        flipped: ``(B,)`` bool, which samples were mirrored.
        jitter: the colour-jitter factors drawn for the batch.
    """

    frames: torch.Tensor
    network_frames: torch.Tensor
    intrinsics: torch.Tensor
    flipped: torch.Tensor
    jitter: ColorJitterParams


def _uniform(batch: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(batch, generator=generator)


def sample_color_jitter(batch: int, config: AugmentationConfig, generator: torch.Generator) -> ColorJitterParams:
    """Draw colour-jitter factors for ``batch`` samples (CPU tensors, float32).

    Each sample is jittered with probability ``config.jitter_probability``; the others get
    identity factors. The same number of random values is drawn whatever the outcome, so
    the generator advances identically from batch to batch.
    """
    apply = torch.rand(batch, generator=generator) < config.jitter_probability
    brightness = _uniform(batch, *config.brightness, generator)
    contrast = _uniform(batch, *config.contrast, generator)
    saturation = _uniform(batch, *config.saturation, generator)
    hue = _uniform(batch, -config.hue, config.hue, generator)
    one, zero = torch.ones(batch), torch.zeros(batch)
    return ColorJitterParams(
        brightness=torch.where(apply, brightness, one),
        contrast=torch.where(apply, contrast, one),
        saturation=torch.where(apply, saturation, one),
        hue=torch.where(apply, hue, zero),
    )


def _grey(images: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma ``(..., 1, H, W)`` of RGB ``(..., 3, H, W)``."""
    red, green, blue = images.unbind(dim=-3)
    return (0.299 * red + 0.587 * green + 0.114 * blue).unsqueeze(-3)


def _shift_hue(images: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate hue in HSV space by ``shift`` (fraction of the wheel, broadcast over ``(..., 1, 1)``)."""
    red, green, blue = images.unbind(dim=-3)
    value, argmax = images.max(dim=-3)
    chroma = value - images.min(dim=-3).values
    # Grey pixels (chroma 0) have numerators of 0 too, so a tiny floor keeps them at hue 0.
    safe_chroma = chroma.clamp_min(1e-12)
    # Hue in sixths of the wheel, piecewise by which channel is largest.
    hue_red = ((green - blue) / safe_chroma) % 6.0
    hue_green = (blue - red) / safe_chroma + 2.0
    hue_blue = (red - green) / safe_chroma + 4.0
    hue = torch.where(argmax == 0, hue_red, torch.where(argmax == 1, hue_green, hue_blue))
    hue = (hue / 6.0 + shift) % 1.0
    saturation = chroma / value.clamp_min(1e-12)
    # HSV -> RGB with the closed form f(n) = V - V S max(0, min(k, 4 - k, 1)), k = (n + 6 h) mod 6.
    channels = []
    for n in (5.0, 3.0, 1.0):
        k = (n + 6.0 * hue) % 6.0
        channels.append(value - value * saturation * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0))
    return torch.stack(channels, dim=-3)


def apply_color_jitter(images: torch.Tensor, params: ColorJitterParams) -> torch.Tensor:
    """Colour-jitter each sample with its own factors, in the order brightness, contrast,
    saturation, hue (clamping to [0, 1] after each step, as image libraries do).

    Args:
        images: ``(B, 3, H, W)`` or ``(B, N, 3, H, W)`` RGB in [0, 1]; all ``N`` frames of
            a sample get the sample's factors.
        params: factors for the ``B`` samples.

    Returns:
        Jittered images, same shape, dtype and device.
    """
    if images.ndim not in (4, 5) or images.shape[-3] != 3:
        raise ValueError(f"images must have shape (B, 3, H, W) or (B, N, 3, H, W), got {tuple(images.shape)}")
    if params.brightness.shape != (images.shape[0],):
        raise ValueError(
            f"jitter parameters are for {params.brightness.shape[0]} samples, images have {images.shape[0]}"
        )
    view = (-1,) + (1,) * (images.ndim - 1)

    def per_sample(values: torch.Tensor) -> torch.Tensor:
        return values.to(images.device, images.dtype).view(view)

    images = (images * per_sample(params.brightness)).clamp(0.0, 1.0)
    mean_grey = _grey(images).mean(dim=(-3, -2, -1), keepdim=True)
    contrast = per_sample(params.contrast)
    images = (contrast * images + (1.0 - contrast) * mean_grey).clamp(0.0, 1.0)
    saturation = per_sample(params.saturation)
    images = (saturation * images + (1.0 - saturation) * _grey(images)).clamp(0.0, 1.0)
    return _shift_hue(images, per_sample(params.hue).squeeze(-3)).clamp(0.0, 1.0)


def flip_horizontally(
    images: torch.Tensor, intrinsics: torch.Tensor, flip: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror the selected samples left-right and their intrinsics with them.

    With pixel centres at integer columns (see :mod:`dna_depth_core.geometry.camera`),
    column ``u`` moves to ``W - 1 - u``, so the principal point becomes ``cx' = W - 1 - cx``
    (focal lengths unchanged; a non-zero skew changes sign).

    Args:
        images: ``(B, ..., H, W)`` any per-sample image stack (frames, depth maps).
        intrinsics: ``(B, 3, 3)`` pixels for width ``W``.
        flip: ``(B,)`` bool, which samples to mirror.

    Returns:
        ``images`` and ``intrinsics`` with the selected samples mirrored.
    """
    batch, width = images.shape[0], images.shape[-1]
    if intrinsics.shape != (batch, 3, 3) or flip.shape != (batch,):
        raise ValueError(
            f"need intrinsics of shape ({batch}, 3, 3) and flip of shape ({batch},) for {batch} samples, "
            f"got {tuple(intrinsics.shape)} and {tuple(flip.shape)}"
        )
    flip = flip.to(images.device)
    selected = flip.view((-1,) + (1,) * (images.ndim - 1))
    images = torch.where(selected, images.flip(-1), images)
    mirrored = intrinsics.clone()
    mirrored[:, 0, 2] = (width - 1) - intrinsics[:, 0, 2]
    mirrored[:, 0, 1] = -intrinsics[:, 0, 1]
    intrinsics = torch.where(flip.to(intrinsics.device).view(-1, 1, 1), mirrored, intrinsics)
    return images, intrinsics


def augment_batch(
    frames: torch.Tensor, intrinsics: torch.Tensor, config: AugmentationConfig, generator: torch.Generator
) -> AugmentedBatch:
    """Draw and apply flips and colour jitter for one training batch.

    Args:
        frames: ``(B, 3, 3, H, W)`` [prev, target, next] RGB in [0, 1].
        intrinsics: ``(B, 3, 3)`` pixels.
        config: probabilities and ranges.
        generator: CPU generator all random draws come from.

    Returns:
        :class:`AugmentedBatch` on the device of ``frames``; ground-truth depth (if any) is
        flipped with :func:`flip_horizontally` and ``AugmentedBatch.flipped``.
    """
    if frames.ndim != 5 or frames.shape[1:3] != (3, 3):
        raise ValueError(f"frames must have shape (B, 3, 3, H, W) [prev, target, next], got {tuple(frames.shape)}")
    batch = frames.shape[0]
    flipped = torch.rand(batch, generator=generator) < config.flip_probability
    jitter = sample_color_jitter(batch, config, generator)
    frames, intrinsics = flip_horizontally(frames, intrinsics, flipped)
    return AugmentedBatch(
        frames=frames,
        network_frames=apply_color_jitter(frames, jitter),
        intrinsics=intrinsics,
        flipped=flipped,
        jitter=jitter,
    )
