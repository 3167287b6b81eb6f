"""timm feature-pyramid encoders with local or hub ImageNet weights."""

from __future__ import annotations

from pathlib import Path

import timm
from torch import nn

Pretrained = bool | str | Path
"""``False`` (random init), ``True`` (timm's hub weights) or a path to a local weight file."""


def create_timm_encoder(name: str, pretrained: Pretrained = False, **kwargs) -> nn.Module:
    """Create a timm model, loading ImageNet weights from the hub or a local file.

    Args:
        name: any timm model name, e.g. ``"tf_efficientnet_b0"`` or ``"resnet18"``.
        pretrained: ``False`` for random initialisation; ``True`` for timm's own
            download (needs internet); a path to a ``.safetensors``/``.pth``/``.bin`` file
            holding timm's ImageNet weights for ``name`` (classifier keys are dropped by
            timm, and ``in_chans`` adaptation applies as for hub weights).
        **kwargs: passed to :func:`timm.create_model` (``features_only``, ``in_chans``...).

    Raises:
        ValueError: unknown model name.
        FileNotFoundError: ``pretrained`` names a file that does not exist.
        RuntimeError: hub weights could not be fetched (offline), with what to do instead.
    """
    if not timm.is_model(name):
        raise ValueError(f"unknown timm encoder {name!r}; see timm.list_models() for valid names")
    if pretrained is False or pretrained is None:
        return timm.create_model(name, pretrained=False, **kwargs)
    if pretrained is True:
        try:
            return timm.create_model(name, pretrained=True, **kwargs)
        except Exception as error:  # network failures surface as many different types
            raise RuntimeError(
                f"could not download ImageNet weights for {name!r} ({type(error).__name__}: {error}). "
                "Without internet, pass pretrained='path/to/weights.safetensors' (timm's weights "
                "for this model, copied from a machine with internet), or pretrained=False for "
                "random initialisation."
            ) from None
    path = Path(pretrained)
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained weight file {str(path)!r} does not exist; pass an existing timm weight "
            "file, pretrained=True (download, needs internet) or pretrained=False"
        )
    return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs)
