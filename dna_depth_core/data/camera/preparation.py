"""From a camera image to the network input and back: one contract for training and inference.

A :class:`FramePlan` is made once per camera (calibration and image size) and applied to
every frame. In order:

1. **Rectify.** A raw image whose calibration has distortion, a rectifying rotation or a
   P camera other than K is remapped to the pinhole image P describes
   (``cv2.initUndistortRectifyMap`` for ``plumb_bob`` / ``rational_polynomial``,
   ``cv2.fisheye`` for ``equidistant``), at the image's own size, binning and ROI applied
   (see :mod:`~dna_depth_core.data.camera.calibration`). An image that is already
   rectified (a topic named ``image_rect*``, see :func:`is_rectified_topic`, or declared
   so) is used as it is, with intrinsics P.
2. **Crop.** The centre of the pinhole image with the network's aspect ratio is kept
   (the longer side is cut evenly on both ends): nothing is stretched. Under the
   ``"resize"`` crop policy, images within :data:`ASPECT_TOLERANCE` of the network's
   aspect ratio are kept whole instead, as the KITTI recipe trains.
3. **Resize** to the network size.

:meth:`FramePlan.apply` does the three in one resampling of the camera image: each
network pixel samples it bilinearly at the point its centre comes from (the rectification
composed with the crop and the resize, made once per camera), after a filter that blurs
as an area resize would (:func:`_area_filter`: pyramid steps and a box, sized by how far
apart the samples fall in the camera image). On finely textured frames that agrees with
remapping the whole image and then area-resizing the crop to within a tenth of the
texture's standard deviation and keeps its sharpness within 10 %
(test/test_camera_preparation.py), at a fraction of the cost at camera resolution (a
wide-angle 1280x720 camera to 224x160: about 0.5 against 4.4 ms on a 2-core Xeon). A crop
that shrinks by whole factors without rectification is area-averaged exactly (OpenCV's
fast path).

The intrinsics follow exactly (the crop shifts the principal point, the resize scales
with the pixel-centre convention of :func:`dna_depth_core.geometry.scale_intrinsics`),
and :meth:`FramePlan.to_image` maps a network-size map back onto the camera's pinhole
image: NaN outside what the network saw, and NaN on the rectification border (pixels of
the pinhole image with no source pixel in the raw image: the black corners a wide-angle
lens leaves after undistortion, which the network sees as black and whose depth means
nothing).

The training loss needs no mask for that border: the photometric loss's auto-masking
(:func:`dna_depth_core.losses.photometric.min_reprojection`) already discards it. The
border is black at the same pixels in every frame of a camera, so there the un-warped
source's error is zero, and a warped source cannot beat zero (ties go to the identity):
the border pixels add nothing to the photometric loss and give its depth no gradient
(test/test_camera_preparation.py checks this on a rectified triplet). The edge-aware
smoothness term still keeps the disparity smooth there, which is harmless; with
``loss.automask`` off the border would count, and the auto-masking recipe is the default.

Producers of training frames (bag fine-tuning) plan with :func:`plan_training_frames`
and record the result in the checkpoint as a :class:`FramePreparation`; consumers (the
depth node, :class:`~dna_depth_core.inference.DepthEstimator`, evaluation) plan with
:func:`plan_for_checkpoint`, which applies that record and says, in one line
(:attr:`FramePlan.notice`), where the camera differs from the training camera and what
is done about it. A monocular network's depth scales with the camera's focal length
measured in network-input pixels (it sees an object of a given size as near when it
looks big), so when that differs from the training camera's, depth is multiplied by
their ratio (:attr:`FramePlan.depth_factor`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np
import torch

from dna_depth_core.config import ConfigError
from dna_depth_core.geometry import scale_intrinsics

from .calibration import CameraCalibration

CROP_POLICIES = ("centre", "resize")
"""``centre``: centre-crop to the network's aspect ratio, then resize. ``resize``: resize
whole images within :data:`ASPECT_TOLERANCE` of the network's aspect ratio (the KITTI
recipe), centre-crop the others."""

ASPECT_TOLERANCE = 0.02
"""Relative aspect-ratio difference below which images count as the network's shape."""

