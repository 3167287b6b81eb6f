"""DNA-Depth depth network: timm EfficientNet encoder + neighbour-layer aggregation decoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .checkpointing import run_checkpointed
from .cpu_kernels import cpu_training_rewrites_apply
from .encoders import Pretrained, create_timm_encoder
from .layers import (ChannelAttention, Conv3x3, SepConv, merged_pointwise_conv_weights, merging_pointwise_saves_work,
                     upsample2x)
from .reflection_conv import reflection_padded_conv3x3

NUM_SCALES = 4
"""Disparity outputs at input resolution / 2**s for s = 0..3."""

INPUT_DIVISOR = 32
"""Input height and width must be multiples of the encoder's output stride."""


@dataclass
class DepthNetConfig:
    """Architecture of a :class:`DepthNet`.

    Attributes:
        encoder: timm model name of the feature encoder. The published model uses
            ``tf_efficientnet_b0`` (TensorFlow "same" padding); ``tf_efficientnet_b1``,
            ``efficientnet_b0`` and ``efficientnet_b1`` are drop-in alternatives.
        decoder_channels: decoder width C (64 in the paper).
        input_mean: per-channel RGB mean subtracted from the [0, 1] input, or ``None``
            for no normalisation (the published model used none).
        input_std: per-channel RGB standard deviation the input is divided by, or ``None``.
        encoder_drop_path_rate: stochastic depth of the encoder's blocks during training
            (0.2, the drop-connect rate the authors' EfficientNet trained with); no effect
            in eval mode.
    """

    encoder: str = "tf_efficientnet_b0"
    decoder_channels: int = 64
    input_mean: tuple[float, float, float] | None = None
    input_std: tuple[float, float, float] | None = None
    encoder_drop_path_rate: float = 0.2


def check_image_batch(images: torch.Tensor, name: str = "images") -> None:
    """Raise ``ValueError`` unless ``images`` is a float ``(B, 3, H, W)`` batch with H, W % 32 == 0."""
    expected = f"a floating-point tensor of shape (B, 3, H, W) with H and W multiples of {INPUT_DIVISOR}"
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{name} must be {expected}, got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{name} must be {expected}, got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"{name} must be {expected} (RGB in [0, 1]), got dtype {images.dtype}")
    height, width = images.shape[-2:]
    if height % INPUT_DIVISOR or width % INPUT_DIVISOR:
        raise ValueError(
            f"{name} must be {expected}, got {height}x{width}; resize to e.g. "
            f"{round(height / INPUT_DIVISOR) * INPUT_DIVISOR or INPUT_DIVISOR}x"
            f"{round(width / INPUT_DIVISOR) * INPUT_DIVISOR or INPUT_DIVISOR}"
        )


class FusionNode(nn.Module):
    """Fuses one pyramid level with its coarser and (optionally) finer neighbour.

    ``up`` sees the nearest-upsampled coarser map, ``mid`` the same-level map and
    ``down`` (stride 2) the finer map; their C/2-channel results are concatenated and
    fused by SepConv -> Conv3x3 -> Swish into C channels at the same level's resolution.

    Shape:
        coarser ``(B, C, H/2, W/2)``, same ``(B, C, H, W)``, finer ``(B, C, 2H, 2W)`` or
        ``None`` -> ``(B, C, H, W)``.
    """

    def __init__(self, channels: int, has_finer: bool) -> None:
        super().__init__()
        half = channels // 2
        self.up = SepConv(channels, half)
        self.mid = SepConv(channels, half)
        self.down = SepConv(channels, half, stride=2) if has_finer else None
        self.fuse = SepConv(half * (3 if has_finer else 2), channels)
        self.conv = Conv3x3(channels, channels)
        self.act = nn.SiLU()

    @property
    def merge_fuse_pointwise(self) -> bool:
        """Whether the fusion's pointwise convolution merged into the 3x3 one needs fewer multiply-adds."""
        return merging_pointwise_saves_work(self.fuse.pointwise, self.conv[1])

    def forward(self, coarser: torch.Tensor, same: torch.Tensor, finer: torch.Tensor | None = None) -> torch.Tensor:
        parts = [self.up(upsample2x(coarser)), self.mid(same)]
        if self.down is not None:
            parts.append(self.down(finer))
        joined = torch.cat(parts, dim=1)
        if self.merge_fuse_pointwise and cpu_training_rewrites_apply(joined, self.conv[1].weight):
            # Nothing non-linear lies between the fusion's pointwise convolution and the 3x3
            # one: their product is one 3x3 convolution (the padding commutes with the 1x1).
            # In CPU training that skips a full map forward and backward: the pair of a
            # level-1 node at 640x192, batch 4, two threads, takes 104 ms instead of 132.
            weight, bias = merged_pointwise_conv_weights(self.fuse.pointwise, self.conv[1])
            return self.act(reflection_padded_conv3x3(self.fuse.depthwise(joined), weight, bias))
        return self.act(self.conv(self.fuse(joined)))


