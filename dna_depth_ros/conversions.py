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
    """The bytes of a C-contiguous array as the ``array('B')`` ROS message fields take as is:
    the one it views when it is a whole :meth:`ReusedBuffer.take` array (filled in place, so
    no copy), else a copy."""
    owner = _viewed_byte_array(values)
    if owner is not None:
        return owner
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(values).reshape(-1).view(np.uint8))
    return data


def _viewed_byte_array(values: np.ndarray) -> array.array | None:
    """The ``array('B')`` whose every byte ``values`` views in order (``None`` if there is none)."""
    base = values.base
    while isinstance(base, np.ndarray):
        base = base.base
    owner = base.obj if isinstance(base, memoryview) else base
    if (isinstance(owner, array.array) and owner.typecode == "B" and values.flags.c_contiguous
            and values.nbytes == len(owner) and values.ctypes.data == owner.buffer_info()[0]):
        return owner
    return None


class ReusedBuffer:
    """The data of one output's messages, reused from frame to frame.

    rclpy copies a message's data when it is published, so once the message and every view
    of its bytes are gone, the same bytes can take the next frame's: writing a 14 MB cloud
    into memory already mapped costs a fraction of a fresh allocation (page faults) plus a
    copy. While anything still holds them (a caller that keeps messages), a new buffer is
    made instead, so a message's data never changes under its holder.
    """

    def __init__(self) -> None:
        self._data: array.array | None = None

    def take(self, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
        """A writable C-contiguous ``shape`` array of ``dtype`` over the buffer (old contents
        or zeros): fill it, then build the message from it (:func:`to_byte_array` takes it as is)."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        data = self._data
        # References: this attribute, the local name and getrefcount's argument; any more is a
        # message or a view still holding the bytes.
        if data is None or len(data) != nbytes or sys.getrefcount(data) > 3:
            data = self._data = array.array("B", bytes(nbytes))
        return np.frombuffer(data, dtype=dtype).reshape(shape)


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
