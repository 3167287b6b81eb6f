"""``dna-depth import-weights``: the authors' published weights -> our checkpoint format.

The source folders are built here in the authors' Monodepth2 layout, with tensor names and
shapes written out from their code (github.com/boyagesmile/DNA-Depth ``networks/``), not
from the mapping under test. The reference is a functional re-implementation of their
forward pass (lukemelas-style EfficientNet with TensorFlow "same" padding, their
EfficientDecoder, Monodepth2's ResNet pose encoder and PoseDecoder), written from reading
that code and applied to the raw source tensors: the imported networks must reproduce it.
Over 500 lines because that reference forward pass lives here, next to the only tests that
use it, rather than in the package it checks.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from dna_depth_core.checkpoint import load_checkpoint
from dna_depth_core.cli import main
from dna_depth_core.import_weights import WeightImportError, decoder_module_map, import_authors_weights
from dna_depth_core.networks import create_depth_net

# Every tensor of their EfficientDecoder (depth.pth) and its shape. SeparableConvBlock holds
# depthwise_conv.conv (3x3, no bias) and pointwise_conv.conv (1x1); SimpleFPN holds up_conv,
# conv, down_conv (absent in the level-1 nodes simfpn1_*), iconv (96 -> 64, or 64 -> 64 at
# level 1) and cat_conv (Monodepth2 Conv3x3: pad + conv); conv1 = (Conv3x3, Swish, SepConv);
# ChannelAttention.fc = (Linear, ReLU, Linear) without biases; dispS = (SepConv, Sigmoid).
THEIR_DECODER_TENSORS = """
iconv5_0.depthwise_conv.conv.weight 320,1,3,3
iconv5_0.pointwise_conv.conv.weight 64,320,1,1
iconv5_0.pointwise_conv.conv.bias 64
iconv4_0.depthwise_conv.conv.weight 112,1,3,3
iconv4_0.pointwise_conv.conv.weight 64,112,1,1
iconv4_0.pointwise_conv.conv.bias 64
iconv3_0.depthwise_conv.conv.weight 40,1,3,3
iconv3_0.pointwise_conv.conv.weight 64,40,1,1
iconv3_0.pointwise_conv.conv.bias 64
iconv2_0.depthwise_conv.conv.weight 24,1,3,3
iconv2_0.pointwise_conv.conv.weight 64,24,1,1
iconv2_0.pointwise_conv.conv.bias 64
iconv1_0.depthwise_conv.conv.weight 16,1,3,3
iconv1_0.pointwise_conv.conv.weight 64,16,1,1
iconv1_0.pointwise_conv.conv.bias 64
simfpn4_0.down_conv.depthwise_conv.conv.weight 64,1,3,3
simfpn4_0.down_conv.pointwise_conv.conv.weight 32,64,1,1
simfpn4_0.down_conv.pointwise_conv.conv.bias 32
simfpn4_0.iconv.depthwise_conv.conv.weight 96,1,3,3
simfpn4_0.iconv.pointwise_conv.conv.weight 64,96,1,1
simfpn4_0.iconv.pointwise_conv.conv.bias 64
simfpn4_0.up_conv.depthwise_conv.conv.weight 64,1,3,3
simfpn4_0.up_conv.pointwise_conv.conv.weight 32,64,1,1
simfpn4_0.up_conv.pointwise_conv.conv.bias 32
simfpn4_0.conv.depthwise_conv.conv.weight 64,1,3,3
simfpn4_0.conv.pointwise_conv.conv.weight 32,64,1,1
simfpn4_0.conv.pointwise_conv.conv.bias 32
simfpn4_0.cat_conv.conv.weight 64,64,3,3
simfpn4_0.cat_conv.conv.bias 64
simfpn3_0.down_conv.depthwise_conv.conv.weight 64,1,3,3
simfpn3_0.down_conv.pointwise_conv.conv.weight 32,64,1,1
simfpn3_0.down_conv.pointwise_conv.conv.bias 32
simfpn3_0.iconv.depthwise_conv.conv.weight 96,1,3,3
simfpn3_0.iconv.pointwise_conv.conv.weight 64,96,1,1
simfpn3_0.iconv.pointwise_conv.conv.bias 64
simfpn3_0.up_conv.depthwise_conv.conv.weight 64,1,3,3
simfpn3_0.up_conv.pointwise_conv.conv.weight 32,64,1,1
simfpn3_0.up_conv.pointwise_conv.conv.bias 32
simfpn3_0.conv.depthwise_conv.conv.weight 64,1,3,3
simfpn3_0.conv.pointwise_conv.conv.weight 32,64,1,1
simfpn3_0.conv.pointwise_conv.conv.bias 32
simfpn3_0.cat_conv.conv.weight 64,64,3,3
simfpn3_0.cat_conv.conv.bias 64
simfpn2_0.down_conv.depthwise_conv.conv.weight 64,1,3,3
simfpn2_0.down_conv.pointwise_conv.conv.weight 32,64,1,1
simfpn2_0.down_conv.pointwise_conv.conv.bias 32
simfpn2_0.iconv.depthwise_conv.conv.weight 96,1,3,3
simfpn2_0.iconv.pointwise_conv.conv.weight 64,96,1,1
simfpn2_0.iconv.pointwise_conv.conv.bias 64
simfpn2_0.up_conv.depthwise_conv.conv.weight 64,1,3,3
simfpn2_0.up_conv.pointwise_conv.conv.weight 32,64,1,1
simfpn2_0.up_conv.pointwise_conv.conv.bias 32
simfpn2_0.conv.depthwise_conv.conv.weight 64,1,3,3
simfpn2_0.conv.pointwise_conv.conv.weight 32,64,1,1
simfpn2_0.conv.pointwise_conv.conv.bias 32
simfpn2_0.cat_conv.conv.weight 64,64,3,3
simfpn2_0.cat_conv.conv.bias 64
simfpn1_0.iconv.depthwise_conv.conv.weight 64,1,3,3
simfpn1_0.iconv.pointwise_conv.conv.weight 64,64,1,1
simfpn1_0.iconv.pointwise_conv.conv.bias 64
simfpn1_0.up_conv.depthwise_conv.conv.weight 64,1,3,3
simfpn1_0.up_conv.pointwise_conv.conv.weight 32,64,1,1
simfpn1_0.up_conv.pointwise_conv.conv.bias 32
simfpn1_0.conv.depthwise_conv.conv.weight 64,1,3,3
simfpn1_0.conv.pointwise_conv.conv.weight 32,64,1,1
simfpn1_0.conv.pointwise_conv.conv.bias 32
simfpn1_0.cat_conv.conv.weight 64,64,3,3
simfpn1_0.cat_conv.conv.bias 64
simfpn3_1.down_conv.depthwise_conv.conv.weight 64,1,3,3
simfpn3_1.down_conv.pointwise_conv.conv.weight 32,64,1,1
simfpn3_1.down_conv.pointwise_conv.conv.bias 32
simfpn3_1.iconv.depthwise_conv.conv.weight 96,1,3,3
simfpn3_1.iconv.pointwise_conv.conv.weight 64,96,1,1
simfpn3_1.iconv.pointwise_conv.conv.bias 64
simfpn3_1.up_conv.depthwise_conv.conv.weight 64,1,3,3
simfpn3_1.up_conv.pointwise_conv.conv.weight 32,64,1,1
simfpn3_1.up_conv.pointwise_conv.conv.bias 32
simfpn3_1.conv.depthwise_conv.conv.weight 64,1,3,3
simfpn3_1.conv.pointwise_conv.conv.weight 32,64,1,1
simfpn3_1.conv.pointwise_conv.conv.bias 32
simfpn3_1.cat_conv.conv.weight 64,64,3,3
simfpn3_1.cat_conv.conv.bias 64
simfpn2_1.down_conv.depthwise_conv.conv.weight 64,1,3,3
simfpn2_1.down_conv.pointwise_conv.conv.weight 32,64,1,1
simfpn2_1.down_conv.pointwise_conv.conv.bias 32
simfpn2_1.iconv.depthwise_conv.conv.weight 96,1,3,3
simfpn2_1.iconv.pointwise_conv.conv.weight 64,96,1,1
simfpn2_1.iconv.pointwise_conv.conv.bias 64
simfpn2_1.up_conv.depthwise_conv.conv.weight 64,1,3,3
simfpn2_1.up_conv.pointwise_conv.conv.weight 32,64,1,1
simfpn2_1.up_conv.pointwise_conv.conv.bias 32
simfpn2_1.conv.depthwise_conv.conv.weight 64,1,3,3
simfpn2_1.conv.pointwise_conv.conv.weight 32,64,1,1
simfpn2_1.conv.pointwise_conv.conv.bias 32
simfpn2_1.cat_conv.conv.weight 64,64,3,3
simfpn2_1.cat_conv.conv.bias 64
simfpn1_1.iconv.depthwise_conv.conv.weight 64,1,3,3
simfpn1_1.iconv.pointwise_conv.conv.weight 64,64,1,1
simfpn1_1.iconv.pointwise_conv.conv.bias 64
simfpn1_1.up_conv.depthwise_conv.conv.weight 64,1,3,3
simfpn1_1.up_conv.pointwise_conv.conv.weight 32,64,1,1
simfpn1_1.up_conv.pointwise_conv.conv.bias 32
simfpn1_1.conv.depthwise_conv.conv.weight 64,1,3,3
simfpn1_1.conv.pointwise_conv.conv.weight 32,64,1,1
simfpn1_1.conv.pointwise_conv.conv.bias 32
simfpn1_1.cat_conv.conv.weight 64,64,3,3
simfpn1_1.cat_conv.conv.bias 64
simfpn2_2.down_conv.depthwise_conv.conv.weight 64,1,3,3
simfpn2_2.down_conv.pointwise_conv.conv.weight 32,64,1,1
simfpn2_2.down_conv.pointwise_conv.conv.bias 32
simfpn2_2.iconv.depthwise_conv.conv.weight 96,1,3,3
simfpn2_2.iconv.pointwise_conv.conv.weight 64,96,1,1
simfpn2_2.iconv.pointwise_conv.conv.bias 64
simfpn2_2.up_conv.depthwise_conv.conv.weight 64,1,3,3
simfpn2_2.up_conv.pointwise_conv.conv.weight 32,64,1,1
simfpn2_2.up_conv.pointwise_conv.conv.bias 32
simfpn2_2.conv.depthwise_conv.conv.weight 64,1,3,3
simfpn2_2.conv.pointwise_conv.conv.weight 32,64,1,1
simfpn2_2.conv.pointwise_conv.conv.bias 32
simfpn2_2.cat_conv.conv.weight 64,64,3,3
simfpn2_2.cat_conv.conv.bias 64
simfpn1_2.iconv.depthwise_conv.conv.weight 64,1,3,3
simfpn1_2.iconv.pointwise_conv.conv.weight 64,64,1,1
simfpn1_2.iconv.pointwise_conv.conv.bias 64
simfpn1_2.up_conv.depthwise_conv.conv.weight 64,1,3,3
simfpn1_2.up_conv.pointwise_conv.conv.weight 32,64,1,1
simfpn1_2.up_conv.pointwise_conv.conv.bias 32
simfpn1_2.conv.depthwise_conv.conv.weight 64,1,3,3
simfpn1_2.conv.pointwise_conv.conv.weight 32,64,1,1
simfpn1_2.conv.pointwise_conv.conv.bias 32
simfpn1_2.cat_conv.conv.weight 64,64,3,3
simfpn1_2.cat_conv.conv.bias 64
simfpn1_3.iconv.depthwise_conv.conv.weight 64,1,3,3
simfpn1_3.iconv.pointwise_conv.conv.weight 64,64,1,1
simfpn1_3.iconv.pointwise_conv.conv.bias 64
simfpn1_3.up_conv.depthwise_conv.conv.weight 64,1,3,3
simfpn1_3.up_conv.pointwise_conv.conv.weight 32,64,1,1
simfpn1_3.up_conv.pointwise_conv.conv.bias 32
simfpn1_3.conv.depthwise_conv.conv.weight 64,1,3,3
simfpn1_3.conv.pointwise_conv.conv.weight 32,64,1,1
simfpn1_3.conv.pointwise_conv.conv.bias 32
simfpn1_3.cat_conv.conv.weight 64,64,3,3
simfpn1_3.cat_conv.conv.bias 64
upconv1.depthwise_conv.conv.weight 64,1,3,3
upconv1.pointwise_conv.conv.weight 32,64,1,1
upconv1.pointwise_conv.conv.bias 32
conv1.0.conv.weight 32,32,3,3
conv1.0.conv.bias 32
conv1.2.depthwise_conv.conv.weight 32,1,3,3
conv1.2.pointwise_conv.conv.weight 32,32,1,1
conv1.2.pointwise_conv.conv.bias 32
attn_3.fc.0.weight 4,64
attn_3.fc.2.weight 64,4
attn_2.fc.0.weight 4,64
attn_2.fc.2.weight 64,4
attn_1.fc.0.weight 4,64
attn_1.fc.2.weight 64,4
attn_0.fc.0.weight 2,32
attn_0.fc.2.weight 32,2
disp3.0.depthwise_conv.conv.weight 64,1,3,3
disp3.0.pointwise_conv.conv.weight 1,64,1,1
disp3.0.pointwise_conv.conv.bias 1
disp2.0.depthwise_conv.conv.weight 64,1,3,3
disp2.0.pointwise_conv.conv.weight 1,64,1,1
disp2.0.pointwise_conv.conv.bias 1
disp1.0.depthwise_conv.conv.weight 64,1,3,3
disp1.0.pointwise_conv.conv.weight 1,64,1,1
disp1.0.pointwise_conv.conv.bias 1
disp0.0.depthwise_conv.conv.weight 32,1,3,3
disp0.0.pointwise_conv.conv.weight 1,32,1,1
disp0.0.pointwise_conv.conv.bias 1
"""

# EfficientNet-B0 stages (repeats, kernel, stride, expansion, in, out): the published
# definition their networks/utils.py builds; B1 repeats each stage ceil(1.1 * r) times.
B0_STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
             (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
STAGES = {
    "tf_efficientnet_b0": B0_STAGES,
    "tf_efficientnet_b1": [(math.ceil(1.1 * r), *rest) for r, *rest in B0_STAGES],
}
BN_EPS = 1e-3  # their batch_norm_epsilon
HEIGHT, WIDTH = 64, 128  # small, so the reference runs fast; any multiple of 32 works


def _decoder_shapes() -> dict[str, tuple[int, ...]]:
    entries = (line.split() for line in THEIR_DECODER_TENSORS.strip().splitlines())
    return {key: tuple(int(n) for n in shape.split(",")) for key, shape in entries}


def _batch_norm_shapes(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    shapes = {f"{prefix}.{name}": (channels,) for name in ("weight", "bias", "running_mean", "running_var")}
    shapes[f"{prefix}.num_batches_tracked"] = ()
    return shapes


def _block_specs(encoder: str):
    """(flat index, kernel, stride, expansion, in, out) of every block, in their order."""
    index = 0
    for repeats, kernel, stride, expansion, first_in, out in STAGES[encoder]:
        for repeat in range(repeats):
            yield index, kernel, stride if repeat == 0 else 1, expansion, first_in if repeat == 0 else out, out
            index += 1


def _encoder_shapes(encoder: str) -> dict[str, tuple[int, ...]]:
    """Their encoder.pth tensors: model._conv_stem, model._bn0, model._blocks.N.*, and the
    classification head of the unmodified EfficientNet, unused by the depth network."""
    shapes = {"model._conv_stem.weight": (32, 3, 3, 3), **_batch_norm_shapes("model._bn0", 32)}
    for index, kernel, _, expansion, channels_in, channels_out in _block_specs(encoder):
        block = f"model._blocks.{index}"
        expanded = channels_in * expansion
        squeezed = max(1, int(channels_in * 0.25))
        if expansion != 1:
            shapes[f"{block}._expand_conv.weight"] = (expanded, channels_in, 1, 1)
            shapes.update(_batch_norm_shapes(f"{block}._bn0", expanded))
        shapes[f"{block}._depthwise_conv.weight"] = (expanded, 1, kernel, kernel)
        shapes.update(_batch_norm_shapes(f"{block}._bn1", expanded))
        shapes.update({
            f"{block}._se_reduce.weight": (squeezed, expanded, 1, 1), f"{block}._se_reduce.bias": (squeezed,),
            f"{block}._se_expand.weight": (expanded, squeezed, 1, 1), f"{block}._se_expand.bias": (expanded,),
            f"{block}._project_conv.weight": (channels_out, expanded, 1, 1),
        })
        shapes.update(_batch_norm_shapes(f"{block}._bn2", channels_out))
    shapes["model._conv_head.weight"] = (1280, 320, 1, 1)
    shapes.update(_batch_norm_shapes("model._bn1", 1280))
    shapes.update({"model._fc.weight": (1000, 1280), "model._fc.bias": (1000,)})
    return shapes


def _random_tensor(key: str, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Random weights scaled like a trained network, so activations neither explode nor
    saturate the sigmoids (which would let a wrong mapping pass unnoticed)."""
    if key.endswith("num_batches_tracked"):
        return torch.tensor(1234)
    if key.endswith("running_var"):
        return torch.rand(shape, generator=generator) + 0.5
    if len(shape) == 1:  # BatchNorm scale, or any bias / running mean
        base = 1.0 if key.endswith("weight") else 0.0
        return base + 0.2 * torch.randn(shape, generator=generator)
    fan_in = math.prod(shape[1:])
    return torch.randn(shape, generator=generator) * (1.5 / math.sqrt(fan_in))


