"""Raw messages as a bag stores them, the message types this package reads, and their header stamps."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from rosbags.typesys import Stores, get_typestore

TYPESTORE = get_typestore(Stores.LATEST)
"""Message definitions used to deserialise: the standard ROS 2 messages this package reads
(sensor_msgs, nav_msgs, std_msgs) have kept their wire format since ROS 2 Foxy."""

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
ODOMETRY_TYPE = "nav_msgs/msg/Odometry"


@dataclass(frozen=True)
class RawMessage:
    """One serialised message as stored in a bag.

    Attributes:
        topic: topic name, e.g. ``"/camera/image_raw"``.
        msgtype: ROS 2 type name, e.g. ``"sensor_msgs/msg/Image"``.
        log_time: recording time in nanoseconds since the epoch (when the recorder got it).
        data: the CDR-serialised message.
    """

    topic: str
    msgtype: str
    log_time: int
    data: bytes

    def deserialize(self):
        """The message as a ``rosbags`` message object (attributes as in the ``.msg`` file)."""
        return TYPESTORE.deserialize_cdr(self.data, self.msgtype)


def header_stamp_ns(data: bytes) -> int:
    """``header.stamp`` in nanoseconds, read straight from a CDR message starting with a Header.

    Every message type with a ``std_msgs/Header`` first field (Image, CompressedImage,
    CameraInfo, Odometry...) serialises the stamp's ``int32 sec`` and ``uint32 nanosec``
    right after the 4-byte encapsulation header, so sorting frames does not need a full
    (image-copying) deserialisation.
    """
    if len(data) < 12:
        raise ValueError(f"a CDR message with a header needs at least 12 bytes, got {len(data)}")
    byte_order = "<" if data[1] & 1 else ">"
    seconds, nanoseconds = struct.unpack_from(f"{byte_order}iI", data, 4)
    return seconds * 1_000_000_000 + nanoseconds
