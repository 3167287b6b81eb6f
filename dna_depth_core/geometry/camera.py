"""Pinhole camera: intrinsics, back-projection, projection and rigid transforms of point maps.

Conventions:

* Camera frame: x right, y down, z forward (optical axis). Points and depths are in metres
  or in the network's depth units; depth is the z coordinate (not the ray length).
* Pixels: ``u`` along the width (column), ``v`` along the height (row); pixel centres sit
  at integer coordinates, so an ``H x W`` image spans ``u`` in ``[-0.5, W - 0.5]`` and its
  first pixel centre is ``(0, 0)``.
* Intrinsics ``K`` are ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` in pixels for the image
  size in use; batched as ``(B, 3, 3)``.
* A transform ``(B, 4, 4)`` maps homogeneous points from one camera's coordinates to
  another's (see :mod:`dna_depth_core.geometry.pose`).
"""

from __future__ import annotations

import functools

import torch


def _check_intrinsics(intrinsics: torch.Tensor, batch: int) -> None:
    if intrinsics.shape != (batch, 3, 3):
        raise ValueError(f"intrinsics must have shape ({batch}, 3, 3), got {tuple(intrinsics.shape)}")


def _check_point_map(points: torch.Tensor) -> None:
    if points.ndim != 4 or points.shape[1] != 3:
        raise ValueError(f"points must have shape (B, 3, H, W), got {tuple(points.shape)}")


def scale_intrinsics(intrinsics: torch.Tensor, scale_x: float, scale_y: float) -> torch.Tensor:
    """Intrinsics of an image resized by ``(scale_x, scale_y)`` (new size / old size).

    Uses the pixel-centre convention of ``cv2.resize`` (and of ``F.interpolate`` with
    ``align_corners=False``): the image's outer edges stay aligned, so a point at pixel
    ``u`` moves to ``(u + 0.5) * scale_x - 0.5``. Hence ``fx' = fx * scale_x`` and
    ``cx' = (cx + 0.5) * scale_x - 0.5`` (likewise for y); skew scales with ``scale_x``.

    Args:
        intrinsics: ``(..., 3, 3)`` floating tensor, pixels of the original image.
        scale_x: width factor, new width / old width (> 0).
        scale_y: height factor, new height / old height (> 0).

    Returns:
        ``(..., 3, 3)`` intrinsics in pixels of the resized image, same dtype and device.
    """
    if intrinsics.ndim < 2 or intrinsics.shape[-2:] != (3, 3):
        raise ValueError(f"intrinsics must have shape (..., 3, 3), got {tuple(intrinsics.shape)}")
    if not (scale_x > 0 and scale_y > 0):
        raise ValueError(f"scale factors must be > 0, got scale_x={scale_x}, scale_y={scale_y}")
    resize = torch.tensor(
        [[scale_x, 0.0, 0.5 * (scale_x - 1.0)], [0.0, scale_y, 0.5 * (scale_y - 1.0)], [0.0, 0.0, 1.0]],
        dtype=intrinsics.dtype,
        device=intrinsics.device,
    )
    return resize @ intrinsics


