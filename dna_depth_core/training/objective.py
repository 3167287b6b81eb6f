"""The training objective of one batch: networks forward, poses, self-supervised (+ speed, + pose) loss."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from ..geometry import pose_vector_to_transform
from ..losses import SelfSupervisedLossConfig, SelfSupervisedLossOutput, self_supervised_loss
from .config import TrueMotionConfig


@dataclass
class ObjectiveOutput:
    """Losses and predictions of one batch.

    Attributes:
        total: scalar to minimise: self-supervised total + ``speed_weight * speed`` +
            ``true_motion.pose_weight * pose``.
        loss: the self-supervised loss terms (photometric, smoothness, auto-mask...).
        speed: scalar L1 error (metres) between predicted and true travelled distance, or
            ``None`` without speed supervision.
        pose: scalar :func:`pose_loss` against the true motion, or ``None`` without pose
            supervision.
        disparities: the depth network's four ``(B, 1, H/2^s, W/2^s)`` float32 disparities.
        translations: ``(B, 2, 3)`` target-to-source translations for (t-1, t+1), network
            depth units (metres with speed supervision).
    """

    total: torch.Tensor
    loss: SelfSupervisedLossOutput
    speed: torch.Tensor | None
    disparities: list[torch.Tensor]
    translations: torch.Tensor
    pose: torch.Tensor | None = None


def predict_target_to_source(
    pose_net: nn.Module, network_frames: torch.Tensor
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Target-to-source transforms for both sources from one pose-network call.

    The pose network sees each pair in temporal order, (t-1, t) and (t, t+1), stacked into
    one ``2B`` batch; the (t-1, t) motion is inverted to map target points to t-1.

    Args:
        pose_net: :class:`~dna_depth_core.networks.PoseNet` (possibly DDP-wrapped).
        network_frames: ``(B, 3, 3, H, W)`` [t-1, t, t+1] network inputs (augmented).

    Returns:
        ``[target_to_prev, target_to_next]`` as two ``(B, 4, 4)`` float32 transforms, and
        ``(B, 2, 3)`` translations of the two pose-network outputs (their lengths are the
        distances travelled between the frames of each pair).
    """
    previous, target, following = network_frames.unbind(dim=1)
    axis_angle, translation = pose_net(torch.cat([previous, target]), torch.cat([target, following]))
    axis_angle, translation = axis_angle.float(), translation.float()
    batch = network_frames.shape[0]
    to_previous = pose_vector_to_transform(axis_angle[:batch], translation[:batch], invert=True)
    to_next = pose_vector_to_transform(axis_angle[batch:], translation[batch:])
    return [to_previous, to_next], torch.stack([translation[:batch], translation[batch:]], dim=1)


def speed_loss(translations: torch.Tensor, source_distance: torch.Tensor) -> torch.Tensor:
    """Mean L1 error between predicted and true camera travel.

    Args:
        translations: ``(B, 2, 3)`` pose-network translations for the (t-1, t) and
            (t, t+1) pairs.
        source_distance: ``(B, 2)`` metres travelled between the target and t-1 / t+1.

    Returns:
        Scalar, metres.
    """
    if source_distance.shape != translations.shape[:2]:
        raise ValueError(
            f"source_distance must have shape {tuple(translations.shape[:2])} (B, 2), "
            f"got {tuple(source_distance.shape)}"
        )
    return (translations.norm(dim=-1) - source_distance.to(translations.dtype)).abs().mean()


def mirror_transforms(target_to_source: torch.Tensor, flipped: torch.Tensor) -> torch.Tensor:
    """The rigid transforms of horizontally mirrored samples: ``M T M`` with ``M = diag(-1, 1, 1, 1)``.

    A left-right flip of every frame mirrors the camera's x axis, so the motion that
    relates the flipped frames is the true motion seen in a mirror.

    Args:
        target_to_source: ``(B, S, 4, 4)`` transforms.
        flipped: ``(B,)`` bool, which samples were mirrored.

    Returns:
        ``(B, S, 4, 4)``, mirrored where ``flipped``.
    """
    mirror = torch.ones(4, dtype=target_to_source.dtype, device=target_to_source.device)
    mirror[0] = -1.0
    mirrored = target_to_source * mirror.view(4, 1) * mirror.view(1, 4)
    return torch.where(flipped.to(target_to_source.device).view(-1, 1, 1, 1), mirrored, target_to_source)


