"""Reading recorded ROS 2 bags without a ROS install: topics, images, calibration, odometry.

A *bag* is a rosbag2 folder (``metadata.yaml`` plus ``.db3`` or ``.mcap`` storage files) or a
single ``.db3`` / ``.mcap`` file. :class:`RecordedBag` opens it with the pure-Python
``rosbags`` library and yields raw CDR messages (:class:`~.messages.RawMessage`) of chosen
topics. What is done with them lives beside it: :mod:`.topics` finds the camera in a bag,
:mod:`.images`, :mod:`.camera_info` and :mod:`.odometry` turn messages into numpy images
(with the decoder of :mod:`dna_depth_core.data.camera`, which the depth node uses too), the
camera's calibration, and travelled distances; this module exports all of it (``__all__``).

Recordings that were cut short (the recorder was killed, the disk filled up) are read up to
the damage instead of being rejected:

* a folder whose ``metadata.yaml`` is missing is read from its storage files;
* a ``.db3`` file shorter than its header says is opened through a read-only SQLite VFS
  that presents only its complete pages, and rows are read in insertion order until the
  first missing page (:mod:`.sqlite_salvage`);
* an ``.mcap`` file without its summary and footer is scanned record by record (chunks
  included, even the last, partial one) until the first incomplete record
  (:mod:`.mcap_salvage`).

Each of these emits a :class:`DamagedBagWarning` saying what was lost. Anything that is not
a bag at all raises :class:`~dna_depth_core.errors.UserError`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import apsw
from rosbags.rosbag2 import Reader, ReaderError

from dna_depth_core.errors import UserError

from .camera_info import read_calibration
from .images import CorruptImageError, decode_image, image_encoding
from .mcap_salvage import _McapSalvageSource
from .messages import (
    CAMERA_INFO_TYPE,
    COMPRESSED_IMAGE_TYPE,
    IMAGE_TYPE,
    ODOMETRY_TYPE,
    TYPESTORE,
    RawMessage,
    header_stamp_ns,
)
from .odometry import OdometryTrack, read_odometry
from .sqlite_salvage import _SqliteSalvageSource
from .topics import CameraTopics, require_topic, select_camera_topics

# The bag-reading API in one import: the reader is here, what reads its messages beside it.
__all__ = [
    "CAMERA_INFO_TYPE",
    "COMPRESSED_IMAGE_TYPE",
    "IMAGE_TYPE",
    "ODOMETRY_TYPE",
    "STORAGE_SUFFIXES",
    "TYPESTORE",
    "CameraTopics",
    "CorruptImageError",
    "DamagedBagWarning",
    "OdometryTrack",
    "RawMessage",
    "RecordedBag",
    "decode_image",
    "header_stamp_ns",
    "image_encoding",
    "read_calibration",
    "read_odometry",
    "require_topic",
    "select_camera_topics",
]

STORAGE_SUFFIXES = (".db3", ".mcap")
"""File suffixes of rosbag2 storage files."""


class DamagedBagWarning(UserWarning):
    """A bag was cut short or is partly unreadable; it is read up to the damage."""


def _natural_key(path: Path) -> list:
    """Sort ``bag_10.db3`` after ``bag_2.db3`` (rosbag2 numbers split files)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


