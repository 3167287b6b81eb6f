"""Reading recorded ROS 2 bags without a ROS install: topics, images, calibration, odometry.

A *bag* is a rosbag2 folder (``metadata.yaml`` plus ``.db3`` or ``.mcap`` storage files) or a
single ``.db3`` / ``.mcap`` file. :class:`RecordedBag` opens it with the pure-Python
``rosbags`` library and yields raw CDR messages of chosen topics;
:func:`select_camera_topics` finds the camera in it; :func:`decode_image`,
:func:`read_calibration` and :func:`read_odometry` turn messages into numpy images (with
the decoder of :mod:`dna_depth_core.data.camera`, which the depth node uses too), the
camera's calibration, and travelled distances.

Recordings that were cut short (the recorder was killed, the disk filled up) are read up to
the damage instead of being rejected:

* a folder whose ``metadata.yaml`` is missing is read from its storage files;
* a ``.db3`` file shorter than its header says is opened through a read-only SQLite VFS
  that presents only its complete pages, and rows are read in insertion order until the
  first missing page;
* an ``.mcap`` file without its summary and footer is scanned record by record (chunks
  included, even the last, partial one) until the first incomplete record.

Each of these emits a :class:`DamagedBagWarning` saying what was lost. Anything that is not
a bag at all raises :class:`~dna_depth_core.errors.UserError`.
"""

from __future__ import annotations

import mmap
import re
import struct
import sys
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import apsw
import lz4.frame
import numpy as np
from rosbags.rosbag2 import Reader, ReaderError
from rosbags.typesys import Stores, get_typestore

from dna_depth_core.data.camera.calibration import CalibrationError, CameraCalibration
from dna_depth_core.data.camera.encodings import ENCODINGS, ImageDecodeError, decode_image_message
from dna_depth_core.errors import UserError

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

STORAGE_SUFFIXES = (".db3", ".mcap")
"""File suffixes of rosbag2 storage files."""

TYPESTORE = get_typestore(Stores.LATEST)
"""Message definitions used to deserialise: the standard ROS 2 messages this module reads
(sensor_msgs, nav_msgs, std_msgs) have kept their wire format since ROS 2 Foxy."""


class DamagedBagWarning(UserWarning):
    """A bag was cut short or is partly unreadable; it is read up to the damage."""


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