def _random_state(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {key: _random_tensor(key, shape, generator) for key, shape in shapes.items()}


def _pose_states(seed: int) -> tuple[dict, dict]:
    """pose_encoder.pth (torchvision ResNet-18 with 6 input channels, under ``encoder.``,
    including its unused ImageNet classifier) and pose.pth (PoseDecoder predicting 2 frames)."""
    resnet = torchvision.models.resnet18()
    resnet.conv1 = nn.Conv2d(6, 64, 7, 2, 3, bias=False)
    shapes = {f"encoder.{k}": tuple(v.shape) for k, v in resnet.state_dict().items()}
    encoder_state = _random_state(shapes, seed)
    decoder_shapes = {
        "net.0.weight": (256, 512, 1, 1), "net.0.bias": (256,),
        "net.1.weight": (256, 256, 3, 3), "net.1.bias": (256,),
        "net.2.weight": (256, 256, 3, 3), "net.2.bias": (256,),
        "net.3.weight": (12, 256, 1, 1), "net.3.bias": (12,),
    }
    return encoder_state, _random_state(decoder_shapes, seed + 1)


def _write_folder(folder: Path, encoder: str, seed: int = 0, pose: bool = True) -> dict:
    """Write an authors'-layout weight folder; return its states ``{file name: state}``."""
    folder.mkdir(parents=True, exist_ok=True)
    encoder_state = _random_state(_encoder_shapes(encoder), seed)
    encoder_state.update(height=HEIGHT, width=WIDTH, use_stereo=False)  # Monodepth2 adds these
    states = {"encoder.pth": encoder_state, "depth.pth": _random_state(_decoder_shapes(), seed + 1)}
    if pose:
        states["pose_encoder.pth"], states["pose.pth"] = _pose_states(seed + 2)
    for name, state in states.items():
        torch.save(state, folder / name)
    return states


# --- reference: their forward pass, functionally ---------------------------------------

def _same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow "same": the odd pixel of padding goes to the bottom/right."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def _bn(state: dict, prefix: str, x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(x, state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"],
                        state[f"{prefix}.weight"], state[f"{prefix}.bias"], False, 0.0, BN_EPS)


