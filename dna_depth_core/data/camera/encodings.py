"""The one table of camera image encodings, and decoding to uint8 RGB.

Used by the depth node (``sensor_msgs`` messages from rclpy), bag reading (messages
deserialised by ``rosbags``), the sample-bag writer and the demo: both kinds of message
objects share the field names of ``sensor_msgs/Image`` (``encoding``, ``height``,
``width``, ``step``, ``is_bigendian``, ``data``) and ``sensor_msgs/CompressedImage``
(``format``, ``data``), so one decoder serves all of them and training and inference see
the same pixels.

Raw images (``sensor_msgs/image_encodings`` names): ``rgb8``, ``bgr8``, ``rgba8``,
``bgra8``, ``mono8`` and their 16-bit variants (``rgb16``...), in either byte order
(``is_bigendian``); the Bayer mosaics of raw machine-vision cameras (``bayer_rggb8``,
``bayer_bggr8``, ``bayer_gbrg8``, ``bayer_grbg8`` and their 16-bit variants), demosaiced
bilinearly by OpenCV; and packed YUV 4:2:2 as USB (UVC) cameras deliver it (``yuv422`` =
UYVY, ``yuv422_yuy2`` = YUYV, and the newer names ``uyvy`` and ``yuyv``; ITU-R BT.601,
OpenCV's conversion, even widths only). 16-bit values keep their 8 most significant bits
(65535 -> 255), mono images are repeated on three channels, alpha is dropped. Compressed
images: JPEG and PNG as image_transport's compressed plugin writes
them (``format`` such as ``"jpeg"`` or ``"rgb8; jpeg compressed bgr8"``; an empty format
is decoded by content). Depth images (``32FC1``, ``compressedDepth``) and planar YUV
(``nv21``, ``nv24``) are not camera images here.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class PixelLayout:
    """How a raw ``sensor_msgs/Image`` encoding stores one pixel.

    Attributes:
        channels: values per pixel (1, 2 for YUV 4:2:2, 3 or 4).
        bytes_per_channel: 1 (uint8) or 2 (uint16).
        order: ``"rgb"``, ``"bgr"`` or ``"mono"``: the colour order of the first channels
            (a fourth channel is alpha); ``"bayer_rggb"``... : a one-value mosaic whose
            top-left 2x2 block has these colours, row by row; ``"uyvy"`` or ``"yuyv"``:
            packed YUV 4:2:2, two pixels in four bytes in this order.
    """

    channels: int
    bytes_per_channel: int
    order: str

    @property
    def bytes_per_pixel(self) -> int:
        return self.channels * self.bytes_per_channel

    @property
    def subsampled(self) -> bool:
        """Colour is sampled more coarsely than the pixels (Bayer, YUV 4:2:2): decoding
        interpolates, so an RGB image does not come back exactly."""
        return self.order.startswith("bayer") or self.order in _YUV_TO_RGB

    @property
    def dtype(self) -> np.dtype:
        """numpy dtype of one channel value (native byte order)."""
        return np.dtype(np.uint8 if self.bytes_per_channel == 1 else np.uint16)


_CHANNEL_ORDERS = {"rgb": (3, "rgb"), "bgr": (3, "bgr"), "rgba": (4, "rgb"), "bgra": (4, "bgr"), "mono": (1, "mono")}

# OpenCV's Bayer codes name the patterns otherwise than ROS: ROS's rggb (the top-left 2x2
# block, row by row) is OpenCV's BayerBG. The decoding test checks each on colour patches.
_BAYER_TO_RGB = {"rggb": cv2.COLOR_BayerBG2RGB, "bggr": cv2.COLOR_BayerRG2RGB, "gbrg": cv2.COLOR_BayerGR2RGB,
                 "grbg": cv2.COLOR_BayerGB2RGB}
_YUV_TO_RGB = {"uyvy": cv2.COLOR_YUV2RGB_UYVY, "yuyv": cv2.COLOR_YUV2RGB_YUYV}
_RGB_TO_YUV = {"uyvy": cv2.COLOR_RGB2YUV_UYVY, "yuyv": cv2.COLOR_RGB2YUV_YUYV}

ENCODINGS: dict[str, PixelLayout] = {
    **{f"{name}{bits}": PixelLayout(channels, bits // 8, order)
       for name, (channels, order) in _CHANNEL_ORDERS.items() for bits in (8, 16)},
    **{f"bayer_{pattern}{bits}": PixelLayout(1, bits // 8, f"bayer_{pattern}")
       for pattern in _BAYER_TO_RGB for bits in (8, 16)},
    "yuv422": PixelLayout(2, 1, "uyvy"),
    "yuv422_yuy2": PixelLayout(2, 1, "yuyv"),
    "uyvy": PixelLayout(2, 1, "uyvy"),
    "yuyv": PixelLayout(2, 1, "yuyv"),
}
"""Raw camera image encodings (``sensor_msgs/image_encodings`` names) -> their pixel layout."""

COMPRESSED_FORMATS = ("jpeg", "png")
"""Compressed image formats (what image_transport's compressed plugin writes)."""

DECODE_ERROR_KINDS = (
    "unsupported_encoding",
    "empty_image",
    "invalid_step",
    "data_size_mismatch",
    "image_too_large",
    "undecodable_image",
)


class ImageDecodeError(ValueError):
    """An image message that cannot be decoded as a camera image.

    Attributes:
        kind: one of :data:`DECODE_ERROR_KINDS` (``"unsupported_encoding"`` means the
            stream is not a camera image at all; the others are one broken frame).
    """

    def __init__(self, kind: str, message: str) -> None:
        if kind not in DECODE_ERROR_KINDS:
            raise ValueError(f"unknown image decode error kind {kind!r}")
        super().__init__(message)
        self.kind = kind


def check_raw_image(
    encoding: str, height: int, width: int, step: int, data_size: int, max_pixels: int | None = None
) -> PixelLayout:
    """Check a raw image's header against its data size without touching the pixels.

    Args:
        encoding, height, width, step: the ``sensor_msgs/Image`` fields.
        data_size: ``len(data)`` in bytes.
        max_pixels: largest accepted ``height * width``; ``None`` for no limit.

    Returns:
        The layout of ``encoding``.

    Raises:
        ImageDecodeError: empty, too large, unsupported encoding, ``step`` shorter than a
            row, or ``data_size != height * step`` (what ``sensor_msgs/Image`` specifies).
    """
    if height == 0 or width == 0 or data_size == 0:
        raise ImageDecodeError("empty_image", f"empty image ({width}x{height} pixels, {data_size} bytes of data)")
    if max_pixels is not None and height * width > max_pixels:
        raise ImageDecodeError(
            "image_too_large",
            f"image of {width}x{height} pixels exceeds max_input_pixels={max_pixels}; "
            "raise the parameter or publish a smaller image",
        )
    layout = ENCODINGS.get(encoding)
    if layout is None:
        raise ImageDecodeError(
            "unsupported_encoding",
            f"image encoding {encoding!r} is not a supported camera image; use one of {', '.join(ENCODINGS)} "
            "or the compressed transport (jpeg, png)",
        )
    if layout.order in _YUV_TO_RGB and width % 2:
        raise ImageDecodeError(
            "invalid_step", f"a {encoding} row holds pixel pairs, but the image is {width} pixels wide (odd)"
        )
    if step < width * layout.bytes_per_pixel:
        raise ImageDecodeError(
            "invalid_step",
            f"step {step} bytes is shorter than a row of {width} {encoding} pixels "
            f"({width * layout.bytes_per_pixel} bytes)",
        )
    if data_size != height * step:
        raise ImageDecodeError(
            "data_size_mismatch",
            f"image data has {data_size} bytes but height x step = {height} x {step} = {height * step}",
        )
    return layout


def raw_to_rgb8(
    encoding: str, height: int, width: int, step: int, is_bigendian: bool, data, max_pixels: int | None = None
) -> np.ndarray:
    """Pixels of a raw ``sensor_msgs/Image`` as uint8 ``(height, width, 3)`` RGB.

    ``data`` is anything exposing its bytes (``bytes``, ``array.array``, a uint8 numpy
    array); row padding (``step`` longer than a row) is skipped through strides.

    Returns:
        A view of ``data`` (no copy) for unpadded ``rgb8``, else a new array.

    Raises:
        ImageDecodeError: see :func:`check_raw_image`.
    """
    buffer = np.frombuffer(data, dtype=np.uint8)
    layout = check_raw_image(encoding, height, width, step, buffer.size, max_pixels)
    rows = buffer.reshape(height, step)[:, : width * layout.bytes_per_pixel]
    if layout.bytes_per_channel == 2:
        # A view with the message's byte order; the shift gives native uint16 values.
        wide = np.ascontiguousarray(rows).view(">u2" if is_bigendian else "<u2")
        pixels = (wide >> 8).astype(np.uint8).reshape(height, width, layout.channels)
    else:
        pixels = rows.reshape(height, width, layout.channels)
    if layout.order == "mono":
        return cv2.cvtColor(np.ascontiguousarray(pixels[..., 0]), cv2.COLOR_GRAY2RGB)
    if layout.order.startswith("bayer"):
        return cv2.cvtColor(np.ascontiguousarray(pixels[..., 0]), _BAYER_TO_RGB[layout.order[len("bayer_"):]])
    if layout.order in _YUV_TO_RGB:
        return cv2.cvtColor(np.ascontiguousarray(pixels), _YUV_TO_RGB[layout.order])
    if layout.order == "bgr":
        return cv2.cvtColor(np.ascontiguousarray(pixels[..., :3]), cv2.COLOR_BGR2RGB)
    return pixels if layout.channels == 3 else np.ascontiguousarray(pixels[..., :3])


def compressed_to_rgb8(image_format: str, data, max_pixels: int | None = None) -> np.ndarray:
    """A JPEG or PNG ``sensor_msgs/CompressedImage`` as uint8 ``(H, W, 3)`` RGB.

    16-bit PNGs are reduced to 8 bits and grey images repeated on three channels (OpenCV's
    colour decoding).

    Raises:
        ImageDecodeError: empty; a format that is neither JPEG nor PNG (e.g.
            ``compressedDepth``); a payload larger than any image of ``max_pixels`` pixels
            could be, or undecodable, or more than ``max_pixels`` pixels once decoded.
    """
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size == 0:
        raise ImageDecodeError("empty_image", "empty compressed image (no data)")
    lowered = image_format.lower().replace(" ", "")
    if "compresseddepth" in lowered or (lowered and not any(name in lowered for name in ("jpeg", "jpg", "png"))):
        raise ImageDecodeError(
            "unsupported_encoding",
            f"compressed image format {image_format!r} is not a camera image; use jpeg or png",
        )
    # No valid JPEG/PNG of at most max_pixels is larger than its raw 3-byte pixels plus
    # headers; refusing bigger blobs bounds the memory the decoder may allocate.
    if max_pixels is not None and buffer.size > 3 * max_pixels + 65536:
        raise ImageDecodeError(
            "image_too_large", f"compressed image of {buffer.size} bytes exceeds max_input_pixels={max_pixels}"
        )
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageDecodeError(
            "undecodable_image", f"could not decode {buffer.size} bytes of {image_format or 'unnamed'} data"
        )
    height, width = bgr.shape[:2]
    if max_pixels is not None and height * width > max_pixels:
        raise ImageDecodeError(
            "image_too_large",
            f"image of {width}x{height} pixels exceeds max_input_pixels={max_pixels}; "
            "raise the parameter or publish a smaller image",
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def is_compressed_message(message) -> bool:
    """Whether an image message object is a ``CompressedImage`` (it has ``format``, not ``encoding``)."""
    return hasattr(message, "format") and not hasattr(message, "encoding")


def decode_image_message(message, max_pixels: int | None = None) -> np.ndarray:
    """uint8 ``(H, W, 3)`` RGB from an ``Image`` or ``CompressedImage`` message object
    (rclpy or rosbags).

    Raises:
        ImageDecodeError: see :func:`raw_to_rgb8` and :func:`compressed_to_rgb8`.
    """
    if is_compressed_message(message):
        return compressed_to_rgb8(message.format, message.data, max_pixels)
    return raw_to_rgb8(
        message.encoding, message.height, message.width, message.step, bool(message.is_bigendian),
        message.data, max_pixels,
    )


def rgb8_to_encoding(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """uint8 ``(H, W, 3)`` RGB as the pixels of ``encoding``: ``(H, W, C)`` (``(H, W)`` for
    mono) in its channel order and value type, what a camera driver would publish.

    Grey is the ITU-R BT.601 luma OpenCV computes, alpha is opaque (255 or 65535), 16-bit
    values are ``value * 257`` so that :func:`raw_to_rgb8` gives ``rgb`` back (mono:
    its grey); a Bayer mosaic keeps each pixel's own colour, YUV 4:2:2 is OpenCV's BT.601
    conversion (both decode to an interpolated ``rgb``, see :attr:`PixelLayout.subsampled`).
    """
    layout = ENCODINGS.get(encoding)
    if layout is None:
        raise ValueError(f"encoding must be one of {sorted(ENCODINGS)}, got {encoding!r}")
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) RGB image, got {rgb.dtype} {rgb.shape}")
    if layout.order in _RGB_TO_YUV:
        return cv2.cvtColor(rgb, _RGB_TO_YUV[layout.order])
    if layout.order == "mono":
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None]
    elif layout.order.startswith("bayer"):
        # Channel index (R 0, G 1, B 2) of each position of the 2x2 block, tiled over the image.
        block = np.array(["rgb".index(colour) for colour in layout.order[len("bayer_"):]]).reshape(2, 2)
        height, width = rgb.shape[:2]
        channel = np.tile(block, (height // 2 + 1, width // 2 + 1))[:height, :width]
        pixels = np.take_along_axis(rgb, channel[..., None], axis=2)
    else:
        pixels = rgb[..., ::-1] if layout.order == "bgr" else rgb
        if layout.channels == 4:
            pixels = np.concatenate([pixels, np.full((*rgb.shape[:2], 1), 255, np.uint8)], axis=2)
    if layout.bytes_per_channel == 2:
        pixels = pixels.astype(np.uint16) * 257
    pixels = np.ascontiguousarray(pixels)
    return pixels[..., 0] if layout.channels == 1 else pixels