def pose_loss(predicted: torch.Tensor, true: torch.Tensor, rotation_weight: float = 10.0,
              min_distance: float = 0.02) -> torch.Tensor:
    """Error of estimated target-to-source transforms against the true ones.

    Per source: the L1 norm of the translation error divided by
    ``max(true distance, min_distance)`` (so a robot moving 0.1 m per frame is held to the
    same relative precision as a car moving 1 m), plus ``rotation_weight`` times the
    rotation error ``0.5 * sum |R_pred - R_true|`` (for small errors, the L1 norm of the
    axis-angle error in radians). Zero exactly when the transforms agree.

    Args:
        predicted: ``(B, S, 4, 4)`` rigid transforms, translations in metres.
        true: ``(B, S, 4, 4)`` the same, true.
        rotation_weight: weight of the rotation error.
        min_distance: metres.

    Returns:
        Scalar, mean over samples and sources.
    """
    if predicted.shape != true.shape or predicted.shape[-2:] != (4, 4):
        raise ValueError(f"need two (B, S, 4, 4) transforms of one shape, got {tuple(predicted.shape)} "
                         f"and {tuple(true.shape)}")
    true = true.to(predicted.dtype)
    distance = true[..., :3, 3].norm(dim=-1).clamp_min(min_distance)
    translation = (predicted[..., :3, 3] - true[..., :3, 3]).abs().sum(dim=-1) / distance
    rotation = 0.5 * (predicted[..., :3, :3] - true[..., :3, :3]).abs().sum(dim=(-2, -1))
    return (translation + rotation_weight * rotation).mean()


def compute_objective(
    depth_net: nn.Module,
    pose_net: nn.Module,
    frames: torch.Tensor,
    network_frames: torch.Tensor,
    intrinsics: torch.Tensor,
    loss_config: SelfSupervisedLossConfig,
    speed_weight: float = 0.0,
    source_distance: torch.Tensor | None = None,
    autocast: bool = False,
    memory_format: torch.memory_format = torch.contiguous_format,
    true_motion: TrueMotionConfig | None = None,
    true_target_to_source: torch.Tensor | None = None,
) -> ObjectiveOutput:
    """Run both networks on a batch and compute the loss.

    The networks may run under float16 autocast (CUDA); poses, warping and losses are
    always computed in float32.

    Args:
        depth_net: depth network (multi-scale output is requested explicitly, so it works
            in train and eval mode).
        pose_net: pose network.
        frames: ``(B, 3, 3, H, W)`` [t-1, t, t+1] RGB in [0, 1] the loss compares.
        network_frames: the same frames as the networks see them (colour-jittered).
        intrinsics: ``(B, 3, 3)`` pixels.
        loss_config: self-supervised loss weights and depth range.
        speed_weight: weight of :func:`speed_loss` (0 disables it).
        source_distance: ``(B, 2)`` metres, required when ``speed_weight > 0``.
        autocast: run the networks under CUDA float16 autocast.
        memory_format: memory format for the network inputs.
        true_motion: with ``warp`` the photometric loss warps with
            ``true_target_to_source`` instead of the pose network's estimates; with
            ``pose_weight > 0`` the estimates are supervised on it (:func:`pose_loss`).
            ``None``: neither.
        true_target_to_source: ``(B, 2, 4, 4)`` true transforms (metres) of the frames as
            the loss sees them (mirrored for flipped samples, :func:`mirror_transforms`),
            required when ``true_motion`` is enabled.
    """
    if speed_weight > 0 and source_distance is None:
        raise ValueError("speed_weight > 0 needs source_distance (B, 2) in metres")
    true_motion = true_motion or TrueMotionConfig()
    if true_motion.enabled and true_target_to_source is None:
        raise ValueError("true_motion.warp or pose_weight > 0 needs true_target_to_source (B, 2, 4, 4)")
    context = torch.autocast("cuda", dtype=torch.float16) if autocast else nullcontext()
    with context:
        target = network_frames[:, 1].contiguous(memory_format=memory_format)
        disparities = [d.float() for d in depth_net(target, multiscale=True)]
        target_to_source, translations = predict_target_to_source(pose_net, network_frames)
    warp_with = target_to_source
    if true_motion.warp:
        warp_with = list(true_target_to_source.to(frames.dtype).unbind(dim=1))
    loss = self_supervised_loss(disparities, frames, warp_with, intrinsics, loss_config)
    total = loss.total
    speed = pose = None
    if speed_weight > 0:
        speed = speed_loss(translations, source_distance)
        total = total + speed_weight * speed
    if true_motion.pose_weight > 0:
        pose = pose_loss(torch.stack(target_to_source, dim=1), true_target_to_source,
                         true_motion.rotation_weight, true_motion.min_distance)
        total = total + true_motion.pose_weight * pose
    return ObjectiveOutput(total=total, loss=loss, speed=speed, disparities=disparities, translations=translations,
                           pose=pose)