FOCAL_TOLERANCE = 0.02
"""Relative focal-length difference from the training camera that earns a notice."""

class PreparationWarning(UserWarning):
    """A camera differs from a checkpoint's training camera; the message says what is done about it."""


@dataclass
class FramePreparation:
    """How a checkpoint's training frames were made from camera images (``ModelMetadata.preparation``).

    The network input size is the checkpoint's ``height`` x ``width``. Checkpoints
    written before this record existed load with the defaults: the KITTI recipe's camera,
    which the imported KITTI weights and the shipped synthetic checkpoint were trained with.

    Attributes:
        rectified: the frames were rectified pinhole images (True); consumers rectify raw
            input the same way. False: the network saw raw (distorted) images, which
            consumers then do not rectify.
        crop: how images were fitted to the network's aspect ratio, one of
            :data:`CROP_POLICIES` (``"resize"``; bag fine-tuning writes ``"centre"``).
        fx: training camera's horizontal focal length over the network input width (0.58).
        fy: vertical focal length over the network input height (1.92).
        cx: principal point column over the network input width (0.5).
        cy: principal point row over the network input height (0.5).
    """

    rectified: bool = True
    crop: str = "resize"
    fx: float = 0.58
    fy: float = 1.92
    cx: float = 0.5
    cy: float = 0.5

    def __post_init__(self) -> None:
        if self.crop not in CROP_POLICIES:
            raise ConfigError(f"crop must be one of {list(CROP_POLICIES)}, got {self.crop!r}")
        if not (self.fx > 0 and self.fy > 0 and math.isfinite(self.fx * self.fy * self.cx * self.cy)):
            raise ConfigError(f"normalised focal lengths must be positive and finite, got fx={self.fx}, fy={self.fy}")

    def intrinsics(self, height: int, width: int) -> np.ndarray:
        """float32 ``(3, 3)`` pinhole matrix in pixels of the ``height x width`` network input."""
        return np.array(
            [[self.fx * width, 0.0, self.cx * width], [0.0, self.fy * height, self.cy * height], [0.0, 0.0, 1.0]],
            dtype=np.float32,
        )


def preparation_of_dataset(dataset) -> FramePreparation:
    """The record of a training dataset's frames: its ``preparation`` attribute when it has
    one (bags, KITTI), else rectified pinhole frames (the :class:`FramePreparation`
    defaults) with the normalised intrinsics of its first sample (``frames`` ``(3, 3, H,
    W)``, ``intrinsics`` ``(3, 3)`` pixels, the convention of :mod:`dna_depth_core.data`)."""
    record = getattr(dataset, "preparation", None)
    if isinstance(record, FramePreparation):
        return record
    sample = dataset[0]
    height, width = sample["frames"].shape[-2:]
    intrinsics = np.asarray(sample["intrinsics"], dtype=np.float64)
    return FramePreparation(fx=intrinsics[0, 0] / width, fy=intrinsics[1, 1] / height, cx=intrinsics[0, 2] / width,
                            cy=intrinsics[1, 2] / height)


def is_rectified_topic(topic: str) -> bool:
    """Whether ``topic`` follows image_proc's naming of rectified images (``.../image_rect``,
    ``.../image_rect_color``, and their ``/compressed`` transports)."""
    return any(part.startswith("image_rect") for part in topic.split("/"))


