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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.fc(x.mean(dim=(2, 3)))
        return x * weights[:, :, None, None]


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour x2 upsampling, ``(B, C, H, W)`` -> ``(B, C, 2H, 2W)``."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")
