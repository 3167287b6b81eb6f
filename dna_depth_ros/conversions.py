"""sensor_msgs images <-> numpy arrays.

Incoming images are checked with cheap header tests first (:func:`check_image`) so a bad
message is rejected before its pixels are touched. Raw images are then viewed in place
(``np.frombuffer`` on the message buffer, row padding skipped through strides) and
converted to the uint8 RGB the network expects; with a real ROS 2 install, ``cv_bridge``
provides that view instead. Outgoing images are built directly from numpy arrays.
"""

from __future__ import annotations

import array
import sys
from dataclasses import dataclass

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from .bad_input import BadInput

try:  # a real ROS 2 install; the pip environment has no cv_bridge
    from cv_bridge import CvBridge

    _CV_BRIDGE = CvBridge()
except ImportError:
    _CV_BRIDGE = None

HOST_IS_BIG_ENDIAN = sys.byteorder == "big"


@dataclass(frozen=True)
class EncodingLayout:
    """How a ``sensor_msgs/Image`` encoding stores a pixel.

    Attributes:
        channels: values per pixel.
        bytes_per_channel: 1 (uint8) or 2 (uint16).
        to_rgb: OpenCV colour-conversion code to RGB, ``None`` when already RGB.
    """

    channels: int
    bytes_per_channel: int
    to_rgb: int | None

    @property
    def bytes_per_pixel(self) -> int:
        return self.channels * self.bytes_per_channel


_COLOUR_ORDERS = {
    "rgb": (3, None),
    "bgr": (3, cv2.COLOR_BGR2RGB),
    "rgba": (4, cv2.COLOR_RGBA2RGB),
    "bgra": (4, cv2.COLOR_BGRA2RGB),
    "mono": (1, cv2.COLOR_GRAY2RGB),
}

ENCODINGS: dict[str, EncodingLayout] = {
    f"{order}{bits}": EncodingLayout(channels, bits // 8, code)
    for order, (channels, code) in _COLOUR_ORDERS.items()
    for bits in (8, 16)
}
"""Raw image encodings the node accepts (REP 104 names), 8 and 16 bits per channel."""


def check_image(msg: Image, max_pixels: int) -> EncodingLayout:
    """Validate a raw image's header against its data without reading the pixels.

    Args:
        msg: the incoming image.
        max_pixels: largest accepted ``height * width``.

    Returns:
        The layout of ``msg.encoding``.

    Raises:
        BadInput: empty, too large, unsupported encoding, ``step`` shorter than a row,
            or ``len(data) != height * step``.
    """
    if msg.height == 0 or msg.width == 0 or len(msg.data) == 0:
        raise BadInput("empty_image", f"empty image ({msg.width}x{msg.height} pixels, {len(msg.data)} bytes of data)")
    if msg.height * msg.width > max_pixels:
        raise BadInput(
            "image_too_large",
            f"image of {msg.width}x{msg.height} pixels exceeds max_input_pixels={max_pixels}; "
            "raise the parameter or publish a smaller image",
        )
    layout = ENCODINGS.get(msg.encoding)
    if layout is None:
        raise BadInput(
            "unsupported_encoding",
            f"unsupported image encoding {msg.encoding!r}; use one of {sorted(ENCODINGS)} "
            "or the compressed transport (image_transport: compressed)",
        )
    if msg.step < msg.width * layout.bytes_per_pixel:
        raise BadInput(
            "invalid_step",
            f"step {msg.step} bytes is shorter than a row of {msg.width} {msg.encoding} pixels "
            f"({msg.width * layout.bytes_per_pixel} bytes)",
        )
    if len(msg.data) != msg.height * msg.step:
        raise BadInput(
            "data_size_mismatch",
            f"image data has {len(msg.data)} bytes but height x step = {msg.height} x {msg.step} = "
            f"{msg.height * msg.step}",
        )
    return layout


def _view_pixels(msg: Image, layout: EncodingLayout) -> np.ndarray:
    """Zero-copy ``(H, W, C)`` view of a checked image's pixels in native byte order.

    Multi-byte images in the other byte order are the one case that needs a copy.
    """
    rows = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)
    rows = rows[:, : msg.width * layout.bytes_per_pixel]
    if layout.bytes_per_channel == 2:
        rows = rows.view(np.dtype(">u2" if msg.is_bigendian else "<u2"))
        if bool(msg.is_bigendian) != HOST_IS_BIG_ENDIAN:
            rows = rows.astype(np.uint16)
    return rows.reshape(msg.height, msg.width, layout.channels)


