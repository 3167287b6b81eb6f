"""Pose network: ResNet-18 over two stacked frames -> axis-angle rotation and translation."""

from __future__ import annotations

import torch
from torch import nn

from .encoders import Pretrained, create_timm_encoder


POSE_INPUT_MEAN = 0.45
POSE_INPUT_STD = 0.225
"""Normalisation of the pose encoder's [0, 1] input: ``(x - 0.45) / 0.225``."""


class PoseNet(nn.Module):
    """Relative camera motion between two frames.

    A timm ResNet (6 input channels: two RGB frames stacked; with ImageNet weights timm
    repeats the first convolution for both frames and halves it) followed by the
    Monodepth2 pose decoder (input normalised by ``(x - 0.45) / 0.225``): 1x1 conv 512->256, two 3x3 convs 256->256 (ReLU after each),
    1x1 conv 256->6, spatial mean, times 0.01.

    Args:
        encoder: timm ResNet name (``resnet18`` as published).
        pretrained: ImageNet weights, see :func:`create_timm_encoder`.
    """

    def __init__(self, encoder: str = "resnet18", pretrained: Pretrained = False) -> None:
        super().__init__()
        self.encoder = create_timm_encoder(encoder, pretrained=pretrained, features_only=True, in_chans=6,
                                           out_indices=(-1,))
        channels = self.encoder.feature_info.channels()[-1]
        self.decoder = nn.Sequential(
            nn.Conv2d(channels, 256, 1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 6, 1),
        )

    def forward(self, earlier: torch.Tensor, later: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Motion from ``earlier`` to ``later``, both ``(B, 3, H, W)`` RGB in [0, 1] (H, W % 32 == 0).

        Always feed frames in temporal order; for a source frame before the target invert
        the transform (``pose_vector_to_transform(..., invert=True)``).

        Returns:
            ``axis_angle`` ``(B, 3)`` in radians and ``translation`` ``(B, 3)`` in the
            network's (scale-ambiguous) depth units.
        """
        if earlier.shape != later.shape or earlier.ndim != 4 or earlier.shape[1] != 3:
            raise ValueError(
                f"PoseNet expects two (B, 3, H, W) frames of equal shape, got {tuple(earlier.shape)} "
                f"and {tuple(later.shape)}"
            )
        # The recipe's ResNet pose encoder sees (x - 0.45) / 0.225, the statistics its ImageNet
        # weights expect; the authors' pose weights were trained that way too.
        stacked = (torch.cat([earlier, later], dim=1) - POSE_INPUT_MEAN) / POSE_INPUT_STD
        features = self.encoder(stacked)[-1]
        motion = 0.01 * self.decoder(features).mean(dim=(2, 3))
        return motion[:, :3], motion[:, 3:]

    def set_activation_checkpointing(self, enabled: bool = True) -> None:
        """Recompute the encoder's activations in backward instead of keeping them (timm's
        gradient checkpointing: only the outputs of its top-level layers are kept); outputs and
        gradients are unchanged. Wrap the backward pass in
        :func:`~dna_depth_core.networks.checkpointing.batch_norm_statistics_restored`.
        """
        self.encoder.set_grad_checkpointing(enabled)

    @torch.no_grad()
    def scale_translation_(self, factor: float) -> None:
        """Multiply every translation the network predicts by ``factor`` (> 0), in place.

        The translation is linear in the last convolution's translation outputs, so
        scaling their weights and biases changes its unit exactly and leaves the rotation
        alone (see :func:`dna_depth_core.training.calibration.consistent_translation_scale`).
        """
        if not factor > 0:
            raise ValueError(f"factor must be > 0, got {factor}")
        head = self.decoder[-1]
        head.weight[3:] *= factor
        head.bias[3:] *= factor
