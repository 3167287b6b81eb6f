"""Rigid camera motion: axis-angle rotations and 4x4 transforms.

Conventions:

* Camera frame: x right, y down, z forward (optical axis); translations in metres or in
  the network's (scale-ambiguous) depth units.
* A transform ``T`` ``(B, 4, 4)`` maps homogeneous points: ``p_b = T @ p_a`` takes a point
  expressed in camera ``a`` coordinates to camera ``b`` coordinates. The name says the
  direction, e.g. ``target_to_source``.
* :class:`~dna_depth_core.networks.PoseNet` is always fed ``(earlier, later)`` in temporal
  order, and its ``(axis_angle, translation)`` read as ``earlier_to_later``: it maps points
  from the earlier camera to the later camera. Hence, for a target frame ``t``:

  - source ``t+1``: ``pose_vector_to_transform(*pose_net(target, next))`` is
    ``target_to_next``, i.e. ``target_to_source``;
  - source ``t-1``: ``pose_vector_to_transform(*pose_net(prev, target), invert=True)`` is
    the inverse of ``prev_to_target``, i.e. ``target_to_source`` as well.
"""

from __future__ import annotations

import torch

# Below this squared angle (rad^2) the Rodrigues coefficients use their Taylor series
# (truncation error < 1e-14) so the square root, whose gradient is infinite at 0, is never
# evaluated there.
_SMALL_ANGLE_SQUARED = 1e-6


def _check_vectors(name: str, vectors: torch.Tensor) -> None:
    if vectors.ndim != 2 or vectors.shape[1] != 3:
        raise ValueError(f"{name} must have shape (B, 3), got {tuple(vectors.shape)}")


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices from axis-angle vectors (Rodrigues' formula).

    The vector's direction is the rotation axis and its norm the angle in radians
    (right-hand rule). Values and gradients are finite at and near the zero rotation.

    Args:
        axis_angle: ``(B, 3)`` floating tensor, radians.

    Returns:
        ``(B, 3, 3)`` rotation matrices, same dtype and device; ``R @ v`` rotates ``v``.
    """
    _check_vectors("axis_angle", axis_angle)
    angle_squared = (axis_angle * axis_angle).sum(dim=1)
    small = angle_squared < _SMALL_ANGLE_SQUARED
    angle = torch.where(small, torch.ones_like(angle_squared), angle_squared).sqrt()
    # R = I + a [w]x + b [w]x^2 with a = sin(t)/t and b = (1 - cos t)/t^2 written as
    # 2 sin^2(t/2)/t^2, which avoids the cancellation of 1 - cos t in float32.
    sin_coefficient = torch.where(small, 1.0 - angle_squared / 6.0, torch.sin(angle) / angle)
    cos_coefficient = torch.where(
        small, 0.5 - angle_squared / 24.0, 2.0 * torch.sin(0.5 * angle) ** 2 / (angle * angle)
    )

    x, y, z = axis_angle.unbind(dim=1)
    zero = torch.zeros_like(x)
    cross = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=1).view(-1, 3, 3)
    identity = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(cross)
    return (
        identity
        + sin_coefficient[:, None, None] * cross
        + cos_coefficient[:, None, None] * (cross @ cross)
    )


def pose_vector_to_transform(
    axis_angle: torch.Tensor, translation: torch.Tensor, invert: bool = False
) -> torch.Tensor:
    """4x4 rigid transforms from a rotation vector and a translation.

    Args:
        axis_angle: ``(B, 3)`` rotation, radians (see :func:`axis_angle_to_matrix`).
        translation: ``(B, 3)`` translation, metres or network depth units.
        invert: if False return ``[R | t]`` (``p' = R p + t``); if True return its exact
            inverse ``[R^T | -R^T t]``. See the module docstring for which one the trainer
            uses for each source frame.

    Returns:
        ``(B, 4, 4)`` transforms, same dtype and device as ``axis_angle``.
    """
    _check_vectors("axis_angle", axis_angle)
    _check_vectors("translation", translation)
    if translation.shape[0] != axis_angle.shape[0]:
        raise ValueError(
            f"axis_angle and translation need the same batch size, got {axis_angle.shape[0]} "
            f"and {translation.shape[0]}"
        )
    rotation = axis_angle_to_matrix(axis_angle)
    translation = translation.to(rotation.dtype)
    if invert:
        rotation = rotation.transpose(1, 2)
        translation = -(rotation @ translation.unsqueeze(-1)).squeeze(-1)
    batch = axis_angle.shape[0]
    bottom = torch.zeros(batch, 1, 4, dtype=rotation.dtype, device=rotation.device)
    bottom[:, 0, 3] = 1.0
    top = torch.cat([rotation, translation.unsqueeze(-1)], dim=2)
    return torch.cat([top, bottom], dim=1)