def image_to_rgb(msg: Image, layout: EncodingLayout) -> np.ndarray:
    """Pixels of an image checked by :func:`check_image` as uint8 RGB.

    16-bit channels keep their 8 most significant bits (full-range scaling, 65535 -> 255).

    Returns:
        uint8 ``(H, W, 3)`` RGB; a view of the message buffer (no copy) for ``rgb8``.
    """
    # cv_bridge versions differ on row padding and foreign byte order; use it where all agree.
    unpadded = msg.step == msg.width * layout.bytes_per_pixel
    native_order = layout.bytes_per_channel == 1 or bool(msg.is_bigendian) == HOST_IS_BIG_ENDIAN
    if _CV_BRIDGE is not None and unpadded and native_order:
        pixels = _CV_BRIDGE.imgmsg_to_cv2(msg, desired_encoding="passthrough")
        pixels = pixels.reshape(msg.height, msg.width, layout.channels)
    else:
        pixels = _view_pixels(msg, layout)
    if layout.bytes_per_channel == 2:
        pixels = (pixels >> 8).astype(np.uint8)
    if layout.to_rgb is None:
        return pixels
    return cv2.cvtColor(pixels, layout.to_rgb)


def compressed_to_rgb(msg: CompressedImage, max_pixels: int) -> np.ndarray:
    """Decode a JPEG or PNG ``sensor_msgs/CompressedImage`` to uint8 ``(H, W, 3)`` RGB.

    ``format`` follows image_transport (``"jpeg"``, ``"png"``, ``"rgb8; jpeg compressed
    bgr8"``...); an empty format is decoded by content.

    Raises:
        BadInput: empty, not JPEG/PNG (e.g. ``compressedDepth``), undecodable, or more
            than ``max_pixels`` pixels once decoded.
    """
    if len(msg.data) == 0:
        raise BadInput("empty_image", "empty compressed image (no data)")
    image_format = msg.format.lower()
    if "compresseddepth" in image_format or (
        image_format and not any(name in image_format for name in ("jpeg", "jpg", "png"))
    ):
        raise BadInput("unsupported_encoding", f"unsupported compressed format {msg.format!r}; publish jpeg or png")
    # No valid JPEG/PNG of at most max_pixels is larger than its raw 3-byte pixels plus
    # headers; refusing bigger blobs bounds the memory the decoder may allocate.
    if len(msg.data) > 3 * max_pixels + 65536:
        raise BadInput(
            "image_too_large", f"compressed image of {len(msg.data)} bytes exceeds max_input_pixels={max_pixels}"
        )
    bgr = cv2.imdecode(np.frombuffer(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise BadInput("undecodable_image", f"could not decode {len(msg.data)} bytes of {msg.format or 'unnamed'} data")
    height, width = bgr.shape[:2]
    if height * width > max_pixels:
        raise BadInput(
            "image_too_large",
            f"image of {width}x{height} pixels exceeds max_input_pixels={max_pixels}; "
            "raise the parameter or publish a smaller image",
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def to_byte_array(values: np.ndarray) -> array.array:
    """Copy a C-contiguous array's bytes into the ``array('B')`` ROS message fields take as-is."""
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(values).reshape(-1).view(np.uint8))
    return data


def depth_image_msg(depth: np.ndarray, header: Header) -> Image:
    """A REP 118 depth image: float32 ``(H, W)`` metres -> ``32FC1`` ``sensor_msgs/Image``.

    NaN marks pixels without a valid depth; the header (stamp, optical frame) is reused.
    """
    if depth.ndim != 2 or depth.dtype != np.float32:
        raise ValueError(f"depth must be a float32 (H, W) array, got {depth.dtype} {depth.shape}")
    height, width = depth.shape
    return Image(
        header=header,
        height=height,
        width=width,
        encoding="32FC1",
        is_bigendian=HOST_IS_BIG_ENDIAN,
        step=width * 4,
        data=to_byte_array(depth),
    )


def bgr8_image_msg(bgr: np.ndarray, header: Header) -> Image:
    """uint8 ``(H, W, 3)`` BGR -> ``bgr8`` ``sensor_msgs/Image`` with the given header."""
    if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (H, W, 3) BGR image, got {bgr.dtype} {bgr.shape}")
    height, width = bgr.shape[:2]
    return Image(
        header=header,
        height=height,
        width=width,
        encoding="bgr8",
        is_bigendian=False,
        step=width * 3,
        data=to_byte_array(bgr),
    )