class RecordedBag:
    """A recorded ROS 2 bag: lists its topics and iterates raw messages of chosen topics.

    Args:
        path: a rosbag2 folder, or one ``.db3`` / ``.mcap`` storage file.

    Raises:
        UserError: the path does not exist, holds no storage file, or nothing in it is readable.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise UserError(f"bag {str(self.path)!r} does not exist; give a rosbag2 folder or a .db3/.mcap file")
        if self.path.is_dir():
            self.storage_files = sorted(
                (item for item in self.path.iterdir() if item.suffix in STORAGE_SUFFIXES), key=_natural_key
            )
            if not self.storage_files:
                raise UserError(
                    f"{str(self.path)!r} is not a ROS 2 bag: it holds no .db3 or .mcap file "
                    "(record one with 'ros2 bag record' or 'dna-depth make-sample-bag')"
                )
        elif self.path.suffix in STORAGE_SUFFIXES:
            self.storage_files = [self.path]
        else:
            raise UserError(
                f"{str(self.path)!r} is not a ROS 2 bag: expected a rosbag2 folder or a .db3/.mcap file"
                + (" (ROS 1 .bag files: convert with 'rosbags-convert')" if self.path.suffix == ".bag" else "")
            )
        self._sources = self._open_sources()
        self.topics: dict[str, str] = {}
        """Topic name -> message type, over all storage files."""
        self.message_counts: dict[str, int] = {}
        """Topic name -> number of readable messages (as far as the files' indexes say)."""
        for source in self._sources:
            for topic, (msgtype, count) in source.topics().items():
                self.topics.setdefault(topic, msgtype)
                self.message_counts[topic] = self.message_counts.get(topic, 0) + count
        if not self.topics:
            raise UserError(f"bag {str(self.path)!r} holds no topics; is the recording empty?")

    def identity(self) -> list[tuple[str, int, int]]:
        """``(resolved path, size in bytes, mtime in ns)`` of every storage file, for cache keys."""
        identity = []
        for storage in self.storage_files:
            status = storage.stat()
            identity.append((str(storage.resolve()), status.st_size, status.st_mtime_ns))
        return identity

    def topics_of_type(self, *msgtypes: str) -> list[str]:
        """Names of the topics whose type is one of ``msgtypes``, sorted."""
        return sorted(topic for topic, msgtype in self.topics.items() if msgtype in msgtypes)

    def messages(self, topics: Iterable[str]) -> Iterator[RawMessage]:
        """Raw messages of ``topics``, storage file by storage file in recording order.

        A read error part-way (a damaged chunk or page) ends the iteration with a
        :class:`DamagedBagWarning` instead of an exception.
        """
        wanted = set(topics)
        if unknown := wanted - set(self.topics):
            raise ValueError(f"topics {sorted(unknown)} are not in bag {str(self.path)!r}")
        for source in self._sources:
            yield from source.messages(wanted)

    def _open_sources(self) -> list[_RosbagsSource | _SqliteSalvageSource | _McapSalvageSource]:
        if self.path.is_dir() and (self.path / "metadata.yaml").exists():
            try:
                return [_RosbagsSource(self.path)]
            except (ReaderError, apsw.Error, OSError, KeyError, ValueError) as error:
                folder_problem = f"cannot be opened as a whole ({error})"
        else:
            folder_problem = "has no metadata.yaml (the recording was not closed)" if self.path.is_dir() else ""
        sources: list[_RosbagsSource | _SqliteSalvageSource | _McapSalvageSource] = []
        damaged_files = False
        for storage in self.storage_files:
            try:
                sources.append(_RosbagsSource(storage))
                continue
            except (ReaderError, apsw.Error, OSError, KeyError, ValueError) as error:
                damage = str(error)
            sources.append(_SqliteSalvageSource(storage) if storage.suffix == ".db3" else _McapSalvageSource(storage))
            damaged_files = True
            warnings.warn(
                f"bag file {str(storage)!r} is damaged ({damage.rstrip('.')}); reading it up to the damage",
                DamagedBagWarning,
                stacklevel=3,
            )
        if folder_problem and not damaged_files:
            warnings.warn(
                f"bag {str(self.path)!r} {folder_problem}; reading its storage files one by one",
                DamagedBagWarning,
                stacklevel=3,
            )
        return sources


class _RosbagsSource:
    """A folder or storage file that ``rosbags`` opens normally.

    Like the salvage sources below, it offers ``topics()`` (topic -> (type, message count))
    and ``messages(topics)`` (raw messages in storage order).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        with Reader(path) as reader:
            self._topics = {topic: (info.msgtype, info.msgcount) for topic, info in reader.topics.items()}

    def topics(self) -> dict[str, tuple[str, int]]:
        return dict(self._topics)

    def messages(self, topics: set[str]) -> Iterator[RawMessage]:
        wanted = [topic for topic in topics if topic in self._topics]
        if not wanted:
            return
        with Reader(self.path) as reader:
            connections = [connection for connection in reader.connections if connection.topic in wanted]
            try:
                for connection, log_time, data in reader.messages(connections=connections):
                    yield RawMessage(connection.topic, connection.msgtype, log_time, bytes(data))
            except (ReaderError, apsw.Error) as error:
                warnings.warn(
                    f"bag {str(self.path)!r} is damaged part-way ({error}); using the messages before the damage",
                    DamagedBagWarning,
                    stacklevel=2,
                )
