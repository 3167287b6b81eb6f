"""The camera's calibration from a bag's CameraInfo topic."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dna_depth_core.data.camera.calibration import CalibrationError, CameraCalibration

if TYPE_CHECKING:  # the reader imports this module to offer its functions
    from .reader import RecordedBag


def read_calibration(bag: RecordedBag, topic: str) -> CameraCalibration:
    """The first usable CameraInfo on ``topic`` (drivers may publish uncalibrated ones first).

    Raises:
        CalibrationError: no message on the topic, or none is usable (zero K and P, invalid
            focal lengths).
    """
    last_error = None
    for message in bag.messages([topic]):
        try:
            return CameraCalibration.from_camera_info(message.deserialize(), f"camera info on {topic}")
        except CalibrationError as error:
            last_error = error
    if last_error is not None:
        raise last_error
    raise CalibrationError(f"camera info topic {topic} in {str(bag.path)!r} has no messages")
