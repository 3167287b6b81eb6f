"""Camera frames for the network, without ROS: one contract from recorded bag to live node.

- :mod:`.encodings`: the one table of image encodings; decoding Image/CompressedImage
  message objects (rclpy or rosbags) to uint8 RGB.
- :mod:`.calibration`: :class:`CameraCalibration` from a CameraInfo or a calibration
  YAML file, with the one binning/ROI policy.
- :mod:`.preparation`: :class:`FramePlan` (rectify, crop, resize, intrinsics, and the
  way back to the camera image) and the checkpoint's :class:`FramePreparation` record.
- :mod:`.network_size`: :func:`pick_network_size`, the network input for a camera.
"""

from .calibration import CalibrationError, CalibrationMismatchError, CameraCalibration
from .encodings import ENCODINGS, ImageDecodeError, decode_image_message
from .network_size import pick_network_size
from .preparation import (
    FramePlan,
    FramePreparation,
    PreparationWarning,
    is_rectified_topic,
    plan_for_checkpoint,
    plan_training_frames,
)

__all__ = [
    "ENCODINGS",
    "CalibrationError",
    "CalibrationMismatchError",
    "CameraCalibration",
    "FramePlan",
    "FramePreparation",
    "ImageDecodeError",
    "PreparationWarning",
    "decode_image_message",
    "is_rectified_topic",
    "pick_network_size",
    "plan_for_checkpoint",
    "plan_training_frames",
]
