"""Pinhole intrinsics from ``sensor_msgs/CameraInfo``, and camera info for a resized image.

Conventions (REP 104, ``image_geometry``): the projection matrix P is the intrinsics of
the (rectified) image and is preferred; K is the fallback when P is all zeros. K and P
are given at the camera's full resolution; ``roi`` (offsets in full-resolution pixels)
and ``binning`` map them onto the published image: ``f_image = f / binning`` and
``c_image = (c - roi_offset) / binning``.

Resizing an image by ``(scale_x, scale_y)`` multiplies focal lengths, principal point,
skew, P's translation column, ``width``/``height`` and ``roi`` by the scale, as
``image_proc``'s resize node does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sensor_msgs.msg import CameraInfo, RegionOfInterest

from .bad_input import BadInput


@dataclass(frozen=True)
class PinholeIntrinsics:
    """Focal lengths and principal point of one image, in its own pixels.

    A pixel ``(u, v)`` (column, row; pixel centres at integers) with depth ``z`` metres
    along the optical axis is the point ``((u - cx) / fx * z, (v - cy) / fy * z, z)`` in
    the optical frame (x right, y down, z forward).
    """

    fx: float
    fy: float
    cx: float
    cy: float


@dataclass(frozen=True)
class CameraModel:
    """A validated camera info: the message, the image intrinsics, and the image size it fits.

    Attributes:
        info: the message as received.
        intrinsics: intrinsics of the image the message describes (roi and binning applied).
        image_size: ``(height, width)`` in pixels of that image, or ``None`` when the message
            leaves the resolution unset (``width``/``height`` zero).
    """

    info: CameraInfo
    intrinsics: PinholeIntrinsics
    image_size: tuple[int, int] | None

    @classmethod
    def from_info(cls, info: CameraInfo) -> CameraModel:
        """Validate ``info`` and derive the image intrinsics.

        Raises:
            BadInput: kind ``invalid_camera_info`` when neither P nor K gives positive,
                finite focal lengths and a finite principal point.
        """
        projection = [float(value) for value in info.p]
        if any(projection):
            fx, fy, cx, cy, source = projection[0], projection[5], projection[2], projection[6], "P"
        else:
            camera = [float(value) for value in info.k]
            fx, fy, cx, cy, source = camera[0], camera[4], camera[2], camera[5], "K"
        if not all(math.isfinite(value) for value in (fx, fy, cx, cy)) or fx <= 0 or fy <= 0:
            raise BadInput(
                "invalid_camera_info",
                f"camera_info has no usable intrinsics ({source}: fx={fx}, fy={fy}, cx={cx}, cy={cy}); "
                "focal lengths must be positive: calibrate the camera or fix its driver",
            )
        binning_x, binning_y = max(info.binning_x, 1), max(info.binning_y, 1)
        intrinsics = PinholeIntrinsics(
            fx=fx / binning_x,
            fy=fy / binning_y,
            cx=(cx - info.roi.x_offset) / binning_x,
            cy=(cy - info.roi.y_offset) / binning_y,
        )
        full_width = info.roi.width or info.width
        full_height = info.roi.height or info.height
        image_size = (full_height // binning_y, full_width // binning_x) if full_width and full_height else None
        return cls(info=info, intrinsics=intrinsics, image_size=image_size)


def scale_camera_info(info: CameraInfo, scale_x: float, scale_y: float) -> CameraInfo:
    """Camera info of an image resized by ``(scale_x, scale_y)`` (new size / old size).

    K, P, ``width``, ``height`` and ``roi`` are scaled consistently; distortion,
    rectification R and binning are unchanged. When P is all zeros it is filled with
    ``[K' | 0]`` so consumers that read P (``image_geometry``, ``depth_image_proc``) work.
    The header is copied; callers set the stamp of the image it goes with.
    """
    if not (scale_x > 0 and scale_y > 0):
        raise ValueError(f"scales must be positive, got ({scale_x}, {scale_y})")
    k = [float(value) for value in info.k]
    for index in (0, 1, 2):
        k[index] *= scale_x
    for index in (4, 5):
        k[index] *= scale_y
    p = [float(value) for value in info.p]
    if any(p):
        for index in (0, 1, 2, 3):
            p[index] *= scale_x
        for index in (5, 6, 7):
            p[index] *= scale_y
    else:
        p = k[0:3] + [0.0] + k[3:6] + [0.0] + k[6:9] + [0.0]
    roi = info.roi
    return CameraInfo(
        header=info.header,
        height=round(info.height * scale_y),
        width=round(info.width * scale_x),
        distortion_model=info.distortion_model,
        d=list(info.d),
        k=k,
        r=list(info.r),
        p=p,
        binning_x=info.binning_x,
        binning_y=info.binning_y,
        roi=RegionOfInterest(
            x_offset=round(roi.x_offset * scale_x),
            y_offset=round(roi.y_offset * scale_y),
            width=round(roi.width * scale_x),
            height=round(roi.height * scale_y),
            do_rectify=roi.do_rectify,
        ),
    )
