"""A plumb_bob (Brown-Conrady) lens for the synthetic renderer: raw distorted frames from pinhole renders.

The renderer (:mod:`.renderer`) casts pinhole rays. A distorted
camera is rendered in two steps, exactly as its calibration says:

1. Render a pinhole *canvas* with the raw camera's focal length (``K``) that covers the
   undistorted position of every raw pixel. Its principal point is ``K``'s shifted by whole
   pixels, so the canvas window ``[oy : oy + H, ox : ox + W]`` *is* the rectified image
   with ``P = K``, ray for ray: the rectified image and its depth are exact, not resampled.
2. For every raw pixel, ``cv2.undistortPoints`` (iterated to convergence, checked by
   re-distorting with ``cv2.projectPoints``) gives its undistorted position on the canvas,
   where the canvas is sampled: bilinearly for colour, nearest for depth.

The rectified camera is ``P = K`` (not ``cv2.getOptimalNewCameraMatrix``): it keeps the raw
camera's focal length and principal point, so the rectified image lines up with the canvas
pixel for pixel. With barrel distortion (``k1 < 0``) every rectified pixel has a raw pixel
behind it and rectification crops the raw image's wide periphery; with pincushion
distortion the rectified corners see past the raw image. Rectifying is not done here but by
the project's one preparation module (:mod:`dna_depth_core.data.camera.preparation`), as
for any camera.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-14)
_MAX_REPROJECTION_ERROR = 1e-3
"""Pixels; undistorted positions that re-distort further from their raw pixel mean the
distortion cannot be inverted there (it folds over)."""
_MAX_CANVAS_PIXELS_RATIO = 6.0
"""A canvas over six times the raw image's pixels means a lens too extreme to render this way."""


class PlumbBobLens:
    """How to render a ``height`` x ``width`` camera with pinhole matrix K and plumb_bob distortion D.

    Args:
        height, width: raw image size in pixels.
        camera_matrix: ``(3, 3)`` K in pixels (also P, the rectified camera).
        distortion: ``(5,)`` ``k1, k2, p1, p2, k3`` (all zero: an ideal pinhole).

    Attributes:
        canvas_intrinsics: float64 ``(3, 3)`` pinhole matrix of the canvas (K's focal
            length, principal point shifted by ``canvas_offset``).
        canvas_size: ``(height, width)`` of the canvas in pixels (the image's own size
            without distortion).
        canvas_offset: ``(ox, oy)`` whole pixels from the canvas to the rectified window.
        raw_map: float32 ``(2, H, W)`` canvas ``(x, y)`` pixel position of each raw pixel.

    Raises:
        ValueError: the distortion folds over inside the image (it is not invertible
            there) or needs an unreasonably large canvas.
    """

    def __init__(self, height: int, width: int, camera_matrix: np.ndarray, distortion: np.ndarray) -> None:
        self.height, self.width = height, width
        self.camera_matrix = np.asarray(camera_matrix, np.float64).reshape(3, 3)
        self.distortion = np.asarray(distortion, np.float64).reshape(5)
        rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
        raw_pixels = np.stack([cols.ravel(), rows.ravel()], 1)
        undistorted = self._undistort(raw_pixels) if self.is_distorted else raw_pixels
        # The canvas spans every raw pixel's undistorted position and the rectified window,
        # with a pixel of margin for bilinear sampling (none needed without distortion).
        margin = 1 if self.is_distorted else 0
        low = np.floor(np.minimum(undistorted.min(0), 0.0)).astype(int) - margin
        high = np.ceil(np.maximum(undistorted.max(0), [width - 1, height - 1])).astype(int) + 1 + margin
        self.canvas_offset = (int(-low[0]), int(-low[1]))
        self.canvas_size = (int(high[1] - low[1]), int(high[0] - low[0]))
        if self.canvas_size[0] * self.canvas_size[1] > _MAX_CANVAS_PIXELS_RATIO * width * height:
            raise ValueError(
                f"plumb_bob distortion {self.distortion.tolist()} at this field of view sees "
                f"{self.canvas_size[1]}x{self.canvas_size[0]} pinhole pixels for a {width}x{height} image; "
                "use smaller coefficients or a narrower field of view"
            )
        self.canvas_intrinsics = self.camera_matrix.copy()
        self.canvas_intrinsics[:2, 2] += self.canvas_offset
        self.raw_map = (undistorted + self.canvas_offset).T.reshape(2, height, width).astype(np.float32)

    def _undistort(self, raw_pixels: np.ndarray) -> np.ndarray:
        """float64 ``(n, 2)`` pinhole (K) pixel positions of ``(n, 2)`` raw pixel positions."""
        undistorted = cv2.undistortPoints(
            raw_pixels[:, None], self.camera_matrix, self.distortion, P=self.camera_matrix, criteria=_UNDISTORT_CRITERIA
        )[:, 0]
        normalised = (undistorted - self.camera_matrix[[0, 1], [2, 2]]) / self.camera_matrix[[0, 1], [0, 1]]
        redistorted, _ = cv2.projectPoints(
            np.concatenate([normalised, np.ones((len(normalised), 1))], 1), np.zeros(3), np.zeros(3),
            self.camera_matrix, self.distortion,
        )
        error = np.abs(redistorted[:, 0] - raw_pixels).max()
        if not error < _MAX_REPROJECTION_ERROR:
            raise ValueError(
                f"plumb_bob distortion {self.distortion.tolist()} cannot be inverted over the "
                f"{self.width}x{self.height} image (it folds over; re-distortion is {error:.3g} px off): "
                "use smaller coefficients or a narrower field of view"
            )
        return undistorted

    @property
    def is_distorted(self) -> bool:
        """Whether any distortion coefficient is non-zero."""
        return bool(np.any(self.distortion != 0))

    def rectified_window(self, canvas: np.ndarray) -> np.ndarray:
        """The ``(H, W, ...)`` rectified image (intrinsics P = K) cut out of a canvas render."""
        offset_x, offset_y = self.canvas_offset
        return canvas[offset_y : offset_y + self.height, offset_x : offset_x + self.width]

    def distort(self, canvas_image: np.ndarray, canvas_depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw frame from a canvas render.

        Args:
            canvas_image: uint8 ``(Hc, Wc, 3)`` canvas colour.
            canvas_depth: float32 ``(Hc, Wc)`` canvas depth in metres (0 = unknown).

        Returns:
            uint8 ``(H, W, 3)`` raw (distorted) image, bilinearly sampled, and float32
            ``(H, W)`` depth along the optical axis of the canvas ray nearest to each raw
            pixel's ray (within half a canvas pixel; exact only on the rectified canvas).
        """
        map_x, map_y = self.raw_map
        image = cv2.remap(canvas_image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        depth = cv2.remap(canvas_depth, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
        return image, depth


def pinhole_matrix(height: int, width: int, horizontal_fov_deg: float, cx_ratio: float, cy_ratio: float) -> np.ndarray:
    """float64 ``(3, 3)`` K with square pixels: ``fx = fy = (width / 2) / tan(fov / 2)``,
    principal point at ``(cx_ratio * width, cy_ratio * height)`` pixels."""
    focal = 0.5 * width / math.tan(math.radians(horizontal_fov_deg) / 2)
    return np.array([[focal, 0.0, cx_ratio * width], [0.0, focal, cy_ratio * height], [0.0, 0.0, 1.0]])
