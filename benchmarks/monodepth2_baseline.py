"""Monodepth2-architecture depth network: the peer DNA-Depth's "lightweight" claim is measured against.

Written from the published description of Monodepth2's depth network (Godard et al.,
ICCV 2019), not from its code:

- Encoder: ResNet-18 feature pyramid (timm ``resnet18``), five levels at strides
  2, 4, 8, 16, 32 with 64, 64, 128, 256, 512 channels; the [0, 1] RGB input is
  normalised as ``(x - 0.45) / 0.225``.
- Decoder, from the coarsest level down, decoder channels (16, 32, 64, 128, 256) at
  levels 0..4: at each level ``i`` a ConvBlock (reflection-padded 3x3 conv + ELU) maps
  the coarser result to ``channels[i]``, nearest-neighbour x2 upsampling follows, the
  encoder feature one level finer is concatenated (except at the last level, which has
  no finer encoder feature), and a second ConvBlock fuses the concatenation.
- Disparity heads at scales 0..3: reflection-padded 3x3 conv to one channel + sigmoid.

It has the same interface as :class:`dna_depth_core.networks.DepthNet` so benchmarks can
treat both alike. Nothing here is used by the package itself.
"""

from __future__ import annotations

import timm
import torch
from torch import nn

DECODER_CHANNELS = (16, 32, 64, 128, 256)
"""Decoder width at levels 0 (full resolution) .. 4 (stride 16 after upsampling)."""

NUM_SCALES = 4


class ConvBlock(nn.Sequential):
    """Reflection-padded 3x3 convolution followed by ELU: ``(B, in, H, W)`` -> ``(B, out, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.ReflectionPad2d(1), nn.Conv2d(in_channels, out_channels, 3), nn.ELU(inplace=True))


class DispHead(nn.Sequential):
    """Reflection-padded 3x3 convolution to one channel + sigmoid: ``(B, C, H, W)`` -> ``(B, 1, H, W)``."""

    def __init__(self, in_channels: int) -> None:
        super().__init__(nn.ReflectionPad2d(1), nn.Conv2d(in_channels, 1, 3), nn.Sigmoid())


class Monodepth2Decoder(nn.Module):
    """Upsampling decoder with skip connections and four sigmoid disparity heads.

    Args:
        encoder_channels: channels of the five encoder levels, finest first.
    """

    def __init__(self, encoder_channels: tuple[int, ...] | list[int]) -> None:
        super().__init__()
        if len(encoder_channels) != 5:
            raise ValueError(f"Monodepth2Decoder needs 5 encoder levels, got {len(encoder_channels)}")
        self.reduce = nn.ModuleList()
        self.fuse = nn.ModuleList()
        for level in range(5):
            coarser = encoder_channels[-1] if level == 4 else DECODER_CHANNELS[level + 1]
            skip = encoder_channels[level - 1] if level > 0 else 0
            self.reduce.append(ConvBlock(coarser, DECODER_CHANNELS[level]))
            self.fuse.append(ConvBlock(DECODER_CHANNELS[level] + skip, DECODER_CHANNELS[level]))
        self.heads = nn.ModuleList(DispHead(DECODER_CHANNELS[scale]) for scale in range(NUM_SCALES))

    def forward(self, features: list[torch.Tensor], multiscale: bool = True) -> list[torch.Tensor]:
        """Encoder features (finest first) -> ``[disp_0, ..., disp_3]`` (or ``[disp_0]``); ``disp_s`` at ``H / 2**s``."""
        x = features[-1]
        disparities: dict[int, torch.Tensor] = {}
        for level in range(4, -1, -1):
            x = nn.functional.interpolate(self.reduce[level](x), scale_factor=2.0, mode="nearest")
            if level > 0:
                x = torch.cat([x, features[level - 1]], dim=1)
            x = self.fuse[level](x)
            if level < NUM_SCALES and (multiscale or level == 0):
                disparities[level] = self.heads[level](x)
        return [disparities[s] for s in sorted(disparities)]


class Monodepth2DepthNet(nn.Module):
    """ResNet-18 encoder + :class:`Monodepth2Decoder`, random initialisation.

    Input ``(B, 3, H, W)`` RGB in [0, 1] with H, W multiples of 32; output as
    :meth:`dna_depth_core.networks.DepthNet.forward`: one ``(B, 1, H, W)`` disparity in
    (0, 1), or the four scales when ``multiscale``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.encoder = timm.create_model("resnet18", pretrained=False, features_only=True)
        self.decoder = Monodepth2Decoder(self.encoder.feature_info.channels())

    def forward(self, images: torch.Tensor, multiscale: bool | None = None) -> torch.Tensor | list[torch.Tensor]:
        if multiscale is None:
            multiscale = self.training
        disparities = self.decoder(self.encoder((images - 0.45) / 0.225), multiscale=multiscale)
        return disparities if multiscale else disparities[0]
