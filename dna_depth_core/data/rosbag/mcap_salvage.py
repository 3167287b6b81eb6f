"""Reading an ``.mcap`` bag that lost its summary and footer: a record-by-record scan.

The scan walks the file's top-level records, keeps schemas and channels as they go by and
yields messages, also those inside chunks; the last chunk, cut off part-way, is
stream-decompressed as far as its data goes, so the messages recorded just before the
recorder died are kept. It stops at the first incomplete or unparsable record.

The ``mcap`` library's stream reader is not used: it reads a chunk record whole before
decompressing it, so a cut-off last chunk, usually the one holding the newest messages,
would be lost along with the rest of its records.
"""

from __future__ import annotations

import mmap
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import lz4.frame

from dna_depth_core.errors import UserError

from .messages import RawMessage

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd


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
