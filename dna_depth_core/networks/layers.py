"""Building blocks of the DNA decoder.

All blocks take and return feature maps shaped ``(B, C, H, W)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .reflection_conv import reflection_padded_conv3x3


class SepConv(nn.Module):
    """Depthwise-separable 3x3 convolution with TensorFlow "same" padding.

    A depthwise 3x3 convolution (no bias) followed by a pointwise 1x1 convolution (with
    bias); no normalisation, no activation.

    For stride 1 "same" padding is one pixel on every side. For stride 2 on an even size
    TensorFlow puts the single extra row/column at the bottom/right, which PyTorch's
    symmetric ``padding`` cannot express, so the pad is applied explicitly.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        stride: 1 or 2.

    Shape:
        ``(B, in_channels, H, W)`` -> ``(B, out_channels, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"SepConv supports stride 1 or 2, got {stride}")
        self.stride = stride
        self.depthwise = nn.Conv2d(
            in_channels, in_channels, 3, stride=stride, padding=1 if stride == 1 else 0,
            groups=in_channels, bias=False,
        )
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:
            height, width = x.shape[-2:]
            pad_h = max((-(-height // 2) - 1) * 2 + 3 - height, 0)
            pad_w = max((-(-width // 2) - 1) * 2 + 3 - width, 0)
            x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        return self.pointwise(self.depthwise(x))


class Conv3x3(nn.Sequential):
    """Reflection-padded 3x3 convolution with bias.

    Shape:
        ``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.ReflectionPad2d(1), nn.Conv2d(in_channels, out_channels, 3, bias=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The children stay (checkpoint keys "1.weight"/"1.bias", the inference rewrites read
        # them); training computes the same pad-and-convolve without the padded copy.
        return reflection_padded_conv3x3(x, self[1].weight, self[1].bias)


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation style channel attention.

    Global average pool, ``Linear(C, C / reduction)``, ReLU, ``Linear(C / reduction, C)``
    (both without bias), sigmoid; the result scales the input channel-wise.

    Shape:
        ``(B, C, H, W)`` -> ``(B, C, H, W)``.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels, bias=False),
            nn.Sigmoid(),
        )

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The channel weights in (0, 1): ``(B, C, H, W)`` -> ``(B, C)``."""
        return self.fc(x.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)[:, :, None, None]


def merged_pointwise_conv_weights(pointwise: nn.Conv2d, conv: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights of ``conv(pad(pointwise(x)))`` as one convolution ``conv'(pad(x))``.

    Valid for any padding that copies pixels (reflection, replication): padding commutes
    with a per-pixel linear map, bias included. Differentiable in both modules' parameters.

    Args:
        pointwise: dense 1x1 convolution, ``I -> M`` channels.
        conv: dense convolution, ``M -> O`` channels, kernel ``(kh, kw)``.

    Returns:
        ``weight`` ``(O, I, kh, kw) = W_conv @ W_pointwise`` over channels and ``bias``
        ``(O,) = b_conv + sum W_conv b_pointwise``.
    """
    if pointwise.kernel_size != (1, 1) or pointwise.groups != 1 or conv.groups != 1:
        raise ValueError("expected a dense 1x1 convolution followed by a dense convolution")
    weight = torch.einsum("omhw,mi->oihw", conv.weight, pointwise.weight[:, :, 0, 0])
    bias = conv.bias if conv.bias is not None else torch.zeros_like(weight[:, 0, 0, 0])
    if pointwise.bias is not None:
        bias = bias + torch.einsum("omhw,m->o", conv.weight, pointwise.bias)
    return weight, bias


def merging_pointwise_saves_work(pointwise: nn.Conv2d, conv: nn.Conv2d) -> bool:
    """Whether :func:`merged_pointwise_conv_weights` costs fewer multiply-adds per pixel than the two convolutions."""
    taps = conv.kernel_size[0] * conv.kernel_size[1]
    merged = pointwise.in_channels * conv.out_channels * taps
    separate = pointwise.in_channels * pointwise.out_channels + pointwise.out_channels * conv.out_channels * taps
    return merged < separate


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour x2 upsampling, ``(B, C, H, W)`` -> ``(B, C, 2H, 2W)``."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")