def their_encoder(state: dict, encoder: str, images: torch.Tensor) -> list[torch.Tensor]:
    x = F.silu(_bn(state, "model._bn0", F.conv2d(_same_pad(images, 3, 2), state["model._conv_stem.weight"], stride=2)))
    features = []
    for index, kernel, stride, expansion, channels_in, channels_out in _block_specs(encoder):
        block = f"model._blocks.{index}"
        if stride == 2:  # their endpoints: the map just before each resolution drop
            features.append(x)
        inputs = x
        if expansion != 1:
            x = F.silu(_bn(state, f"{block}._bn0", F.conv2d(x, state[f"{block}._expand_conv.weight"])))
        x = F.conv2d(_same_pad(x, kernel, stride), state[f"{block}._depthwise_conv.weight"], stride=stride,
                     groups=x.shape[1])
        x = F.silu(_bn(state, f"{block}._bn1", x))
        squeezed = F.silu(F.conv2d(x.mean((2, 3), keepdim=True), state[f"{block}._se_reduce.weight"],
                                   state[f"{block}._se_reduce.bias"]))
        gate = F.conv2d(squeezed, state[f"{block}._se_expand.weight"], state[f"{block}._se_expand.bias"])
        x = x * torch.sigmoid(gate)
        x = _bn(state, f"{block}._bn2", F.conv2d(x, state[f"{block}._project_conv.weight"]))
        if stride == 1 and channels_in == channels_out:
            x = x + inputs
    return features + [x]


