"""Configuration and result of the pinhole synthetic styles ``street`` and ``corridor``.

:class:`SyntheticSceneConfig` says how a sequence looks and how its camera moves;
:class:`SyntheticSequence` is what :func:`~dna_depth_core.data.synthetic.dataset.generate_sequence`
returns for every style (the ground-robot style's
:class:`~dna_depth_core.data.synthetic.robot.RobotSequence` extends it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dna_depth_core.config import ConfigError

PINHOLE_STYLES = ("street", "corridor")
"""The styles :class:`SyntheticSceneConfig` renders (pinhole cameras); their order seeds the
scene generator, so it is fixed."""

_STYLE_SPEED = {"street": 8.0, "corridor": 2.0}
_STYLE_CAMERA_HEIGHT = {"street": 1.65, "corridor": 1.2}


def check_frames(height: int, width: int, frames_per_sequence: int, fps: float) -> None:
    """Raise ValueError unless frames are at least 8 x 8 pixels, a sequence has at least 3
    of them (a triplet needs both neighbours) and the frame rate ``fps`` (Hz) is positive:
    the checks every style's config makes."""
    if height < 8 or width < 8:
        raise ConfigError(f"image size must be at least 8 x 8 pixels, got height={height} width={width}")
    if frames_per_sequence < 3:
        raise ConfigError(
            f"frames_per_sequence must be >= 3 (a triplet needs both neighbours), got {frames_per_sequence}"
        )
    if not fps > 0:
        raise ConfigError(f"fps must be > 0, got {fps}")


@dataclass
class SyntheticSceneConfig:
    """How synthetic sequences look and how the camera moves.

    Attributes:
        style: scene style, one of :data:`PINHOLE_STYLES` (``"street"`` or ``"corridor"``).
        height: image height in pixels (192, the KITTI training height).
        width: image width in pixels (640).
        frames_per_sequence: frames rendered per sequence (30; at least 3).
        fps: frame rate in Hz; timestamps are ``i / fps`` seconds (10, as KITTI).
        speed: mean forward camera speed in m/s; ``None`` (default) picks the style's
            speed, 8 m/s for ``"street"`` and 2 m/s for ``"corridor"``. Resolved to a
            float on construction.
        camera_height: mean camera height above the ground in metres; ``None`` (default)
            picks 1.65 m for ``"street"`` (KITTI's camera) and 1.2 m for ``"corridor"``.
        fx_ratio: horizontal focal length as a fraction of the width (0.58, KITTI).
        fy_ratio: vertical focal length as a fraction of the height (1.92, KITTI).
        cx_ratio: principal point column as a fraction of the width (0.5).
        cy_ratio: principal point row as a fraction of the height (0.5).
        yaw_amplitude_deg: amplitude of the smooth heading wobble in degrees (3), on top
            of the heading that follows the lateral drift of the path.
        pitch_amplitude_deg: amplitude of the smooth pitch wobble in degrees (1).
    """

    style: str = "street"
    height: int = 192
    width: int = 640
    frames_per_sequence: int = 30
    fps: float = 10.0
    speed: float | None = None
    camera_height: float | None = None
    fx_ratio: float = 0.58
    fy_ratio: float = 1.92
    cx_ratio: float = 0.5
    cy_ratio: float = 0.5
    yaw_amplitude_deg: float = 3.0
    pitch_amplitude_deg: float = 1.0

    def __post_init__(self) -> None:
        if self.style not in PINHOLE_STYLES:
            raise ConfigError(f"unknown synthetic scene style {self.style!r}; valid styles: {', '.join(PINHOLE_STYLES)}")
        if self.speed is None:
            self.speed = _STYLE_SPEED[self.style]
        if self.camera_height is None:
            self.camera_height = _STYLE_CAMERA_HEIGHT[self.style]
        check_frames(self.height, self.width, self.frames_per_sequence, self.fps)
        if not 0 < self.speed <= 40:
            raise ConfigError(f"speed must be in (0, 40] m/s, got {self.speed}")
        max_height = 3.0 if self.style == "street" else 2.0
        if not 0.3 <= self.camera_height <= max_height:
            raise ConfigError(
                f"camera_height must be in [0.3, {max_height}] m for style {self.style!r}, got {self.camera_height}"
            )
        if not (self.fx_ratio > 0 and self.fy_ratio > 0):
            raise ConfigError(f"fx_ratio and fy_ratio must be > 0, got {self.fx_ratio} and {self.fy_ratio}")
        if not (0 <= self.cx_ratio <= 1 and 0 <= self.cy_ratio <= 1):
            raise ConfigError(f"cx_ratio and cy_ratio must be in [0, 1], got {self.cx_ratio} and {self.cy_ratio}")
        if not (0 <= self.yaw_amplitude_deg <= 20 and 0 <= self.pitch_amplitude_deg <= 10):
            raise ConfigError(
                "yaw_amplitude_deg must be in [0, 20] and pitch_amplitude_deg in [0, 10], got "
                f"{self.yaw_amplitude_deg} and {self.pitch_amplitude_deg}"
            )

    def intrinsics(self) -> np.ndarray:
        """The (3, 3) float32 pinhole matrix in pixels for ``height`` x ``width`` frames."""
        return np.array(
            [
                [self.fx_ratio * self.width, 0.0, self.cx_ratio * self.width],
                [0.0, self.fy_ratio * self.height, self.cy_ratio * self.height],
                [0.0, 0.0, 1.0],
            ],
            dtype=np.float32,
        )


@dataclass
class SyntheticSequence:
    """One rendered sequence with exact ground truth.

    Attributes:
        images: uint8 ``(N, H, W, 3)`` RGB frames.
        depths: float32 ``(N, H, W)`` depth along the optical axis in metres; 0 where
            the ray sees only sky (unknown, the KITTI convention).
        intrinsics: float32 ``(3, 3)`` pinhole matrix in pixels.
        poses: float32 ``(N, 4, 4)`` camera-to-world transforms (camera x right, y down,
            z forward; world x right, y down, z along the street, ground at y = 0).
        timestamps: float64 ``(N,)`` seconds since the first frame.
    """

    images: np.ndarray
    depths: np.ndarray
    intrinsics: np.ndarray
    poses: np.ndarray
    timestamps: np.ndarray
