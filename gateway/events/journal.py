"""The local journal: where events go while the database is away, until they are replayed.

A journal is a directory of append-only segment files, ``<ns>-<pid>.journal``. Each record
is one batch: an 8-byte header (length, CRC-32) and a JSON body, written with one
``write`` and made durable with ``fsync`` before the writer moves on. A crash can leave a
torn last record; its CRC fails and reading stops there, so a torn tail is never replayed.

The writer that appends holds an exclusive ``flock`` on its open segment. Whoever replays
(the same writer when the database is back, or another process after a restart) takes the
lock first, so nobody replays a segment that is still being written. Exactly once comes
from the database side: see :func:`gateway.events.store.replay_segment`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HEADER = struct.Struct(">II")  # body length, CRC-32 of the body
SUFFIX = ".journal"


class JournalFull(OSError):
    """The journal reached ``events.journal_max_mb``: the batch is counted as lost."""


class Journal:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._fd: int | None = None
        self._path: Path | None = None
        self._size_estimate: int | None = None

    @property
    def active(self) -> Path | None:
        return self._path

    def append(self, payload: dict[str, Any]) -> int:
        """Write one record durably; returns its size. Raises OSError (ENOSPC, …) or
        :class:`JournalFull`, and then nothing of the record counts as written."""
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        record = HEADER.pack(len(body), zlib.crc32(body)) + body
        if self._size_estimate is None:
            self._size_estimate = self.total_size()
        if self._size_estimate + len(record) > self.max_bytes:
            raise JournalFull(f"the journal holds {self._size_estimate >> 20} MB, its limit")
        if self._fd is None:
            self._open_segment()
        assert self._fd is not None and self._path is not None
        start = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            written = os.write(self._fd, record)
            if written != len(record):  # what a full disk does to a large write
                raise OSError(errno.ENOSPC, f"short write to {self._path} ({written} of "
                              f"{len(record)} bytes)")
            os.fsync(self._fd)
        except OSError:
            # Cut the partial record off, so that the next record starts on a boundary.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, start)
            raise
        self._size_estimate += len(record)
        return len(record)

    def _open_segment(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{time.time_ns():020d}-{os.getpid()}{SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        # The new name must survive a power cut too, not only the bytes in it.
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._fd, self._path = fd, path

    def close_active(self) -> Path | None:
        """Close (and unlock) the open segment, so that it can be replayed; returns it."""
        path = self._path
        if self._fd is not None:
            os.close(self._fd)
        self._fd = self._path = None
        return path

    def segments(self) -> list[Path]:
        """Every segment in the directory, oldest first (the active one included)."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob(f"*{SUFFIX}"))

    def total_size(self) -> int:
        total = 0
        for path in self.segments():
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        return total

    def forget_size(self) -> None:
        """Recount the size before the next append (after a replay removed segments)."""
        self._size_estimate = None


@contextlib.contextmanager
def locked_segment(path: Path) -> Iterator[int | None]:
    """An fd of ``path`` under an exclusive lock, or None if someone is still writing it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        yield fd
    finally:
        os.close(fd)


def read_records(fd: int, start: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(end offset, payload)`` of each whole record from ``start``; stops at a torn tail."""
    with os.fdopen(os.dup(fd), "rb") as stream:
        stream.seek(start)
        offset = start
        while True:
            header = stream.read(HEADER.size)
            if len(header) < HEADER.size:
                return
            length, crc = HEADER.unpack(header)
            body = stream.read(length)
            if len(body) < length or zlib.crc32(body) != crc:
                return  # torn by a crash in the middle of a write: never acknowledged
            offset += HEADER.size + length
            yield offset, json.loads(body)
