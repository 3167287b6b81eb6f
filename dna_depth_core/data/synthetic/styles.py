"""Every synthetic scene style by name, and the one way to configure any of them.

``street`` and ``corridor`` (:mod:`.config`, pinhole cameras), ``robot`` (:mod:`.robot`, a
ground robot's distorted camera in furnished rooms) and ``warehouse`` (:mod:`.warehouse`,
the same robot in a warehouse aisle; held out of every training recipe)
are configured by different dataclasses; :func:`scene_config` builds the right one from
the options every style shares, so the training config, evaluation and the sample bag
name a style and a camera the same way, and :func:`camera_frames` gives any sequence's
frames as its camera records them, with their calibration.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..camera.calibration import CameraCalibration
from .config import PINHOLE_STYLES, SyntheticSceneConfig, SyntheticSequence
from .robot import ROBOT_STYLE, RobotSceneConfig, RobotSequence
from .warehouse import WAREHOUSE_STYLE, WarehouseSceneConfig

GROUND_ROBOT_STYLES = {ROBOT_STYLE: RobotSceneConfig, WAREHOUSE_STYLE: WarehouseSceneConfig}
"""The styles recorded by the ground robot's camera (640 x 480, a distorting lens, odometry of
``base_link`` and the camera mount), and their configs."""

STYLES = (*PINHOLE_STYLES, *GROUND_ROBOT_STYLES)
"""All scene styles: ``street``, ``corridor``, ``robot``, ``warehouse``."""


def scene_config(
    style: str,
    height: int,
    width: int,
    frames_per_sequence: int = 30,
    fps: float = 10.0,
    camera_height: float | None = None,
    horizontal_fov_deg: float | None = None,
    distortion: bool | None = None,
) -> SyntheticSceneConfig | RobotSceneConfig:
    """The config that renders ``style`` with this camera.

    Args:
        style: one of :data:`STYLES`.
        height, width: image size in pixels.
        frames_per_sequence: frames per sequence.
        fps: frame rate in Hz.
        camera_height: metres above the floor or road; ``None``: the style's (street 1.65,
            corridor 1.2, robot 0.5, warehouse 0.4).
        horizontal_fov_deg: horizontal field of view of the (rectified) pinhole camera in
            degrees, square pixels; ``None``: the style's (street and corridor: KITTI's
            camera, fx = 0.58 W and fy = 1.92 H, about 81 degrees at 640x192; robot and
            warehouse 90).
        distortion: :data:`GROUND_ROBOT_STYLES` only: record through the robot camera's
            plumb_bob lens (``None`` or True) or an ideal pinhole (False). The other
            styles render pinhole cameras only.

    Raises:
        ValueError: an unknown style, distortion asked of a pinhole style, or invalid
            values (the config's own checks).
    """
    if style not in STYLES:
        raise ValueError(f"unknown synthetic scene style {style!r}; valid styles: {', '.join(STYLES)}")
    common = {"height": height, "width": width, "frames_per_sequence": frames_per_sequence, "fps": fps}
    if style in GROUND_ROBOT_STYLES:
        camera = {}
        if camera_height is not None:
            camera["camera_height"] = camera_height
        if horizontal_fov_deg is not None:
            camera["horizontal_fov_deg"] = horizontal_fov_deg
        if distortion is False:
            camera["distortion"] = (0.0,) * 5
        return GROUND_ROBOT_STYLES[style](**common, **camera)
    if distortion:
        raise ValueError(f"the {style} style renders an undistorted pinhole camera; distortion needs style "
                         f"{' or '.join(GROUND_ROBOT_STYLES)}")
    camera = {"camera_height": camera_height}
    if horizontal_fov_deg is not None:
        if not 10 <= horizontal_fov_deg <= 150:
            raise ValueError(f"horizontal_fov_deg must be in [10, 150] degrees, got {horizontal_fov_deg}")
        fx_ratio = 0.5 / math.tan(math.radians(horizontal_fov_deg) / 2)
        camera.update(fx_ratio=fx_ratio, fy_ratio=fx_ratio * width / height)
    return SyntheticSceneConfig(style=style, **common, **camera)


def camera_frames(
    sequence: SyntheticSequence, source: str = "synthetic camera"
) -> tuple[np.ndarray, CameraCalibration]:
    """The frames as the sequence's camera records them, and that camera's calibration.

    A ground-robot sequence gives its raw, distorted frames with the plumb_bob calibration
    (consumers rectify them; its ``depths`` are in the rectified geometry); the pinhole
    styles give their frames with a pinhole calibration.

    Returns:
        uint8 ``(N, H, W, 3)`` frames and their :class:`CameraCalibration` (``source``
        names it in messages).
    """
    if isinstance(sequence, RobotSequence):
        return sequence.raw_images, dataclasses.replace(sequence.calibration, source=source)
    height, width = sequence.images.shape[1:3]
    return sequence.images, CameraCalibration.pinhole(sequence.intrinsics, height, width, source=source)