def their_decoder(state: dict, features: list[torch.Tensor]) -> list[torch.Tensor]:
    def sep(name, x, stride=1):
        x = F.conv2d(_same_pad(x, 3, stride), state[f"{name}.depthwise_conv.conv.weight"], stride=stride,
                     groups=x.shape[1])
        return F.conv2d(x, state[f"{name}.pointwise_conv.conv.weight"], state[f"{name}.pointwise_conv.conv.bias"])

    def conv3x3(name, x):
        padded = F.pad(x, [1, 1, 1, 1], mode="reflect")
        return F.conv2d(padded, state[f"{name}.conv.weight"], state[f"{name}.conv.bias"])

    def up(x):
        return F.interpolate(x, scale_factor=2, mode="nearest")

    def node(name, coarser, same, finer=None):
        parts = [sep(f"{name}.up_conv", up(coarser)), sep(f"{name}.conv", same)]
        if finer is not None:
            parts.append(sep(f"{name}.down_conv", finer, stride=2))
        return F.silu(conv3x3(f"{name}.cat_conv", sep(f"{name}.iconv", torch.cat(parts, 1))))

    def head(scale, x):
        weights = torch.sigmoid(F.linear(F.relu(F.linear(x.mean((2, 3)), state[f"attn_{scale}.fc.0.weight"])),
                                         state[f"attn_{scale}.fc.2.weight"]))
        return torch.sigmoid(sep(f"disp{scale}.0", x * weights[:, :, None, None]))

    l1, l2, l3, l4, l5 = (sep(f"iconv{level}_0", f) for level, f in enumerate(features, start=1))
    x4, x3, x2, x1 = node("simfpn4_0", l5, l4, l3), node("simfpn3_0", l4, l3, l2), node("simfpn2_0", l3, l2, l1), \
        node("simfpn1_0", l2, l1)
    y3, y2, y1 = node("simfpn3_1", x4, x3, x2), node("simfpn2_1", x3, x2, x1), node("simfpn1_1", x2, x1)
    z2, z1 = node("simfpn2_2", y3, y2, y1), node("simfpn1_2", y2, y1)
    w1 = node("simfpn1_3", z2, z1)
    x0 = sep("conv1.2", F.silu(conv3x3("conv1.0", sep("upconv1", up(w1)))))
    return [head(0, x0), head(1, w1), head(2, z2), head(3, y3)]


