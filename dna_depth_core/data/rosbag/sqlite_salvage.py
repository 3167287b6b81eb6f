"""Reading a truncated ``.db3`` bag: SQLite through a read-only VFS that shows only its complete pages.

A recorder killed mid-write leaves a database file shorter than the page count its header
states, which SQLite refuses to open. The VFS here presents the file cut to whole pages
with the header's page count patched to match, so SQLite sees a consistent, smaller
database; rows are then read in insertion order until the first one on a missing page.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import apsw

from dna_depth_core.errors import UserError

from .messages import RawMessage


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