class DisparityHead(nn.Module):
    """Channel attention, SepConv to one channel, sigmoid: ``(B, C, H, W)`` -> ``(B, 1, H, W)`` in (0, 1)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.attention = ChannelAttention(channels)
        self.conv = SepConv(channels, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if cpu_training_rewrites_apply(features, self.conv.pointwise.weight):
            return torch.sigmoid(self.folded_logits(features))
        return torch.sigmoid(self.conv(self.attention(features)))

    def folded_logits(self, features: torch.Tensor, pointwise: nn.Conv2d | None = None) -> torch.Tensor:
        """The head's logits ``(B, 1, H, W)`` (before the sigmoid) as one 3x3 convolution per sample.

        The channel weights scale each channel, the depthwise 3x3 filters each channel and
        the pointwise convolution sums them, all linear in the map: per sample that is one
        3x3 convolution to one channel with taps ``attention[c] * pointwise[c] *
        depthwise[c]``. A pointwise convolution that makes the head's input
        (``pointwise(features)``) folds in too: its weights into the taps, its bias into a
        map that is constant inside the image and smaller at its border (the depthwise
        filter's zero padding). CPU training uses this form: it never makes the attended,
        the filtered or the folded map, forward or backward. At 640x192, batch 4, two
        threads, forward and backward: the full-resolution head with the stage's last
        pointwise convolution 73 ms instead of 119, the 1/2-resolution head 34 instead of 42.
        Equal to the modules' result to float rounding.

        Each sample of a group of up to 4 runs through all of the group's kernels in one
        convolution and keeps its own output channel: the extra taps cost less than a
        convolution call per sample.

        Args:
            features: ``(B, C, H, W)``, or ``(B, I, H, W)`` with ``pointwise`` ``I -> C``.
            pointwise: a 1x1 convolution whose output the head reads, or ``None``.
        """
        mean = features.mean(dim=(2, 3))
        if pointwise is not None:
            mean = F.linear(mean, pointwise.weight[:, :, 0, 0], pointwise.bias)
        gains = self.attention.fc(mean) * self.conv.pointwise.weight[:, :, 0, 0]
        taps = gains[:, :, None, None] * self.conv.depthwise.weight[:, 0]  # (B, C, 3, 3)
        offset = self.conv.pointwise.bias.view(1, 1, 1, 1)
        if pointwise is not None:
            # Tap row 0 reads the row above (none for the first row), tap row 2 the row below
            # (none for the last); the same for columns.
            rows, columns = (features.new_ones(3, size) for size in features.shape[-2:])
            for inside in (rows, columns):
                inside[0, 0] = inside[2, -1] = 0.0
            bias_taps = torch.einsum("bckl,c->bkl", taps, pointwise.bias)
            offset = offset + torch.einsum("ky,bkl,lx->byx", rows, bias_taps, columns).unsqueeze(1)
            taps = torch.einsum("bckl,ci->bikl", taps, pointwise.weight[:, :, 0, 0])
        logits = []
        for group, group_taps in zip(features.split(4), taps.split(4)):
            every = F.conv2d(group, group_taps, padding=1)  # (b, b, H, W): sample i through kernel j
            logits.append(torch.diagonal(every, dim1=0, dim2=1).permute(2, 0, 1).unsqueeze(1))
        return torch.cat(logits) + offset


class DNADecoder(nn.Module):
    """Neighbour-layer aggregation decoder.

    Nodes form a triangular grid: column ``c`` has levels ``1 .. 4 - c`` and node
    ``(c, l)`` fuses column ``c - 1`` at levels ``l + 1`` (coarser), ``l`` and ``l - 1``
    (finer, when ``l > 1``); column -1 holds the projected encoder levels 1..5. The paper
    names the columns X, Y, Z, W. Disparity at scale ``s`` >= 1 comes from node
    ``(4 - s, s)`` (Y3, Z2, W1); scale 0 from a full-resolution stage on W1.

    Args:
        encoder_channels: channels of the five encoder levels, finest first.
        channels: decoder width C.
    """

    def __init__(self, encoder_channels: tuple[int, ...] | list[int], channels: int = 64) -> None:
        super().__init__()
        if len(encoder_channels) != 5:
            raise ValueError(f"DNADecoder needs 5 encoder levels, got {len(encoder_channels)}")
        half = channels // 2
        self.deep_dropout = nn.Dropout(p=0.5)
        self.projections = nn.ModuleList(SepConv(c, channels) for c in encoder_channels)
        self.nodes = nn.ModuleDict(
            {self.node_name(column, level): FusionNode(channels, has_finer=level > 1)
             for column in range(4) for level in range(4 - column, 0, -1)}
        )
        self.full_res_in = SepConv(channels, half)
        self.full_res_conv = Conv3x3(half, half)
        self.full_res_act = nn.SiLU()
        self.full_res_out = SepConv(half, half)
        self.heads = nn.ModuleList([DisparityHead(half)] + [DisparityHead(channels) for _ in range(1, NUM_SCALES)])
        # Recompute each node, head and the full-resolution stage in backward; set by
        # DepthNet.set_activation_checkpointing.
        self.activation_checkpointing = False

    @staticmethod
    def node_name(column: int, level: int) -> str:
        """``(1, 3)`` -> ``"y3"``: the paper's node names."""
        return f"{'xyzw'[column]}{level}"

    def forward(self, features: list[torch.Tensor], multiscale: bool = True) -> list[torch.Tensor]:
        """Decode encoder features (finest first) into disparities.

        Returns:
            ``multiscale``: ``[disp_0, disp_1, disp_2, disp_3]`` with ``disp_s`` shaped
            ``(B, 1, H / 2**s, W / 2**s)``; otherwise ``[disp_0]`` only (the heads of the
            coarser scales are not computed).
        """
        features = list(features)
        features[3] = self.deep_dropout(features[3])
        features[4] = self.deep_dropout(features[4])
        previous = {level + 1: proj(f) for level, (proj, f) in enumerate(zip(self.projections, features))}
        disparities: dict[int, torch.Tensor] = {}
        for column in range(4):
            current = {}
            for level in range(4 - column, 0, -1):
                node = self.nodes[self.node_name(column, level)]
                current[level] = run_checkpointed(self.activation_checkpointing, node, previous[level + 1],
                                                  previous[level], previous.get(level - 1))
            scale = 4 - column
            if multiscale and scale < NUM_SCALES:
                disparities[scale] = run_checkpointed(self.activation_checkpointing, self.heads[scale],
                                                      current[scale])
            previous = current
        disparities[0] = run_checkpointed(self.activation_checkpointing, self._full_resolution_disparity, previous[1])
        return [disparities[s] for s in sorted(disparities)]

    def _full_resolution_disparity(self, level_1: torch.Tensor) -> torch.Tensor:
        """Scale-0 disparity ``(B, 1, 2h, 2w)`` from node W1's ``(B, C, h, w)`` features."""
        stage = self.full_res_act(self.full_res_conv(self.full_res_in(upsample2x(level_1))))
        head = self.heads[0]
        if cpu_training_rewrites_apply(stage, head.conv.pointwise.weight):
            filtered = self.full_res_out.depthwise(stage)
            return torch.sigmoid(head.folded_logits(filtered, pointwise=self.full_res_out.pointwise))
        return head(self.full_res_out(stage))


class DepthNet(nn.Module):
    """DNA-Depth: EfficientNet feature encoder + :class:`DNADecoder`.

    Input is RGB in [0, 1], ``(B, 3, H, W)`` float with H and W multiples of 32;
    normalisation (``config.input_mean``/``input_std``) happens inside the model.
    Output is sigmoid disparity in (0, 1); convert with
    :func:`dna_depth_core.geometry.disp_to_depth`.

    Args:
        config: architecture.
        pretrained: encoder ImageNet weights, see :func:`create_timm_encoder`.
    """

    def __init__(self, config: DepthNetConfig | None = None, pretrained: Pretrained = False) -> None:
        super().__init__()
        self.config = config or DepthNetConfig()
        self.encoder = create_timm_encoder(
            self.config.encoder, pretrained=pretrained, features_only=True,
            drop_path_rate=self.config.encoder_drop_path_rate,
        )
        reductions = self.encoder.feature_info.reduction()
        if list(reductions) != [2, 4, 8, 16, 32]:
            raise ValueError(
                f"encoder {self.config.encoder!r} gives feature strides {reductions}; DepthNet needs "
                "five levels at strides 2, 4, 8, 16, 32 (EfficientNet, ResNet, MobileNet... do)"
            )
        self.decoder = DNADecoder(self.encoder.feature_info.channels(), self.config.decoder_channels)
        mean, std = self.config.input_mean, self.config.input_std
        self.register_buffer("input_mean", torch.tensor(mean).view(1, 3, 1, 1) if mean else None, persistent=False)
        self.register_buffer("input_std", torch.tensor(std).view(1, 3, 1, 1) if std else None, persistent=False)

    def set_activation_checkpointing(self, enabled: bool = True) -> None:
        """Recompute activations in backward instead of keeping them (training memory for time).

        The encoder keeps only the outputs of its stages (timm's gradient checkpointing),
        the decoder only the outputs of its nodes; outputs and gradients are unchanged.
        Wrap the backward pass in
        :func:`~dna_depth_core.networks.checkpointing.batch_norm_statistics_restored`.
        """
        self.encoder.set_grad_checkpointing(enabled)
        self.decoder.activation_checkpointing = enabled

    def forward(self, images: torch.Tensor, multiscale: bool | None = None) -> torch.Tensor | list[torch.Tensor]:
        """Predict disparity.

        Args:
            images: ``(B, 3, H, W)`` RGB in [0, 1], H and W multiples of 32.
            multiscale: return all four scales (``True``) or the full-resolution map only
                (``False``). ``None`` means ``self.training``: training needs every
                scale, inference only scale 0.

        Returns:
            multiscale: list of 4 tensors ``(B, 1, H / 2**s, W / 2**s)``, s = 0..3;
            otherwise one tensor ``(B, 1, H, W)``. Values in (0, 1).
        """
        check_image_batch(images)
        if multiscale is None:
            multiscale = self.training
        if self.input_mean is not None:
            images = images - self.input_mean
        if self.input_std is not None:
            images = images / self.input_std
        disparities = self.decoder(self.encoder(images), multiscale=multiscale)
        return disparities if multiscale else disparities[0]