def their_pose(encoder_state: dict, decoder_state: dict, earlier, later) -> tuple[torch.Tensor, torch.Tensor]:
    resnet = torchvision.models.resnet18()
    resnet.conv1 = nn.Conv2d(6, 64, 7, 2, 3, bias=False)
    resnet.load_state_dict({k.removeprefix("encoder."): v for k, v in encoder_state.items()})
    resnet.eval()
    x = (torch.cat([earlier, later], 1) - 0.45) / 0.225  # Monodepth2's ResnetEncoder normalises
    x = resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(x))))
    x = resnet.layer4(resnet.layer3(resnet.layer2(resnet.layer1(x))))
    x = F.relu(F.conv2d(x, decoder_state["net.0.weight"], decoder_state["net.0.bias"]))
    x = F.relu(F.conv2d(x, decoder_state["net.1.weight"], decoder_state["net.1.bias"], padding=1))
    x = F.relu(F.conv2d(x, decoder_state["net.2.weight"], decoder_state["net.2.bias"], padding=1))
    x = F.conv2d(x, decoder_state["net.3.weight"], decoder_state["net.3.bias"])
    motion = 0.01 * x.mean(3).mean(2).view(-1, 2, 1, 6)  # two predicted frames; the trainer reads [:, 0]
    return motion[:, 0, 0, :3], motion[:, 0, 0, 3:]


