"""Organised ``sensor_msgs/PointCloud2`` from a depth image, with per-size rays precomputed
and the per-frame buffers reused."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import torch
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from dna_depth_core.geometry import pixel_rays

from .camera_model import PinholeIntrinsics
from .conversions import ReusedBuffer, message_with_data

XYZ_FIELDS = [
    PointField(name=axis, offset=4 * index, datatype=PointField.FLOAT32, count=1) for index, axis in enumerate("xyz")
]
RGB_FIELD = PointField(name="rgb", offset=12, datatype=PointField.FLOAT32, count=1)
"""PCL's packed colour: a float32 whose bytes are B, G, R, A in memory (0xAARRGGBB as a
little-endian uint32), the layout RViz's RGB8 colour transformer reads."""


class PointCloudBuilder:
    """Back-projects depth images of one size and one set of intrinsics into organised clouds.

    The cloud keeps the image layout: point ``(row, col)`` comes from pixel
    ``(v, u) = (row * stride, col * stride)``, so it has ``ceil(H / stride)`` rows of
    ``ceil(W / stride)`` points. Each point is ``x = (u - cx) / fx * z``,
    ``y = (v - cy) / fy * z``, ``z`` = depth (metres, optical frame: x right, y down,
    z forward), float32, plus a packed ``rgb`` field when colours are given. Pixels
    without depth (NaN) give NaN points, so the cloud is never dense (``is_dense`` false).

    Args:
        image_size: ``(H, W)`` of the depth images, pixels.
        intrinsics: pinhole intrinsics of those images.
        stride: keep every ``stride``-th row and column (>= 1).
        with_rgb: add the ``rgb`` field (point step 16 bytes instead of 12).
    """

    def __init__(self, image_size: tuple[int, int], intrinsics: PinholeIntrinsics, stride: int, with_rgb: bool) -> None:
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        height, width = image_size
        self.image_size = (height, width)
        self.intrinsics = intrinsics
        self.stride = stride
        self.with_rgb = with_rgb
        camera_matrix = torch.tensor(
            [[intrinsics.fx, 0.0, intrinsics.cx], [0.0, intrinsics.fy, intrinsics.cy], [0.0, 0.0, 1.0]],
            dtype=torch.float64,
        )
        # Rays through the kept pixels at unit depth, x/z and y/z, as whole contiguous maps:
        # contiguous products are several times faster than broadcasting into the interleaved cloud.
        rays = pixel_rays(camera_matrix[None], height, width, torch.float32)[0, :2, ::stride, ::stride].numpy()
        self._ray_x, self._ray_y = (np.ascontiguousarray(ray) for ray in rays)
        shape = self._ray_x.shape
        # Per-frame work space, written in place (fresh 4-15 MB arrays would cost page faults).
        self._x, self._y = np.empty(shape, np.float32), np.empty(shape, np.float32)
        self._z = np.empty(shape, np.float32) if stride > 1 else None
        self._packed_rgb = np.empty(shape + (4,), np.uint8) if with_rgb else None
        self._cloud = ReusedBuffer()
        self.fields = XYZ_FIELDS + [RGB_FIELD] if with_rgb else list(XYZ_FIELDS)

    def matches(self, image_size: tuple[int, int], intrinsics: PinholeIntrinsics, stride: int, with_rgb: bool) -> bool:
        """Whether this builder serves depth images of this size, intrinsics and settings."""
        return (self.image_size, self.intrinsics, self.stride, self.with_rgb) == (
            tuple(image_size),
            intrinsics,
            stride,
            with_rgb,
        )

    def build(self, depth: np.ndarray, header: Header, rgb: np.ndarray | None = None) -> PointCloud2:
        """The cloud of one depth image.

        Args:
            depth: float32 ``(H, W)`` depth in metres along the optical axis, NaN where invalid.
            header: stamp and optical frame of the depth image, reused as is.
            rgb: uint8 ``(H, W, 3)`` RGB colours of the same pixels; required when the
                builder was made ``with_rgb``.
        """
        if depth.shape != self.image_size:
            raise ValueError(f"depth must be {self.image_size}, got {depth.shape}")
        stride = self.stride
        z = depth
        if self._z is not None:
            z = self._z
            np.copyto(z, depth[::stride, ::stride])
        channels = [cv2.multiply(z, self._ray_x, dst=self._x), cv2.multiply(z, self._ray_y, dst=self._y), z]
        if self.with_rgb:
            if rgb is None or rgb.shape[:2] != self.image_size:
                raise ValueError(f"rgb must be a uint8 {self.image_size + (3,)} image when the cloud has colour")
            # The packed colour's four bytes, B G R A, reinterpreted as the float32 channel.
            cv2.cvtColor(rgb[::stride, ::stride], cv2.COLOR_RGB2BGRA, dst=self._packed_rgb)
            channels.append(self._packed_rgb.view(np.float32)[..., 0])
        points = self._cloud.take(z.shape + (len(channels),), np.float32)
        cv2.merge(channels, dst=points)  # (rows, columns, values): one interleaving pass
        rows, columns, values = points.shape
        return message_with_data(
            PointCloud2, points, header=header, height=rows, width=columns, fields=self.fields,
            is_bigendian=sys.byteorder == "big", point_step=4 * values, row_step=4 * values * columns, is_dense=False,
        )