def _crop_box(
    image_size: tuple[int, int], network_size: tuple[int, int], crop: str
) -> tuple[int, int, int, int]:
    """``(x0, y0, width, height)`` of the part of the pinhole image the network sees."""
    height, width = image_size
    network_height, network_width = network_size
    mismatch = abs(math.log((width / height) / (network_width / network_height)))
    if crop == "resize" and mismatch <= math.log1p(ASPECT_TOLERANCE):
        return 0, 0, width, height
    if width * network_height > height * network_width:
        crop_width, crop_height = round(height * network_width / network_height), height
    else:
        crop_width, crop_height = width, round(width * network_height / network_width)
    return (width - crop_width) // 2, (height - crop_height) // 2, crop_width, crop_height


def _rectify_maps(calibration: CameraCalibration, image_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap`` maps from this image (binning/ROI applied) to its rectified pinhole image.

    OpenCV works in full-resolution pixels: the rectified image's camera is P seen through
    the same binning and ROI, and the maps' raw coordinates are brought back to this image.
    """
    calibration.check_distortion()
    height, width = image_size
    window = calibration.image_from_full
    rectified_camera = (window @ calibration.projection)[:, :3]
    if calibration.distortion_model == "equidistant" and calibration.distortion.any():
        map_x, map_y = cv2.fisheye.initUndistortRectifyMap(
            calibration.camera_matrix, calibration.distortion[:4], calibration.rectification, rectified_camera,
            (width, height), cv2.CV_32FC1,
        )
    else:
        map_x, map_y = cv2.initUndistortRectifyMap(
            calibration.camera_matrix, calibration.distortion, calibration.rectification, rectified_camera,
            (width, height), cv2.CV_32FC1,
        )
    if not np.allclose(window, np.eye(3)):
        map_x = (map_x * window[0, 0] + window[0, 2]).astype(np.float32)
        map_y = (map_y * window[1, 1] + window[1, 2]).astype(np.float32)
    return map_x, map_y


class _Sampling(NamedTuple):
    """How :meth:`FramePlan.apply` samples a camera image: its ``window`` is reduced by
    ``levels`` pyramid steps (:func:`_pyramid_step`), box-filtered over ``box`` and sampled
    bilinearly at ``map_x, map_y`` (see :func:`_area_filter`)."""

    whole_factors: bool
    """The crop is shrunk by whole factors without rectification: the samples are exact
    block means, which ``cv2.resize`` (``INTER_AREA``, its fast path) computes instead."""
    levels: int
    """Pyramid steps (each halves the image)."""
    box: tuple[int, int]
    """``(kx, ky)``: the box filter's size, pixels of the last level ((1, 1): none)."""
    window: tuple[slice, slice]
    """The rows and columns of the camera image that the samples read, filters' reach included."""
    map_x: np.ndarray
    """float32 ``(H, W)``: the column of the last level each network pixel's centre comes
    from (pixel-centre convention; NaN or outside where the rectified pixel has no source)."""
    map_y: np.ndarray
    """float32 ``(H, W)``: the same for rows."""

    @property
    def level_size(self) -> tuple[int, int]:
        """``(height, width)`` of the image sampled: the window after its pyramid steps."""
        return tuple((part.stop - part.start) // 2**self.levels for part in self.window)


@dataclass(frozen=True, eq=False)
class FramePlan:
    """How one camera's frames become network input, and how network maps map back.

    Attributes:
        image_size: ``(height, width)`` of the camera images, pixels.
        network_size: ``(height, width)`` of the network input, pixels.
        crop_box: ``(x0, y0, width, height)`` of the network's view in the pinhole image.
        camera_projection: float64 ``(3, 4)`` projection matrix of the pinhole image
            (rectified, or the raw image when it is not rectified), pixels; ``None``
            without a calibration.
        rectify_maps: ``cv2.remap`` maps of :meth:`rectify`, ``None`` when the image is
            used as it is.
        source_mask: bool ``(h, w)``: pinhole pixels whose bilinear source lies wholly inside
            the camera image (False on the rectification border); ``None`` when every pixel
            has one (no remap, or a remap that fills the image).
        depth_factor: what network depth is multiplied by for this camera (the focal-length
            ratio to the training camera; 1.0 when unknown, not applied, or for producers).
        notice: one line saying how this camera differs from the training camera and what
            is done about it; ``None`` when it does not.
    """

    image_size: tuple[int, int]
    network_size: tuple[int, int]
    crop_box: tuple[int, int, int, int]
    camera_projection: np.ndarray | None = None
    rectify_maps: tuple[np.ndarray, np.ndarray] | None = None
    source_mask: np.ndarray | None = None
    depth_factor: float = 1.0
    notice: str | None = None

    @functools.cached_property  # made once per camera: the node reads it every frame
    def network_projection(self) -> np.ndarray | None:
        """float64 ``(3, 4)`` projection matrix of the network input, pixels (``None``
        uncalibrated); read-only, as the plan is shared by every frame of its camera."""
        if self.camera_projection is None:
            return None
        x0, y0, crop_width, crop_height = self.crop_box
        network_height, network_width = self.network_size
        shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
        resize = scale_intrinsics(
            torch.eye(3, dtype=torch.float64), network_width / crop_width, network_height / crop_height
        ).numpy()
        projection = resize @ shift @ self.camera_projection
        projection.flags.writeable = False
        return projection

    @property
    def network_intrinsics(self) -> np.ndarray | None:
        """float32 ``(3, 3)`` pinhole matrix of the network input, pixels (``None`` uncalibrated)."""
        projection = self.network_projection
        return None if projection is None else projection[:, :3].astype(np.float32)

    @property
    def normalised_intrinsics(self) -> tuple[float, float, float, float] | None:
        """``(fx / W, fy / H, cx / W, cy / H)`` of the network input (``None`` uncalibrated)."""
        projection = self.network_projection
        if projection is None:
            return None
        height, width = self.network_size
        return (projection[0, 0] / width, projection[1, 1] / height, projection[0, 2] / width,
                projection[1, 2] / height)

    @property
    def crops(self) -> bool:
        """Whether part of the image is left out of the network's view."""
        return self.crop_box[2:] != self.image_size[::-1]

    def rectify(self, image: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
        """Camera image ``(h, w, ...)`` -> pinhole image of the same size (the image itself
        when nothing is to be undone). Use ``cv2.INTER_NEAREST`` for depth maps."""
        if image.shape[:2] != self.image_size:
            raise ValueError(f"the plan is for {self.image_size} images, got {image.shape[:2]}")
        if self.rectify_maps is None:
            return image
        return cv2.remap(image, *self.rectify_maps, interpolation=interpolation, borderMode=cv2.BORDER_CONSTANT)

    @functools.cached_property  # made once per camera
    def _network_sampling(self) -> _Sampling:
        """How :meth:`apply` samples the camera image (see :class:`_Sampling`)."""
        x0, y0, crop_width, crop_height = self.crop_box
        network_height, network_width = self.network_size
        height, width = self.image_size
        scale_x, scale_y = crop_width / network_width, crop_height / network_height
        # Enlarging puts the outermost centres up to half a camera pixel outside the image:
        # clamped, the edge is repeated there as a resize does, not blended with black.
        columns = np.clip(x0 + (np.arange(network_width) + 0.5) * scale_x - 0.5, 0, width - 1)
        rows = np.clip(y0 + (np.arange(network_height) + 0.5) * scale_y - 0.5, 0, height - 1)
        map_x, map_y = np.meshgrid(columns.astype(np.float32), rows.astype(np.float32))
        if self.rectify_maps is not None:
            rectify_x, rectify_y = self.rectify_maps
            map_x, map_y = (cv2.remap(rectify_x, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
                            cv2.remap(rectify_y, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
        # The filter follows the samples' median spacing in the camera image: a lens magnifies
        # unevenly (the robot camera's barrel lens puts them ~0.8x as far apart as the crop's).
        spacing = [np.abs(np.diff(map_x, axis=1)), np.abs(np.diff(map_y, axis=0))]
        levels, box = _area_filter([float(np.median(gaps[np.isfinite(gaps)])) if np.isfinite(gaps).any() else 1.0
                                    for gaps in spacing])
        window, level_scale = [], 2**levels
        for coordinates, size, limit in ((map_y, box[1], height - 1), (map_x, box[0], width - 1)):
            # Only the pixels the samples read are filtered: their bilinear neighbours and the
            # filters' reach around them, so the result is that of filtering the whole image.
            reached = np.clip(coordinates[np.isfinite(coordinates)], 0, limit)
            first, last = (math.floor(reached.min()), math.floor(reached.max()) + 1) if reached.size else (0, limit)
            # The window starts on a multiple of the level's scale, so its pyramid's pixels are the frame's.
            start = max(0, first - (size + 4) * level_scale) // level_scale * level_scale
            window.append(slice(start, min(limit + 1, last + (size + 4) * level_scale + 1)))
        whole_factors = (self.rectify_maps is None and crop_width % network_width == 0
                         and crop_height % network_height == 0)
        sampling = _Sampling(whole_factors, levels, box, tuple(window), map_x, map_y)
        for coordinates, size, part, level_length, limit in zip(
                (map_y, map_x), box[::-1], window, sampling.level_size, (height - 1, width - 1)):
            inside = (coordinates >= 0) & (coordinates <= limit)
            # Pixel j of the last level is centred on pixel j * scale + (scale - 1) / 2 of the window.
            coordinates -= part.start - 0.5
            coordinates /= level_scale
            coordinates -= 0.5
            if size % 2 == 0:  # cv2.blur writes an even box's mean half a pixel after its centre
                coordinates += 0.5
            # A sample inside the frame stays inside the last level (its edge repeated, as a
            # resize does there) instead of blending in the black beyond it.
            np.clip(coordinates, 0, level_length - 1, out=coordinates, where=inside)
        return sampling

    @functools.cached_property  # made once per camera
    def network_mask(self) -> np.ndarray | None:
        """bool ``(H, W)``: network input pixels whose bilinear source lies wholly inside the
        camera image (False on the rectification border, which the network sees black);
        ``None`` when all do."""
        sampling = self._network_sampling
        return _source_mask((sampling.map_x, sampling.map_y), sampling.level_size)

    def mask_border(self, network_map: np.ndarray) -> np.ndarray:
        """float ``(H, W)`` map at network size -> the same array, NaN (in place) on the
        rectification border (``~network_mask``), as :meth:`to_image` leaves it at camera size."""
        if self.network_mask is not None:
            network_map[~self.network_mask] = np.nan
        return network_map

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Camera image ``(h, w[, C])`` -> network input ``(H, W[, C])``, same dtype (uint8
        RGB, or a float map): rectified, cropped and resized in one resampling (see the
        module docstring), black on the rectification border."""
        if image.shape[:2] != self.image_size:
            raise ValueError(f"the plan is for {self.image_size} images, got {image.shape[:2]}")
        whole_factors, levels, box, window, map_x, map_y = self._network_sampling
        if whole_factors:
            x0, y0, crop_width, crop_height = self.crop_box
            return cv2.resize(image[y0 : y0 + crop_height, x0 : x0 + crop_width], self.network_size[::-1],
                              interpolation=cv2.INTER_AREA)
        source = image[window]
        for _ in range(levels):
            source = _pyramid_step(source)
        if box != (1, 1):
            source = cv2.blur(source, box)
        return cv2.remap(source, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    @functools.cached_property  # made once per camera
    def _border_pixels(self) -> np.ndarray | None:
        """Flat indices of the pinhole pixels inside the network's view that have no source
        pixel (``~source_mask``); ``None`` when there are none."""
        if self.source_mask is None:
            return None
        x0, y0, crop_width, crop_height = self.crop_box
        border = np.zeros(self.image_size, dtype=bool)
        view = (slice(y0, y0 + crop_height), slice(x0, x0 + crop_width))
        border[view] = ~self.source_mask[view]
        pixels = np.flatnonzero(border)
        return pixels if pixels.size else None

    @functools.cached_property
    def shown_mask(self) -> np.ndarray | None:
        """bool ``(H, W)``: network pixels :meth:`to_image` puts on the pinhole image (some
        pixel of the network's view off the rectification border takes them); ``None`` when
        all are. A statistic of the network map over these pixels is that of its image."""
        network_height, network_width = self.network_size
        pixel_index = np.arange(network_height * network_width, dtype=np.float32).reshape(self.network_size)
        taken = self.to_image(pixel_index)  # float32 holds these indices exactly (< 2**24)
        shown = np.zeros(network_height * network_width, dtype=bool)
        shown[taken[np.isfinite(taken)].astype(np.intp)] = True
        return None if shown.all() else shown.reshape(self.network_size)

    def to_image(self, network_map: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Network-size map -> the pinhole image's size, nearest neighbour inside the network's
        view (``cv2.resize`` with ``INTER_NEAREST`` onto the crop): a float ``(H, W)`` map
        (depth) becomes float32 ``(h, w)``, NaN outside the view and on the rectification
        border (``~source_mask``); a uint8 ``(H, W[, C])`` image (colours, colour indices)
        stays uint8, 0 (black) there.

        Args:
            network_map: the map at :attr:`network_size`.
            out: where to write the result (its shape and dtype), e.g. a message's reused
                buffer; a new array when ``None``.
        """
        if network_map.dtype != np.uint8:
            network_map = np.asarray(network_map, dtype=np.float32)
        if network_map.shape[:2] != self.network_size:
            raise ValueError(f"expected a {self.network_size} network map, got {network_map.shape[:2]}")
        shape = self.image_size + network_map.shape[2:]
        if out is None:
            out = np.empty(shape, network_map.dtype)
        elif out.shape != shape or out.dtype != network_map.dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be a contiguous {network_map.dtype} {shape} array, got {out.dtype} {out.shape}")
        fill = 0 if network_map.dtype == np.uint8 else np.nan
        x0, y0, crop_width, crop_height = self.crop_box
        out[:y0] = fill
        out[y0 + crop_height :] = fill
        out[y0 : y0 + crop_height, :x0] = fill
        out[y0 : y0 + crop_height, x0 + crop_width :] = fill
        # Resizing straight into the view of the crop (OpenCV writes into a strided dst of the
        # right size and type): one pass over the image, no index maps.
        cv2.resize(network_map, (crop_width, crop_height), dst=out[y0 : y0 + crop_height, x0 : x0 + crop_width],
                   interpolation=cv2.INTER_NEAREST)
        if self._border_pixels is not None:
            out.reshape(self.image_size[0] * self.image_size[1], -1)[self._border_pixels] = fill
        return out

    def record(self, crop: str = "centre") -> FramePreparation:
        """The :class:`FramePreparation` a checkpoint trained on this plan's frames stores.

        Raises:
            ValueError: the plan has no calibration (normalised intrinsics unknown).
        """
        intrinsics = self.normalised_intrinsics
        if intrinsics is None:
            raise ValueError("an uncalibrated plan has no intrinsics to record")
        fx, fy, cx, cy = (float(value) for value in intrinsics)
        return FramePreparation(rectified=True, crop=crop, fx=fx, fy=fy, cx=cx, cy=cy)


def _area_filter(spacing: list[float]) -> tuple[int, tuple[int, int]]:
    """The pyramid levels and box ``(kx, ky)`` that filter like an area resize whose samples
    are ``spacing = [columns, rows]`` camera pixels apart.

    Variances along each axis, in camera pixels squared: the area resize of footprint f
    averages over f pixels (f**2 / 12) after its bilinear remap (1 / 6). Here each pyramid
    step adds 1 in its input's pixels (1, 4, 16...: :func:`_pyramid_step`), the box of k
    pixels at the last level (k**2 - 1) / 12 and the bilinear sample 1 / 6, both times
    4**levels. A step is taken while the blur it commits to stays within 25 % of the area
    filter's (a step is several times cheaper than a box filter of the same width, whose
    even sizes OpenCV runs on a slow path); the box makes up the rest.
    """
    target = [footprint**2 / 12 + 1 / 6 for footprint in spacing]
    levels = 0
    while (4 ** (levels + 1) - 1) / 3 + 4 ** (levels + 1) / 6 <= 1.25 * min(target):
        levels += 1
    pyramid, scale = (4**levels - 1) / 3, 4**levels
    box = (max(1, round(math.sqrt(1 + 12 * max(0.0, (variance - pyramid) / scale - 1 / 6)))) for variance in target)
    return levels, tuple(box)


PYRAMID_STEP_KERNEL = np.array([3, 26, 3], np.float32) / 32
"""The 3-tap filter after each 2x2 block mean of :func:`_pyramid_step`: variance 3 / 16 of its pixels."""


def _pyramid_step(image: np.ndarray) -> np.ndarray:
    """``(h, w[, C])`` -> ``(h // 2, w // 2[, C])``: means of 2x2 blocks (a trailing odd row or
    column left out), then a 3-tap blur, as smooth as a Gaussian pyramid step (variance 1 of
    the input's pixels: 1 / 4 from the block, 3 / 4 from the blur) at about 0.6 of the cost
    of ``cv2.pyrDown`` (0.39 against 0.63 ms for a 1020x730 frame on a 2-core Xeon): the
    block means are ``cv2.resize``'s fastest path."""
    height, width = image.shape[:2]
    halved = cv2.resize(image[: height - height % 2, : width - width % 2], (width // 2, height // 2),
                        interpolation=cv2.INTER_AREA)
    return cv2.sepFilter2D(halved, -1, PYRAMID_STEP_KERNEL, PYRAMID_STEP_KERNEL)


def _source_mask(maps: tuple[np.ndarray, np.ndarray], image_size: tuple[int, int]) -> np.ndarray | None:
    """bool ``(h, w)``: where both bilinear neighbours of the remap's source lie inside the
    image (anything else blends in the black border); ``None`` when that is everywhere."""
    height, width = image_size
    map_x, map_y = maps
    mask = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)  # NaN maps are False
    return None if mask.all() else mask


def _pinhole_camera(
    calibration: CameraCalibration | None, image_size: tuple[int, int], image_rectified: bool, rectify: bool
) -> tuple[np.ndarray | None, tuple[np.ndarray, np.ndarray] | None, np.ndarray | None]:
    """Projection matrix of the image the network's crop is taken from, the maps that
    make it (``None`` when the image is used as it is) and their :func:`_source_mask`."""
    if calibration is None:
        return None, None, None
    calibration.check_image_size(image_size)
    window = calibration.image_from_full
    if image_rectified:
        return window @ calibration.projection, None, None
    if not rectify:
        return window @ np.concatenate([calibration.camera_matrix, np.zeros((3, 1))], axis=1), None, None
    if not calibration.is_distorted:
        return window @ calibration.projection, None, None
    maps = _rectify_maps(calibration, image_size)
    return window @ calibration.projection, maps, _source_mask(maps, image_size)


def plan_training_frames(
    image_size: tuple[int, int],
    network_size: tuple[int, int],
    calibration: CameraCalibration,
    image_rectified: bool = False,
) -> FramePlan:
    """The plan of a producer of training frames: rectify, centre-crop, resize.

    Args:
        image_size: ``(height, width)`` of the recorded images.
        network_size: ``(height, width)`` of the training frames.
        calibration: the camera's calibration.
        image_rectified: the images are rectified already (no remap, intrinsics P).

    Raises:
        CalibrationMismatchError: the calibration describes another image size.
        CalibrationError: a distortion model that cannot be undone.
    """
    projection, maps, mask = _pinhole_camera(calibration, image_size, image_rectified, rectify=True)
    crop_box = _crop_box(image_size, network_size, "centre")
    plan = FramePlan(tuple(image_size), tuple(network_size), crop_box, projection, maps, mask)
    if _aspect_mismatch(image_size, network_size) > ASPECT_TOLERANCE:
        return dataclasses.replace(plan, notice=_crop_sentence(plan))
    return plan


def plan_for_checkpoint(
    preparation: FramePreparation,
    network_size: tuple[int, int],
    image_size: tuple[int, int],
    calibration: CameraCalibration | None = None,
    image_rectified: bool = False,
    focal_rescale: bool = True,
) -> FramePlan:
    """The plan of a consumer: prepare frames exactly as the checkpoint's training frames were.

    Args:
        preparation: the checkpoint's record.
        network_size: the checkpoint's input ``(height, width)``.
        image_size: ``(height, width)`` of the camera images.
        calibration: the camera's calibration; ``None`` treats the images as pinhole images
            of unknown intrinsics (crop and resize only, no depth factor).
        image_rectified: the images are rectified already (no remap, intrinsics P).
        focal_rescale: multiply depth by the ratio of this camera's normalised focal length
            at the network input to the training camera's (:attr:`FramePlan.depth_factor`).

    Raises:
        CalibrationMismatchError: the calibration describes another image size.
        CalibrationError: a distortion model that cannot be undone.
    """
    projection, maps, mask = _pinhole_camera(calibration, image_size, image_rectified, preparation.rectified)
    crop_box = _crop_box(image_size, network_size, preparation.crop)
    plan = FramePlan(tuple(image_size), tuple(network_size), crop_box, projection, maps, mask)
    sentences = []
    if _aspect_mismatch(image_size, network_size) > ASPECT_TOLERANCE:
        sentences.append(_crop_sentence(plan))
    factor = 1.0
    intrinsics = plan.normalised_intrinsics
    if intrinsics is not None:
        ratio = math.sqrt(intrinsics[0] / preparation.fx * intrinsics[1] / preparation.fy)
        focal = (f"its focal length at the network input (fx/W {intrinsics[0]:.3f}, fy/H {intrinsics[1]:.3f}) "
                 f"is {ratio:.3g}x the training camera's ({preparation.fx:.3f}, {preparation.fy:.3f})")
        if focal_rescale:
            factor = ratio
            if abs(ratio - 1) > FOCAL_TOLERANCE:
                sentences.append(f"{focal}: depth is multiplied by {ratio:.3g} (focal rescale)")
        elif abs(ratio - 1) > FOCAL_TOLERANCE:
            sentences.append(f"{focal}: depth is NOT rescaled (focal rescale off), so true depth is about "
                             f"{ratio:.3g}x the predicted one")
    return dataclasses.replace(plan, depth_factor=factor, notice="; ".join(sentences) or None)


def _aspect_mismatch(image_size: tuple[int, int], network_size: tuple[int, int]) -> float:
    """Relative difference of the two sizes' aspect ratios (0 when equal)."""
    ratio = (image_size[1] / image_size[0]) / (network_size[1] / network_size[0])
    return max(ratio, 1 / ratio) - 1


def _crop_sentence(plan: FramePlan) -> str:
    height, width = plan.image_size
    network_height, network_width = plan.network_size
    _, _, crop_width, crop_height = plan.crop_box
    shape = "wider" if crop_width < width else "taller"
    kept = 100.0 * crop_width * crop_height / (width * height)
    return (f"the camera's {width}x{height} images are {shape} than the network's {network_width}x{network_height} "
            f"input: the network sees their central {crop_width}x{crop_height} pixels ({kept:.0f}% of the image, "
            "not stretched), depth outside them is NaN at input resolution")