# --- tests -----------------------------------------------------------------------------

def test_decoder_mapping_covers_exactly_their_tensors():
    """The mapping's source names are exactly their decoder's, each onto a tensor of ours of
    the same shape, and every decoder tensor of ours is filled exactly once."""
    ours = {k: v for k, v in create_depth_net("dna_depth_b0").state_dict().items() if k.startswith("decoder.")}
    expected = _decoder_shapes()
    key_map = {}
    for their_module, our_module in decoder_module_map().items():
        for name in ("weight", "bias"):
            if f"{our_module}.{name}" in ours:
                key_map[f"{their_module}.{name}"] = f"{our_module}.{name}"
    assert set(key_map) == set(expected)
    assert sorted(key_map.values()) == sorted(ours)
    assert {k: tuple(ours[v].shape) for k, v in key_map.items()} == expected
    assert sum(math.prod(shape) for shape in expected.values()) == 554_564  # facts: 0.5546 M


@pytest.mark.parametrize(("encoder", "pose"), [("tf_efficientnet_b0", True), ("tf_efficientnet_b1", False)])
def test_import_reproduces_their_network(tmp_path, encoder, pose):
    states = _write_folder(tmp_path / "mono_640m", encoder, pose=pose)
    output = tmp_path / "imported.safetensors"
    assert main(["import-weights", str(tmp_path / "mono_640m"), "-o", str(output)]) == 0

    checkpoint = load_checkpoint(output, with_pose=pose)
    metadata = checkpoint.metadata
    assert metadata.network.encoder == encoder and metadata.network.input_mean is None
    assert (metadata.height, metadata.width) == (HEIGHT, WIDTH)
    assert (metadata.min_depth, metadata.max_depth, metadata.depth_scale, metadata.metric) == (0.1, 100.0, 1.0, False)
    assert metadata.pose_encoder == ("resnet18" if pose else None)
    assert metadata.provenance["source_folder"] == str((tmp_path / "mono_640m").resolve())
    assert "KITTI" in metadata.provenance["source"] and "boyagesmile/DNA-Depth" in metadata.provenance["source"]

    images = torch.rand(1, 3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = their_decoder(states["depth.pth"], their_encoder(states["encoder.pth"], encoder, images))
        ours = checkpoint.depth_net(images, multiscale=True)
        assert torch.equal(checkpoint.depth_net(images), ours[0])  # eval default: scale 0 only
    for scale, (mine, theirs) in enumerate(zip(ours, expected)):
        assert mine.shape == theirs.shape == (1, 1, HEIGHT >> scale, WIDTH >> scale)
        assert theirs.std() > 0.02, "reference saturated: the comparison would prove nothing"
        torch.testing.assert_close(mine, theirs, rtol=0, atol=2e-5)
    if not pose:
        return

    earlier, later = torch.rand(2, 1, 3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        expected_rotation, expected_translation = their_pose(
            states["pose_encoder.pth"], states["pose.pth"], earlier, later
        )
        rotation, translation = checkpoint.pose_net(earlier, later)
    assert expected_rotation.abs().max() > 1e-3
    torch.testing.assert_close(rotation, expected_rotation, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(translation, expected_translation, rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def source_states(tmp_path_factory) -> dict:
    """One B0 authors'-layout state set (without pose) shared by the error tests."""
    return _write_folder(tmp_path_factory.mktemp("source"), "tf_efficientnet_b0", pose=False)


def _folder_with(tmp_path: Path, states: dict, file: str, change) -> Path:
    folder = tmp_path / "weights"
    folder.mkdir()
    for name, state in states.items():
        state = dict(state)
        if name == file:
            change(state)
        torch.save(state, folder / name)
    return folder


@pytest.mark.parametrize(
    ("file", "change", "named"),
    [
        ("depth.pth", lambda s: s.update({"simfpn1_0.down_conv.pointwise_conv.conv.bias": torch.zeros(32)}),
         "unknown tensors (1): simfpn1_0.down_conv.pointwise_conv.conv.bias"),
        ("encoder.pth", lambda s: s.pop("model._blocks.7._se_expand.bias"),
         "missing tensors (1): model._blocks.7._se_expand.bias"),
        ("depth.pth", lambda s: s.update({"attn_0.fc.0.weight": torch.zeros(4, 64)}),
         "wrong shape (1): attn_0.fc.0.weight: (4, 64), expected (2, 32)"),
    ],
    ids=["unknown", "missing", "wrong-shape"],
)
def test_mismatching_tensors_are_named(tmp_path, source_states, file, change, named):
    folder = _folder_with(tmp_path, source_states, file, change)
    with pytest.raises(WeightImportError) as error:
        import_authors_weights(folder)
    assert named in str(error.value)
    assert str(folder / file) in str(error.value)


def test_pickled_objects_are_refused(tmp_path, source_states):
    # An options object like the ones training scripts often save: needs full unpickling.
    options = argparse.Namespace(height=192)
    folder = _folder_with(tmp_path, source_states, "depth.pth", lambda s: s.update(options=options))
    with pytest.raises(WeightImportError, match="arbitrary code"):
        import_authors_weights(folder)


def test_input_size_and_encoder_options(tmp_path, source_states, capsys):
    folder = _folder_with(tmp_path, source_states, "encoder.pth", lambda s: [s.pop(k) for k in ("height", "width")])
    with pytest.raises(WeightImportError, match="--height and --width"):
        import_authors_weights(folder)
    with pytest.raises(WeightImportError, match="multiple of 32"):
        import_authors_weights(folder, height=100, width=320)
    with pytest.raises(WeightImportError, match="holds a tf_efficientnet_b0"):
        import_authors_weights(folder, encoder="tf_efficientnet_b1", height=96, width=320)

    output = tmp_path / "model.safetensors"
    args = ["import-weights", str(folder), "-o", str(output), "--height", "96", "--width", "320"]
    assert main(args) == 0
    metadata = load_checkpoint(output).metadata
    assert (metadata.height, metadata.width, metadata.pose_encoder) == (96, 320, None)
    assert main(args) == 2  # refuses to overwrite
    assert "--force" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0


def test_folder_problems_are_clear(tmp_path, source_states, capsys):
    assert main(["import-weights", str(tmp_path / "nowhere"), "-o", str(tmp_path / "out.safetensors")]) == 2
    assert "not a folder" in capsys.readouterr().err

    folder = _folder_with(tmp_path, source_states, "", None)
    (folder / "pose.pth").write_bytes(b"")
    with pytest.raises(WeightImportError, match="pose_encoder.pth"):
        import_authors_weights(folder)
    (folder / "pose.pth").unlink()
    (folder / "depth.pth").write_bytes(b"not a zip file")
    with pytest.raises(WeightImportError, match="not a readable PyTorch file"):
        import_authors_weights(folder)
    (folder / "depth.pth").unlink()
    with pytest.raises(WeightImportError, match="has no depth.pth; pass the folder holding encoder.pth and depth.pth"):
        import_authors_weights(folder)


def test_stereo_model_is_metric(tmp_path, source_states):
    folder = _folder_with(tmp_path, source_states, "encoder.pth", lambda s: s.update(use_stereo=True))
    metadata = import_authors_weights(folder).metadata
    assert metadata.metric and metadata.depth_scale == 5.4
