"""sensor_msgs images <-> numpy arrays.

Incoming images are decoded by the core (:mod:`dna_depth_core.data.camera.encodings`, the
one encoding table, which bag fine-tuning uses too, so training and the node see the same
pixels); this module turns its errors into the node's bad-input kinds. :func:`check_image`
runs the cheap header tests in the subscription callback so a bad message is rejected
before its pixels are touched. Outgoing images are built directly from numpy arrays.
"""

from __future__ import annotations

import array
import sys

import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from dna_depth_core.data.camera.encodings import ImageDecodeError, check_raw_image, decode_image_message

from .bad_input import BadInput

HOST_IS_BIG_ENDIAN = sys.byteorder == "big"


def check_image(msg: Image, max_pixels: int) -> None:
    """Validate a raw image's header against its data size without reading the pixels.

    Raises:
        BadInput: empty, more than ``max_pixels`` pixels, unsupported encoding, ``step``
            shorter than a row, or ``len(data) != height * step``.
    """
    try:
        check_raw_image(msg.encoding, msg.height, msg.width, msg.step, len(msg.data), max_pixels)
    except ImageDecodeError as error:
        raise BadInput(error.kind, str(error)) from None


def image_to_rgb(msg: Image | CompressedImage, max_pixels: int) -> np.ndarray:
    """uint8 ``(H, W, 3)`` RGB of a raw or compressed image (a view of the message buffer
    for unpadded ``rgb8``).

    Raises:
        BadInput: the kinds of :func:`check_image`, plus ``undecodable_image`` for a
            compressed payload that cannot be decoded.
    """
    try:
        return decode_image_message(msg, max_pixels)
    except ImageDecodeError as error:
        raise BadInput(error.kind, str(error)) from None


def to_byte_array(values: np.ndarray) -> array.array:
    """Copy a C-contiguous array's bytes into the ``array('B')`` ROS message fields take as-is."""
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(values).reshape(-1).view(np.uint8))
    return data


def message_with_data(message_type: type, pixels: np.ndarray, **fields):
    """A ``message_type`` message (``Image``, ``PointCloud2``) with ``fields`` and the bytes
    of ``pixels`` as its ``data``, copied once.

    Passed to the constructor, ``data`` would be copied twice more (the generated
    ``__init__`` and setter both rebuild the array unless fields are checked); with
    ``check_fields`` the setter keeps the ``array('B')`` it is given.
    """
    message = message_type(check_fields=True, **fields)
    message.data = to_byte_array(pixels)
    return message


def depth_image_msg(depth: np.ndarray, header: Header) -> Image:
    """A REP 118 depth image: float32 ``(H, W)`` metres -> ``32FC1`` ``sensor_msgs/Image``.

    NaN marks pixels without a valid depth; the header (stamp, optical frame) is reused.
    """
    if depth.ndim != 2 or depth.dtype != np.float32:
        raise ValueError(f"depth must be a float32 (H, W) array, got {depth.dtype} {depth.shape}")
    height, width = depth.shape
    return message_with_data(
        Image, depth, header=header, height=height, width=width, encoding="32FC1", is_bigendian=HOST_IS_BIG_ENDIAN,
        step=width * 4,
    )


def bgr8_image_msg(bgr: np.ndarray, header: Header) -> Image:
    """uint8 ``(H, W, 3)`` BGR -> ``bgr8`` ``sensor_msgs/Image`` with the given header."""
    if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (H, W, 3) BGR image, got {bgr.dtype} {bgr.shape}")
    height, width = bgr.shape[:2]
    return message_with_data(
        Image, bgr, header=header, height=height, width=width, encoding="bgr8", is_bigendian=False, step=width * 3
    )
