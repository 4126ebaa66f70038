"""The byte layout of the blocklist index file, and the checks that refuse a damaged one.

Layout (``docs/blocklist-index.md`` explains the why)::

    0     fixed header, 64 bytes, little-endian (see HEADER)
    64    sections, each starting at a multiple of 8, in this order:
            trie     marisa-trie of every name, reversed and ending in "." ("gk.elpmaxe.")
            setids   one record-set id per trie key id (uint16, or uint32 past 65,535 sets)
            sets     uint32: count, count + 1 offsets into the members, then the members
                     (record ids); a record is one (category, source, kind)
            gate     a one-hash Bloom bit array over the last two labels of every name
            urls     UTF-8 lines "domain TAB path TAB record id", for URL entries
    meta  JSON (UTF-8): records, categories, sources, section offsets and lengths, statistics

The arrays are in the byte order of the machine that built the file (the header says which):
the index is built where it is used, and mapping the arrays as they are is what keeps open()
at a few milliseconds.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import zlib
from collections.abc import Mapping
from typing import Any

from blocklists.errors import BlocklistError

MAGIC = b"KALKANIX"
FORMAT_VERSION = 1
HEADER_SIZE = 64
# magic, format version, byte order (1 little, 2 big), file size, meta offset, meta length,
# crc32 of bytes [64, file size), crc32 of the 40 header bytes before this field.
HEADER = struct.Struct("<8sIIQQIII")
BYTE_ORDER = 1 if sys.byteorder == "little" else 2
SECTIONS = ("trie", "setids", "sets", "gate", "urls")
ALIGN = 8
CHUNK = 1 << 20  # read size for the checksum: big enough to be fast, small enough not to matter

# Record kinds as stored; URL marks "this name has URL entries for this category and source".
KIND_DOMAIN, KIND_IP, KIND_URL, KIND_EXCEPTION = 0, 1, 2, 3
KIND_NAMES = ("domain", "ip", "url", "exception")

REBUILD_HINT = "run `kalkan blocklists update` to rebuild it; the previous index stays in service"


def damaged(path: str | os.PathLike[str], what: str) -> BlocklistError:
    """The one error for a file that cannot be used as an index, with what to do about it."""
    return BlocklistError(f"the blocklist index {what}", file=os.fspath(path), hint=REBUILD_HINT)


def pack_header(*, file_size: int, meta_offset: int, meta_length: int, body_crc: int) -> bytes:
    head = HEADER.pack(MAGIC, FORMAT_VERSION, BYTE_ORDER, file_size, meta_offset, meta_length,
                       body_crc, 0)
    header_crc = zlib.crc32(head[:HEADER.size - 4])
    head = head[:HEADER.size - 4] + struct.pack("<I", header_crc)
    return head + bytes(HEADER_SIZE - len(head))


def read_header(fd: int, path: str | os.PathLike[str]) -> tuple[int, int, int, int]:
    """Check the fixed header against the file; return (file size, meta offset, meta length,
    body crc). Refuses a file that is not an index, truncated, or from another format version.
    """
    size = os.fstat(fd).st_size
    head = os.pread(fd, HEADER_SIZE, 0)
    if len(head) < HEADER_SIZE:
        if not head:
            raise damaged(path, "is empty (an interrupted write?)")
        raise damaged(path, f"is truncated: {size} bytes, shorter than its header")
    magic, version, order, file_size, meta_offset, meta_length, body_crc, header_crc = (
        HEADER.unpack_from(head))
    if magic != MAGIC:
        raise damaged(path, "is not a kalkan blocklist index (wrong magic number)")
    if zlib.crc32(head[:HEADER.size - 4]) != header_crc:
        raise damaged(path, "has a corrupt header (checksum mismatch)")
    if version != FORMAT_VERSION:
        raise damaged(path, f"has format version {version}; this kalkan reads version "
                      f"{FORMAT_VERSION}")
    if order != BYTE_ORDER:
        raise damaged(path, "was built on a machine with the other byte order")
    if size != file_size:
        what = "truncated" if size < file_size else "longer than written"
        raise damaged(path, f"is {what}: {size} bytes instead of {file_size}")
    if not HEADER_SIZE <= meta_offset <= meta_offset + meta_length <= file_size:
        raise damaged(path, "has a header that points outside the file")
    return file_size, meta_offset, meta_length, body_crc


def verify_body(fd: int, path: str | os.PathLike[str], file_size: int, body_crc: int) -> None:
    """Checksum everything after the header. Read with pread rather than through the mapping,
    so that checking does not fault every page into this process (its RSS)."""
    crc = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    offset = HEADER_SIZE
    while offset < file_size:
        n = os.preadv(fd, [buf], offset)
        if n <= 0:
            raise damaged(path, "is truncated (read past its end)")
        n = min(n, file_size - offset)
        crc = zlib.crc32(view[:n], crc)
        offset += n
    if crc != body_crc:
        raise damaged(path, "is corrupt (checksum mismatch)")


def read_meta(fd: int, path: str | os.PathLike[str], meta_offset: int,
              meta_length: int) -> dict[str, Any]:
    """The JSON metadata, with its section table checked against the file."""
    try:
        meta = json.loads(os.pread(fd, meta_length, meta_offset).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise damaged(path, "has unreadable metadata") from None
    sections = meta.get("sections") if isinstance(meta, dict) else None
    if not isinstance(sections, Mapping) or set(sections) != set(SECTIONS):
        raise damaged(path, "has metadata without its section table")
    for name, where in sections.items():
        if not (isinstance(where, list) and len(where) == 2
                and all(isinstance(x, int) for x in where)
                and HEADER_SIZE <= where[0] <= where[0] + where[1] <= meta_offset):
            raise damaged(path, f"has a {name} section outside the file")
    return meta


def padding(position: int) -> bytes:
    return bytes(-position % ALIGN)
