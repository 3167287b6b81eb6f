"""Networks: the DNA-Depth depth network, its pose network and a name registry (timm style)."""

from __future__ import annotations

from dataclasses import replace

from .depth_net import INPUT_DIVISOR, NUM_SCALES, DepthNet, DepthNetConfig, DNADecoder, check_image_batch
from .encoders import Pretrained, create_timm_encoder
from .pose_net import PoseNet

DEPTH_NET_PRESETS: dict[str, DepthNetConfig] = {
    "dna_depth_b0": DepthNetConfig(encoder="tf_efficientnet_b0"),
    "dna_depth_b1": DepthNetConfig(encoder="tf_efficientnet_b1"),
}
"""Published variants by name; any timm EfficientNet can also be named through ``encoder``."""


def list_depth_nets() -> list[str]:
    """Names accepted by :func:`create_depth_net`."""
    return sorted(DEPTH_NET_PRESETS)


def create_depth_net(name: str = "dna_depth_b0", pretrained: Pretrained = False, **overrides) -> DepthNet:
    """Build a registered DNA-Depth variant, e.g. ``create_depth_net("dna_depth_b1")``.

    ``overrides`` replace fields of the preset's :class:`DepthNetConfig`
    (``encoder="efficientnet_b0"``, ``input_mean=(0.485, 0.456, 0.406)``...).
    """
    if name not in DEPTH_NET_PRESETS:
        raise ValueError(f"unknown depth network {name!r}; choose one of {list_depth_nets()}")
    return DepthNet(replace(DEPTH_NET_PRESETS[name], **overrides), pretrained=pretrained)


__all__ = [
    "DEPTH_NET_PRESETS", "INPUT_DIVISOR", "NUM_SCALES", "DNADecoder", "DepthNet", "DepthNetConfig", "PoseNet",
    "Pretrained", "check_image_batch", "create_depth_net", "create_timm_encoder", "list_depth_nets",
]
