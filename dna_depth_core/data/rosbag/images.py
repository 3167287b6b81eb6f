"""Camera images from bag messages, through the one decoder of :mod:`dna_depth_core.data.camera.encodings`."""

from __future__ import annotations

import numpy as np

from dna_depth_core.data.camera.encodings import ENCODINGS, ImageDecodeError, decode_image_message
from dna_depth_core.errors import UserError

from .messages import COMPRESSED_IMAGE_TYPE, IMAGE_TYPE, RawMessage


class CorruptImageError(ValueError):
    """One image message whose payload cannot be decoded (the frame is skipped)."""


def decode_image(message: RawMessage) -> np.ndarray:
    """uint8 ``(H, W, 3)`` RGB from an Image or CompressedImage :class:`RawMessage`, through
    :func:`~dna_depth_core.data.camera.encodings.decode_image_message` (the node's decoder).

    Raises:
        UserError: the topic holds no camera images (depth, Bayer... encodings).
        CorruptImageError: this one message is broken (sizes that disagree, undecodable data).
    """
    if message.msgtype not in (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE):
        raise ValueError(f"{message.topic} carries {message.msgtype}, not an image type")
    try:
        return decode_image_message(message.deserialize())
    except ImageDecodeError as error:
        if error.kind == "unsupported_encoding":
            raise UserError(f"{message.topic}: {error}. Choose the colour camera topic with --image-topic") from None
        raise CorruptImageError(str(error)) from None


def image_encoding(message: RawMessage) -> str:
    """The encoding (Image) or format (CompressedImage) string of an image message."""
    image = message.deserialize()
    return image.format if message.msgtype == COMPRESSED_IMAGE_TYPE else image.encoding


def _is_camera_encoding(msgtype: str, encoding: str) -> bool:
    """Whether an Image encoding / CompressedImage format (:func:`image_encoding`) is a camera image."""
    if msgtype == IMAGE_TYPE:
        return encoding in ENCODINGS
    return "compresseddepth" not in encoding.lower().replace(" ", "")