class _CompletePagesFile:
    """Read-only SQLite file showing only whole pages, with the header's page count to match.

    SQLite refuses a file shorter than the page count in its header; presenting the
    truncated file as a consistent, smaller database lets every row stored on the pages
    that survived be read.
    """

    PAGE_COUNT_OFFSET = 28

    def __init__(self, path: str) -> None:
        self.stream = open(path, "rb")  # noqa: SIM115 - closed by SQLite through xClose
        header = self.stream.read(100)
        if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
            self.stream.close()
            raise apsw.NotADBError(f"{path} is not an SQLite database")
        (page_size,) = struct.unpack_from(">H", header, 16)
        page_size = 65536 if page_size == 1 else page_size
        self.size = self.stream.seek(0, 2) // page_size * page_size
        self.page_count = struct.pack(">I", self.size // page_size)

    def xRead(self, amount: int, offset: int) -> bytes:  # noqa: N802 - apsw VFS interface
        self.stream.seek(offset)
        data = self.stream.read(max(0, min(amount, self.size - offset)))
        start, end = self.PAGE_COUNT_OFFSET - offset, self.PAGE_COUNT_OFFSET + 4 - offset
        if end > 0 and start < len(data):
            patched = bytearray(data)
            for index in range(max(start, 0), min(end, len(data))):
                patched[index] = self.page_count[index - start]
            data = bytes(patched)
        if len(data) < amount:
            raise apsw.IOError(f"short read at offset {offset}")
        return data

    def xFileSize(self) -> int:  # noqa: N802
        return self.size

    def xClose(self) -> None:  # noqa: N802
        self.stream.close()

    def xDeviceCharacteristics(self) -> int:  # noqa: N802
        return 0

    def xSectorSize(self) -> int:  # noqa: N802
        return 0

    def xFileControl(self, op: int, pointer: int) -> bool:  # noqa: N802
        return False

    def xLock(self, level: int) -> None:  # noqa: N802
        pass

    def xUnlock(self, level: int) -> None:  # noqa: N802
        pass

    def xCheckReservedLock(self) -> bool:  # noqa: N802
        return False

    def xSync(self, flags: int) -> None:  # noqa: N802
        pass

    def xWrite(self, data: bytes, offset: int) -> None:  # noqa: N802
        raise apsw.ReadOnlyError("damaged bags are opened read-only")

    def xTruncate(self, size: int) -> None:  # noqa: N802
        raise apsw.ReadOnlyError("damaged bags are opened read-only")


class _CompletePagesVFS(apsw.VFS):
    NAME = "dna_depth_complete_pages"

    def __init__(self) -> None:
        super().__init__(self.NAME, "")

    def xOpen(self, name, flags):  # noqa: N802
        return _CompletePagesFile(name.filename() if isinstance(name, apsw.URIFilename) else name)


_complete_pages_vfs: _CompletePagesVFS | None = None


class _SqliteSalvageSource:
    """A truncated ``.db3`` file, read row by row up to its first missing page."""

    def __init__(self, path: Path) -> None:
        global _complete_pages_vfs
        if _complete_pages_vfs is None:
            _complete_pages_vfs = _CompletePagesVFS()
        self.path = path
        try:
            connection = self._connect()
            try:
                rows = connection.execute("SELECT id, name, type FROM topics").fetchall()
            finally:
                connection.close()
        except apsw.Error as error:
            raise UserError(
                f"{str(path)!r} is not a readable ROS 2 bag ({error}); re-record it or check the file"
            ) from None
        self._topics_by_id = {topic_id: (name, msgtype) for topic_id, name, msgtype in rows}
        self._counts: dict[str, int] | None = None

    def _connect(self) -> apsw.Connection:
        return apsw.Connection(str(self.path), flags=apsw.SQLITE_OPEN_READONLY, vfs=_CompletePagesVFS.NAME)

    def topics(self) -> dict[str, tuple[str, int]]:
        if self._counts is None:
            self._counts = {name: 0 for name, _ in self._topics_by_id.values()}
            for message in self._rows(set(self._counts), with_data=False):
                self._counts[message.topic] += 1
        return {name: (msgtype, self._counts[name]) for name, msgtype in self._topics_by_id.values()}

    def messages(self, topics: set[str]) -> Iterator[RawMessage]:
        return self._rows(topics, with_data=True)

    def _rows(self, topics: set[str], with_data: bool) -> Iterator[RawMessage]:
        ids = [topic_id for topic_id, (name, _) in self._topics_by_id.items() if name in topics]
        if not ids:
            return
        column = "data" if with_data else "NULL"
        query = (
            f"SELECT topic_id, timestamp, {column} FROM messages "
            f"WHERE topic_id IN ({', '.join('?' * len(ids))}) ORDER BY id"
        )
        connection = self._connect()
        try:
            for topic_id, log_time, data in connection.execute(query, ids):
                name, msgtype = self._topics_by_id[topic_id]
                yield RawMessage(name, msgtype, log_time, bytes(data) if with_data else b"")
        except apsw.Error:
            return
        finally:
            connection.close()


_MCAP_MAGIC = b"\x89MCAP0\r\n"
_OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE, _OP_CHUNK = 0x03, 0x04, 0x05, 0x06


def _mcap_string(buffer: memoryview, offset: int) -> tuple[str, int]:
    (length,) = struct.unpack_from("<I", buffer, offset)
    end = offset + 4 + length
    if end > len(buffer):
        raise ValueError("string runs past its record")
    return bytes(buffer[offset + 4 : end]).decode(), end


def _stream_decompress(compression: str, data: memoryview) -> bytes:
    """Decompress as much of a (possibly cut-off) chunk as there is."""
    if compression == "":
        return bytes(data)
    if compression == "zstd":
        return zstd.ZstdDecompressor().decompress(bytes(data))
    if compression == "lz4":
        return lz4.frame.LZ4FrameDecompressor().decompress(bytes(data))
    raise ValueError(f"unknown chunk compression {compression!r}")


class _McapSalvageSource:
    """An ``.mcap`` file without a valid summary/footer, scanned record by record."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with open(path, "rb") as stream:
            if stream.read(len(_MCAP_MAGIC)) != _MCAP_MAGIC:
                raise UserError(f"{str(path)!r} is not a readable ROS 2 bag (no MCAP file signature)")
        self._topics: dict[str, tuple[str, int]] = {}
        counts: dict[str, int] = {}
        channels: dict[int, tuple[str, str]] = {}
        for channel_id, _, _ in self._scan(channels, with_data=False):
            topic = channels[channel_id][0]
            counts[topic] = counts.get(topic, 0) + 1
        self._topics = {topic: (msgtype, counts.get(topic, 0)) for topic, msgtype in channels.values()}
        if not self._topics:
            raise UserError(f"{str(path)!r} is not a readable ROS 2 bag: no channel survived the damage")

    def topics(self) -> dict[str, tuple[str, int]]:
        return dict(self._topics)

    def messages(self, topics: set[str]) -> Iterator[RawMessage]:
        channels: dict[int, tuple[str, str]] = {}
        for channel_id, log_time, data in self._scan(channels, with_data=True):
            topic, msgtype = channels[channel_id]
            if topic in topics:
                yield RawMessage(topic, msgtype, log_time, data)

    def _scan(self, channels: dict[int, tuple[str, str]], with_data: bool) -> Iterator[tuple[int, int, bytes]]:
        """``(channel id, log time, data)`` of every message up to the first broken record;
        fills ``channels`` (id -> (topic, type)) as channel records go by."""
        schemas: dict[int, str] = {}
        with open(self.path, "rb") as stream, mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            buffer = memoryview(mapped)
            try:
                yield from self._records(buffer[len(_MCAP_MAGIC) :], schemas, channels, with_data, top_level=True)
            finally:
                buffer.release()

    def _records(self, buffer, schemas, channels, with_data, top_level):
        offset = 0
        while offset + 9 <= len(buffer):
            opcode = buffer[offset]
            (length,) = struct.unpack_from("<Q", buffer, offset + 1)
            start, end = offset + 9, offset + 9 + length
            complete = end <= len(buffer)
            if not complete and not (top_level and opcode == _OP_CHUNK):
                return
            record = buffer[start:end]
            try:
                if opcode == _OP_SCHEMA:
                    (schema_id,) = struct.unpack_from("<H", record, 0)
                    schemas[schema_id] = _mcap_string(record, 2)[0]
                elif opcode == _OP_CHANNEL:
                    channel_id, schema_id = struct.unpack_from("<HH", record, 0)
                    topic, _ = _mcap_string(record, 4)
                    channels[channel_id] = (topic, schemas.get(schema_id, ""))
                elif opcode == _OP_MESSAGE:
                    channel_id, _, log_time = struct.unpack_from("<HIQ", record, 0)
                    if channel_id in channels:
                        yield channel_id, log_time, bytes(record[22:]) if with_data else b""
                elif opcode == _OP_CHUNK:
                    compression, data_offset = _mcap_string(record, 28)
                    (size,) = struct.unpack_from("<Q", record, data_offset)
                    inner = _stream_decompress(compression, record[data_offset + 8 : data_offset + 8 + size])
                    yield from self._records(memoryview(inner), schemas, channels, with_data, top_level=False)
            except (struct.error, ValueError, zstd.ZstdError, RuntimeError):
                return
            if not complete:
                return
            offset = end


# ---------------------------------------------------------------------------------------------
# Message decoding: images, calibration, odometry.

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
ODOMETRY_TYPE = "nav_msgs/msg/Odometry"


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


def _is_camera_encoding(message: RawMessage) -> bool:
    encoding = image_encoding(message)
    if message.msgtype == IMAGE_TYPE:
        return encoding in ENCODINGS
    return "compresseddepth" not in encoding.lower().replace(" ", "")


@dataclass(frozen=True)
class OdometryTrack:
    """Odometry of the recording platform, time-ordered.

    Attributes:
        times: float64 ``(N,)`` header stamps in seconds since the epoch, increasing.
        positions: float64 ``(N, 3)`` positions in metres in the odometry frame.
        speeds: float64 ``(N,)`` linear speed in m/s (norm of ``twist.linear``).
    """

    times: np.ndarray
    positions: np.ndarray
    speeds: np.ndarray

    def distance(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Metres travelled between times ``start`` and ``end`` (arrays of seconds, same shape).

        The straight-line distance between the interpolated positions, which is what the
        pose network's translation measures; when the odometry reports no motion of its
        pose at all (twist-only sources), the speed is integrated instead. Times outside
        the track give NaN. The platform's motion stands in for the camera's: the lever
        arm between them is neglected.
        """
        start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
        outside = (np.minimum(start, end) < self.times[0]) | (np.maximum(start, end) > self.times[-1])
        if np.ptp(self.positions, axis=0).max(initial=0.0) > 0:
            position_start = np.stack([np.interp(start, self.times, axis) for axis in self.positions.T], axis=-1)
            position_end = np.stack([np.interp(end, self.times, axis) for axis in self.positions.T], axis=-1)
            distance = np.linalg.norm(position_end - position_start, axis=-1)
        else:
            steps = np.diff(self.times) * 0.5 * (self.speeds[1:] + self.speeds[:-1])
            travelled = np.concatenate([[0.0], np.cumsum(steps)])
            distance = np.abs(np.interp(end, self.times, travelled) - np.interp(start, self.times, travelled))
        return np.where(outside, np.nan, distance)


def read_odometry(bag: RecordedBag, topic: str) -> OdometryTrack:
    """All ``nav_msgs/Odometry`` messages of ``topic``, sorted by header stamp.

    Raises:
        UserError: the topic is missing, of another type, or has fewer than two messages.
    """
    require_topic(bag, topic, (ODOMETRY_TYPE,), "--odom-topic")
    samples = []
    for message in bag.messages([topic]):
        odometry = message.deserialize()
        position, velocity = odometry.pose.pose.position, odometry.twist.twist.linear
        speed = np.linalg.norm([velocity.x, velocity.y, velocity.z])
        samples.append((header_stamp_ns(message.data) / 1e9, position.x, position.y, position.z, speed))
    if len(samples) < 2:
        raise UserError(f"odometry topic {topic} in {str(bag.path)!r} has {len(samples)} messages; need at least 2")
    table = np.array(sorted(samples), dtype=np.float64)
    return OdometryTrack(times=table[:, 0], positions=table[:, 1:4], speeds=table[:, 4])


def require_topic(bag: RecordedBag, topic: str, msgtypes: tuple[str, ...], option: str) -> None:
    """Raise a UserError unless ``topic`` is in ``bag`` with one of ``msgtypes``; the
    message names ``option`` and the topics that would fit."""
    if bag.topics.get(topic) in msgtypes:
        return
    candidates = bag.topics_of_type(*msgtypes)
    found = f"is a {bag.topics[topic]}" if topic in bag.topics else "is not in the bag"
    raise UserError(
        f"topic {topic} {found} ({str(bag.path)!r}); {option} must name a "
        f"{' or '.join(msgtypes)} topic: " + (", ".join(candidates) if candidates else "the bag has none")
    )


@dataclass(frozen=True)
class CameraTopics:
    """The topics of the camera to fine-tune on.

    Attributes:
        image: an Image or CompressedImage topic of colour or grey camera frames.
        camera_info: the CameraInfo topic with that camera's calibration; ``None`` when the
            calibration comes from a file instead.
    """

    image: str
    camera_info: str | None


def _camera_image_candidates(bag: RecordedBag) -> tuple[list[str], dict[str, str]]:
    """Image topics that carry camera frames, and the rejected ones with the reason."""
    candidates, rejected = [], {}
    for topic in bag.topics_of_type(IMAGE_TYPE, COMPRESSED_IMAGE_TYPE):
        first = next(iter(bag.messages([topic])), None)
        if first is None:
            rejected[topic] = "no messages"
            continue
        if not _is_camera_encoding(first):
            rejected[topic] = f"encoding {image_encoding(first)}"
            continue
        candidates.append(topic)
    # image_transport publishes "<base>/compressed" beside "<base>": one camera stream, read
    # losslessly from the raw topic.
    streams = [
        topic
        for topic in candidates
        if not (topic.endswith("/compressed") and topic[: -len("/compressed")] in candidates)
    ]
    return streams, rejected


def select_camera_topics(
    bag: RecordedBag,
    image_topic: str | None = None,
    camera_info_topic: str | None = None,
    need_camera_info: bool = True,
) -> CameraTopics:
    """Pick the image and camera-info topics, or check the given ones.

    Automatic choice: image topics are Image/CompressedImage topics whose first message is
    a camera image (not depth); ``<base>/compressed`` is dropped when ``<base>`` is also
    there. The camera info is the image's sibling ``<namespace>/camera_info``
    (image_transport's convention) or the only CameraInfo topic. With
    ``need_camera_info`` false (the calibration comes from a file) no camera info topic is
    chosen.

    Raises:
        UserError: a given topic is missing or of the wrong type; no candidate; several
            candidates (the message lists them and names ``--image-topic`` /
            ``--camera-info-topic``).
    """
    if image_topic is not None:
        require_topic(bag, image_topic, (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE), "--image-topic")
    else:
        candidates, rejected = _camera_image_candidates(bag)
        if len(candidates) != 1:
            skipped = "; skipped: " + ", ".join(f"{t} ({why})" for t, why in rejected.items()) if rejected else ""
            if candidates:
                problem = f"has several camera image topics: {', '.join(candidates)}"
            else:
                problem = "has no camera image topic (sensor_msgs/Image or CompressedImage)"
            raise UserError(f"bag {str(bag.path)!r} {problem}{skipped}; choose one with --image-topic")
        image_topic = candidates[0]
    if not need_camera_info:
        return CameraTopics(image_topic, None)
    if camera_info_topic is not None:
        require_topic(bag, camera_info_topic, (CAMERA_INFO_TYPE,), "--camera-info-topic")
        return CameraTopics(image_topic, camera_info_topic)
    infos = bag.topics_of_type(CAMERA_INFO_TYPE)
    base = image_topic.removesuffix("/compressed") if bag.topics[image_topic] == COMPRESSED_IMAGE_TYPE else image_topic
    sibling = base.rsplit("/", 1)[0] + "/camera_info"
    if sibling in infos:
        return CameraTopics(image_topic, sibling)
    if len(infos) == 1:
        return CameraTopics(image_topic, infos[0])
    if not infos:
        raise UserError(
            f"bag {str(bag.path)!r} has no sensor_msgs/CameraInfo topic, so the camera's intrinsics are unknown; "
            "give the camera's calibration file with --camera-info FILE, or record the camera_info topic with "
            "the images"
        )
    raise UserError(
        f"bag {str(bag.path)!r} has several camera info topics ({', '.join(infos)}) and none is "
        f"{sibling}; choose one with --camera-info-topic"
    )


def read_calibration(bag: RecordedBag, topic: str) -> CameraCalibration:
    """The first usable CameraInfo on ``topic`` (drivers may publish uncalibrated ones first).

    Raises:
        CalibrationError: no message on the topic, or none is usable (zero K and P, invalid
            focal lengths).
    """
    last_error = None
    for message in bag.messages([topic]):
        try:
            return CameraCalibration.from_camera_info(message.deserialize(), f"camera info on {topic}")
        except CalibrationError as error:
            last_error = error
    if last_error is not None:
        raise last_error
    raise CalibrationError(f"camera info topic {topic} in {str(bag.path)!r} has no messages")