def intrinsics_from_normalized(
    fx: float, fy: float, cx: float, cy: float, height: int, width: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Pixel intrinsics from image-size-normalised ones, as in the KITTI training recipe.

    Multiplies ``fx, cx`` by ``width`` and ``fy, cy`` by ``height`` (KITTI in the
    Monodepth2 recipe: ``fx=0.58, fy=1.92, cx=0.5, cy=0.5``). This treats the normalised
    principal point as measured from the image's outer corner, so ``cx=0.5`` gives
    ``W / 2``, half a pixel right of the centre ``(W - 1) / 2`` in this module's
    convention; it is kept literally because the published models were trained with it.

    Args:
        fx, fy: focal lengths as fractions of width and height.
        cx, cy: principal point as fractions of width and height.
        height, width: image size in pixels (> 0).
        dtype: floating dtype of the result.

    Returns:
        ``(3, 3)`` intrinsics in pixels.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got height={height}, width={width}")
    return torch.tensor(
        [[fx * width, 0.0, cx * width], [0.0, fy * height, cy * height], [0.0, 0.0, 1.0]], dtype=dtype
    )


@functools.lru_cache(maxsize=8)
def pixel_grid(height: int, width: int, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """Homogeneous pixel-centre coordinates ``(3, H * W)``: rows ``u``, ``v``, ``1``, row-major order.

    Built once per size, dtype and device and shared: do not modify the result in place.
    """
    # A normal tensor even when first asked for under inference mode, so that later
    # training steps can use the cached grid too.
    with torch.inference_mode(False):
        v, u = torch.meshgrid(
            torch.arange(height, dtype=dtype, device=device),
            torch.arange(width, dtype=dtype, device=device),
            indexing="ij",
        )
        return torch.stack([u.reshape(-1), v.reshape(-1), torch.ones_like(u).reshape(-1)])


def pixel_rays(intrinsics: torch.Tensor, height: int, width: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The ray ``K^-1 [u, v, 1]`` of every pixel: the point at depth 1 it sees.

    Compute it once when back-projecting several depth maps with the same intrinsics
    (the training loss: one per output scale) and pass it to :func:`backproject`.

    Args:
        intrinsics: ``(B, 3, 3)`` in pixels of this ``H x W`` image.
        height, width: image size in pixels.
        dtype: floating dtype of the rays; ``None`` keeps the intrinsics' dtype.

    Returns:
        ``(B, 3, H, W)`` rays ``(x / z, y / z, 1)`` in the camera frame.
    """
    if intrinsics.ndim != 3 or intrinsics.shape[1:] != (3, 3):
        raise ValueError(f"intrinsics must have shape (B, 3, 3), got {tuple(intrinsics.shape)}")
    dtype = dtype or intrinsics.dtype
    grid = pixel_grid(height, width, dtype, intrinsics.device)
    return (torch.linalg.inv(intrinsics.to(dtype)) @ grid).view(intrinsics.shape[0], 3, height, width)


def backproject(depth: torch.Tensor, intrinsics: torch.Tensor, rays: torch.Tensor | None = None) -> torch.Tensor:
    """Lift every pixel to a 3D point in the camera frame: ``depth * K^-1 [u, v, 1]``.

    Args:
        depth: ``(B, 1, H, W)`` z-depth per pixel, metres or network depth units.
        intrinsics: ``(B, 3, 3)`` in pixels of this ``H x W`` image.
        rays: :func:`pixel_rays` of these intrinsics, if already computed.

    Returns:
        ``(B, 3, H, W)`` points ``(x, y, z)`` in the camera frame, same units as ``depth``.
    """
    if depth.ndim != 4 or depth.shape[1] != 1:
        raise ValueError(f"depth must have shape (B, 1, H, W), got {tuple(depth.shape)}")
    batch, _, height, width = depth.shape
    _check_intrinsics(intrinsics, batch)
    if rays is None:
        rays = pixel_rays(intrinsics, height, width, depth.dtype)
    elif rays.shape != (batch, 3, height, width):
        raise ValueError(f"rays must have shape ({batch}, 3, {height}, {width}), got {tuple(rays.shape)}")
    return rays * depth


def project(points: torch.Tensor, intrinsics: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Pinhole projection of a point map to pixel coordinates.

    Args:
        points: ``(B, 3, H, W)`` points in the camera frame.
        intrinsics: ``(B, 3, 3)`` in pixels of the image projected into.
        eps: depths below ``eps`` are clamped to ``eps`` before dividing, so points at or
            behind the camera give finite (meaningless) pixels; callers mask them out by
            ``z > eps`` (as :func:`~dna_depth_core.geometry.warp.warp_to_target` does).

    Returns:
        ``(B, H, W, 2)`` pixel coordinates ``(u, v)`` (pixel centres at integers).
    """
    _check_point_map(points)
    batch, _, height, width = points.shape
    _check_intrinsics(intrinsics, batch)
    homogeneous = intrinsics.to(points.dtype) @ points.reshape(batch, 3, -1)
    pixels = homogeneous[:, :2] / homogeneous[:, 2:].clamp(min=eps)
    return pixels.view(batch, 2, height, width).permute(0, 2, 3, 1)


def transform_points(points: torch.Tensor, transform: torch.Tensor) -> torch.Tensor:
    """Apply a rigid transform to a point map: ``R p + t``.

    Args:
        points: ``(B, 3, H, W)`` points in camera ``a`` coordinates.
        transform: ``(B, 4, 4)`` ``a_to_b`` transform (last row ``[0, 0, 0, 1]``).

    Returns:
        ``(B, 3, H, W)`` the same points in camera ``b`` coordinates.
    """
    _check_point_map(points)
    batch, _, height, width = points.shape
    if transform.shape != (batch, 4, 4):
        raise ValueError(f"transform must have shape ({batch}, 4, 4), got {tuple(transform.shape)}")
    transform = transform.to(points.dtype)
    moved = transform[:, :3, :3] @ points.reshape(batch, 3, -1) + transform[:, :3, 3:]
    return moved.view(batch, 3, height, width)
