"""A camera's calibration, from a ``sensor_msgs/CameraInfo`` or a calibration YAML file.

:class:`CameraCalibration` holds what ``CameraInfo`` says, at the camera's full
resolution: K, the distortion model and coefficients D, the rectifying rotation R, the
projection P, and the binning and region of interest that map the full-resolution sensor
onto the published image. One policy serves recorded bags and the live node alike:

* **Intrinsics.** P (the rectified image's camera) is used when set, K when P is all
  zero; K falls back to P's left part when only P is set. Both all zero means the camera
  was never calibrated; focal lengths must be positive and finite.
* **Binning and ROI** (REP 104): the published image is the ROI (in full-resolution
  pixels; all zero for the full frame) of the sensor, binned ``binning_x`` x
  ``binning_y`` (0 counts as 1). Its size is ``(roi size or full size) // binning`` and a
  full-resolution pixel ``U`` is image pixel ``(U - x_offset - (binning_x - 1) / 2) /
  binning_x`` (pixel centres at integers, as everywhere in this package);
  :meth:`CameraCalibration.image_from_full` is that map.

:meth:`CameraCalibration.from_yaml` reads the file ``camera_calibration`` writes and
``camera_info_manager`` reads (``image_width``, ``image_height``, ``camera_name``,
``camera_matrix``, ``distortion_model``, ``distortion_coefficients``,
``rectification_matrix``, ``projection_matrix``; each matrix as ``{rows, cols, data}``),
for bags and cameras that publish no camera info.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from dna_depth_core.errors import UserError

DISTORTION_MODELS = {
    "plumb_bob": (4, 5, 8, 12, 14),
    "rational_polynomial": (4, 5, 8, 12, 14),
    "equidistant": (4,),
}
"""Distortion models this package can undo -> the numbers of coefficients it accepts
(OpenCV's; ``plumb_bob`` is k1 k2 p1 p2 k3, ``rational_polynomial`` adds k4 k5 k6,
``equidistant`` is the fisheye k1..k4)."""


class CalibrationError(UserError):
    """A camera info or calibration file that cannot be used (uncalibrated, invalid, unreadable)."""


class CalibrationMismatchError(CalibrationError):
    """A calibration for images of another size than the ones it is paired with."""


@dataclass(frozen=True, eq=False)
class CameraCalibration:
    """A camera's calibration at its full resolution, with the binning and ROI of its images.

    Attributes:
        width, height: full-resolution image size in pixels the calibration refers to; 0 when
            the camera info leaves it unset (then any image size is accepted).
        camera_matrix: float64 ``(3, 3)`` K of the raw (distorted) image, pixels.
        distortion_model: ``"plumb_bob"``, ``"rational_polynomial"``, ``"equidistant"``, or
            anything when ``distortion`` is all zero.
        distortion: float64 ``(n,)`` coefficients D.
        rectification: float64 ``(3, 3)`` rotation R from the raw to the rectified camera.
        projection: float64 ``(3, 4)`` P: the rectified image's camera (its last column is
            a stereo right camera's baseline term).
        binning_x, binning_y: binning of the published image (>= 1).
        roi: ``(x_offset, y_offset, width, height)`` in full-resolution pixels; all zero for
            the full frame.
        source: where the calibration came from (a topic or a file), for messages.
    """

    width: int
    height: int
    camera_matrix: np.ndarray
    distortion_model: str = "plumb_bob"
    distortion: np.ndarray = field(default_factory=lambda: np.zeros(5))
    rectification: np.ndarray = field(default_factory=lambda: np.eye(3))
    projection: np.ndarray | None = None
    binning_x: int = 1
    binning_y: int = 1
    roi: tuple[int, int, int, int] = (0, 0, 0, 0)
    source: str = "camera info"

    def __post_init__(self) -> None:
        camera_matrix = np.asarray(self.camera_matrix, dtype=np.float64).reshape(3, 3)
        projection = (
            np.concatenate([camera_matrix, np.zeros((3, 1))], axis=1)
            if self.projection is None
            else np.asarray(self.projection, dtype=np.float64).reshape(3, 4)
        )
        if not camera_matrix.any() and not projection.any():
            raise CalibrationError(
                f"{self.source} has all-zero K and P: the camera is not calibrated. Calibrate it "
                "(ros2 run camera_calibration cameracalibrator) or give its calibration file "
                "(--camera-info FILE / camera_info_file)"
            )
        if not camera_matrix.any():
            camera_matrix = projection[:, :3].copy()
        if not projection.any():
            projection = np.concatenate([camera_matrix, np.zeros((3, 1))], axis=1)
        for name, matrix in (("P", projection), ("K", camera_matrix)):
            fx, fy, cx, cy = matrix[0, 0], matrix[1, 1], matrix[0, 2], matrix[1, 2]
            if not np.isfinite(matrix).all() or fx <= 0 or fy <= 0:
                raise CalibrationError(
                    f"{self.source} has no usable intrinsics ({name}: fx={fx:g}, fy={fy:g}, cx={cx:g}, cy={cy:g}); "
                    "focal lengths must be positive and finite: calibrate the camera or fix its driver"
                )
        rectification = np.asarray(self.rectification, dtype=np.float64).reshape(3, 3)
        if not rectification.any():
            rectification = np.eye(3)
        distortion = np.asarray(self.distortion, dtype=np.float64).reshape(-1)
        if not np.isfinite(distortion).all() or not np.isfinite(rectification).all():
            raise CalibrationError(f"{self.source} has non-finite distortion coefficients or rectification matrix")
        if min(self.width, self.height) < 0 or min(self.roi) < 0:
            raise CalibrationError(f"{self.source} has a negative image size or region of interest")
        object.__setattr__(self, "camera_matrix", camera_matrix)
        object.__setattr__(self, "projection", projection)
        object.__setattr__(self, "rectification", rectification)
        object.__setattr__(self, "distortion", distortion)
        object.__setattr__(self, "binning_x", max(int(self.binning_x), 1))
        object.__setattr__(self, "binning_y", max(int(self.binning_y), 1))
        object.__setattr__(self, "roi", tuple(int(value) for value in self.roi))

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_camera_info(cls, info, source: str = "camera info") -> CameraCalibration:
        """From a ``sensor_msgs/CameraInfo`` object (rclpy or rosbags: same field names).

        Raises:
            CalibrationError: uncalibrated (K and P all zero) or invalid intrinsics.
        """
        roi = info.roi
        return cls(
            width=int(info.width),
            height=int(info.height),
            camera_matrix=np.asarray(info.k, dtype=np.float64),
            distortion_model=str(info.distortion_model),
            distortion=np.asarray(info.d, dtype=np.float64),
            rectification=np.asarray(info.r, dtype=np.float64),
            projection=np.asarray(info.p, dtype=np.float64),
            binning_x=int(info.binning_x),
            binning_y=int(info.binning_y),
            roi=(int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height)),
            source=source,
        )

    @classmethod
    def from_yaml(cls, path: str | Path) -> CameraCalibration:
        """From a camera calibration YAML file (``camera_calibration`` / ``camera_info_manager``).

        ``image_width``, ``image_height`` and ``camera_matrix`` are required;
        ``distortion_model`` and ``distortion_coefficients`` default to no distortion,
        ``rectification_matrix`` to the identity, ``projection_matrix`` to ``[K | 0]``.

        Raises:
            CalibrationError: the file is missing, not YAML, or a key is missing or malformed;
                one line naming the file and the key.
        """
        path = Path(path)
        where = f"camera calibration file {str(path)!r}"
        try:
            content = yaml.safe_load(path.read_text())
        except OSError as error:
            raise CalibrationError(f"cannot read {where}: {error.strerror or error}") from None
        except yaml.YAMLError as error:
            problem = str(error).replace("\n", " ")
            raise CalibrationError(f"{where} is not valid YAML ({problem})") from None
        if not isinstance(content, dict):
            raise CalibrationError(
                f"{where} must be a mapping with image_width, image_height, camera_matrix... "
                "(the file camera_calibration writes)"
            )

        def size(key: str) -> int:
            value = content.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise CalibrationError(f"{where}: {key} must be a positive integer, got {value!r}")
            return value

        def matrix(key: str, shape: tuple[int, ...] | None, default=None) -> np.ndarray:
            entry = content.get(key)
            if entry is None:
                if default is None:
                    raise CalibrationError(f"{where} has no {key} (rows, cols, data)")
                return default
            if not isinstance(entry, dict) or "data" not in entry:
                raise CalibrationError(f"{where}: {key} must be a mapping with rows, cols and data")
            try:
                values = np.asarray(entry["data"], dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                raise CalibrationError(f"{where}: {key}.data must be a list of numbers") from None
            rows, cols = entry.get("rows"), entry.get("cols")
            if isinstance(rows, int) and isinstance(cols, int) and rows * cols != values.size:
                raise CalibrationError(
                    f"{where}: {key} says {rows}x{cols} but its data has {values.size} numbers"
                )
            if shape is not None and values.size != int(np.prod(shape)):
                raise CalibrationError(
                    f"{where}: {key} must have {int(np.prod(shape))} numbers ({'x'.join(map(str, shape))}), "
                    f"got {values.size}"
                )
            return values if shape is None else values.reshape(shape)

        width, height = size("image_width"), size("image_height")
        camera_matrix = matrix("camera_matrix", (3, 3))
        distortion = matrix("distortion_coefficients", None, default=np.zeros(5))
        model = content.get("distortion_model", "plumb_bob")
        if not isinstance(model, str):
            raise CalibrationError(f"{where}: distortion_model must be a string, got {model!r}")
        name = content.get("camera_name")
        calibration = cls(
            width=width,
            height=height,
            camera_matrix=camera_matrix,
            distortion_model=model,
            distortion=distortion,
            rectification=matrix("rectification_matrix", (3, 3), default=np.eye(3)),
            projection=matrix("projection_matrix", (3, 4), default=np.zeros((3, 4))),
            source=f"{where}" + (f" (camera {name})" if name else ""),
        )
        calibration.check_distortion()
        return calibration

    @classmethod
    def pinhole(
        cls, camera_matrix: np.ndarray, height: int, width: int, source: str = "intrinsics"
    ) -> CameraCalibration:
        """An undistorted pinhole camera with intrinsics ``camera_matrix`` (3, 3) for
        ``height x width`` images (synthetic scenes, rectified datasets)."""
        return cls(width=int(width), height=int(height), camera_matrix=camera_matrix, source=source)

    # ------------------------------------------------------------------ the binning/ROI policy

    @property
    def image_size(self) -> tuple[int, int] | None:
        """``(height, width)`` of the published image (ROI and binning applied), ``None``
        when the calibration leaves the size unset."""
        roi_width, roi_height = self.roi[2] or self.width, self.roi[3] or self.height
        if not (roi_width and roi_height):
            return None
        return roi_height // self.binning_y, roi_width // self.binning_x

    @property
    def image_from_full(self) -> np.ndarray:
        """float64 ``(3, 3)`` map from full-resolution pixels to image pixels (ROI, then binning)."""
        x_offset, y_offset = self.roi[:2]
        return np.array(
            [
                [1.0 / self.binning_x, 0.0, -(x_offset + (self.binning_x - 1) / 2) / self.binning_x],
                [0.0, 1.0 / self.binning_y, -(y_offset + (self.binning_y - 1) / 2) / self.binning_y],
                [0.0, 0.0, 1.0],
            ]
        )

    def check_image_size(self, image_size: tuple[int, int]) -> None:
        """Raise :class:`CalibrationMismatchError` unless images of ``image_size = (height,
        width)`` are what this calibration describes (any size when it leaves it unset)."""
        expected = self.image_size
        if expected is not None and tuple(image_size) != expected:
            binned = " after binning/ROI" if self.binning_x > 1 or self.binning_y > 1 or any(self.roi) else ""
            raise CalibrationMismatchError(
                f"{self.source} describes {expected[1]}x{expected[0]} images{binned} but the images are "
                f"{image_size[1]}x{image_size[0]}; pair the images with their own camera's calibration"
            )

    # ------------------------------------------------------------------ rectification

    @property
    def is_distorted(self) -> bool:
        """Whether the raw image differs from the pinhole image P describes: distortion, a
        rectifying rotation, or a P camera other than K."""
        return bool(
            np.any(self.distortion != 0)
            or not np.allclose(self.rectification, np.eye(3))
            or not np.allclose(self.projection[:, :3], self.camera_matrix, rtol=1e-9, atol=1e-9)
        )

    def check_distortion(self) -> None:
        """Raise :class:`CalibrationError` if the distortion cannot be undone here (unknown
        model or coefficient count); zero distortion is always fine."""
        if not np.any(self.distortion != 0):
            return
        counts = DISTORTION_MODELS.get(self.distortion_model)
        if counts is None:
            raise CalibrationError(
                f"{self.source} uses distortion model {self.distortion_model!r}, which cannot be undone here "
                f"({', '.join(DISTORTION_MODELS)} can); rectify the images first (image_proc) and feed the "
                "rectified topic"
            )
        if self.distortion.size not in counts:
            raise CalibrationError(
                f"{self.source} has {self.distortion.size} {self.distortion_model} distortion coefficients; "
                f"expected {' or '.join(map(str, counts))}"
            )

    @property
    def key(self) -> tuple:
        """Everything that defines the calibration, hashable (plans are cached by it)."""
        return (
            self.width, self.height, self.distortion_model, self.binning_x, self.binning_y, self.roi,
            *(tuple(matrix.reshape(-1).tolist()) for matrix in
              (self.camera_matrix, self.distortion, self.rectification, self.projection)),
        )
