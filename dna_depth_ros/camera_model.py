"""Camera info in and out of the node: the core calibration from a message, and the depth image's camera info.

The calibration policy (P preferred over K, binning and ROI, validity) is the core's
(:class:`dna_depth_core.data.camera.calibration.CameraCalibration`), shared with bag
fine-tuning; this module only turns its errors into the node's bad-input kinds and builds
``sensor_msgs/CameraInfo`` messages.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

from dna_depth_core.data.camera.calibration import CalibrationError, CameraCalibration

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

    @classmethod
    def from_projection(cls, projection: np.ndarray) -> PinholeIntrinsics:
        """The intrinsics of a ``(3, 4)`` (or ``(3, 3)``) projection matrix."""
        return cls(float(projection[0, 0]), float(projection[1, 1]), float(projection[0, 2]), float(projection[1, 2]))


def calibration_from_message(info: CameraInfo, topic: str) -> CameraCalibration:
    """The core calibration of a received camera info (``topic`` names it in messages).

    Raises:
        BadInput: kind ``invalid_camera_info`` when it is uncalibrated or invalid.
    """
    try:
        return CameraCalibration.from_camera_info(info, f"camera info on {topic}")
    except CalibrationError as error:
        raise BadInput("invalid_camera_info", str(error)) from None


def depth_camera_info(projection: np.ndarray, image_size: tuple[int, int], header: Header) -> CameraInfo:
    """Camera info of a depth image: the pinhole camera ``projection`` ((3, 4), pixels of the
    ``image_size = (height, width)`` depth image), no distortion, identity R, no binning or ROI.

    The depth image is what the network saw, rectified, so consumers that read P
    (``image_geometry``, ``depth_image_proc``) or K get the same camera.
    """
    height, width = image_size
    projection = np.asarray(projection, dtype=np.float64).reshape(3, 4)
    return CameraInfo(
        header=header,
        height=int(height),
        width=int(width),
        distortion_model="plumb_bob",
        d=[0.0] * 5,
        k=projection[:, :3].reshape(-1).tolist(),
        r=np.eye(3).reshape(-1).tolist(),
        p=projection.reshape(-1).tolist(),
    )
