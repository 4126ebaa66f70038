"""Bringing a source's bytes onto the disk, whole or not at all.

Downloads go to a temporary file beside the cache; a download that stops early (fewer bytes
than the server announced), times out or is larger than allowed is refused, and the cached
copy from the last good update stays.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from blocklists.errors import BlocklistError
from blocklists.sources import bundled_path

CHUNK = 1 << 16


def fetch(location: str, directory: Path, *, timeout: float = 120.0,
          max_bytes: int = 512 << 20) -> tuple[Path, str]:
    """Copy or download ``location`` into a new temporary file in ``directory``.

    Returns (the file, its SHA-256). The caller renames it into place once it has parsed.
    A directory (an unpacked UT1 tree) and a bundled list are returned as they are.
    """
    directory.mkdir(parents=True, exist_ok=True)
    if location.startswith(("http://", "https://")):
        return _download(location, directory, timeout, max_bytes)
    bundled = bundled_path(location)
    if bundled is not None:  # read in place: the package directory may be read-only
        return bundled, _sha256_file(bundled)
    path = Path(location)
    if path.is_dir():
        listing = "\n".join(sorted(f"{p.relative_to(path)} {p.stat().st_size}"
                                   for p in path.rglob("*") if p.is_file()))
        return path, hashlib.sha256(listing.encode()).hexdigest()
    try:
        with open(path, "rb") as src:
            return _copy(src, directory, max_bytes, expected=None, what=location)
    except FileNotFoundError:
        raise BlocklistError(f"{location}: no such file",
                             hint="fix the source with `kalkan blocklists remove` and `add`; "
                                  "the previous index stays in service") from None
    except PermissionError:
        raise BlocklistError(f"{location}: not readable by this user",
                             hint="make the file readable to kalkan's user") from None


def _download(url: str, directory: Path, timeout: float, max_bytes: int) -> tuple[Path, str]:
    request = urllib.request.Request(url, headers={"User-Agent": "kalkan-blocklists/0.1"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            return _copy(response, directory, max_bytes, expected=expected, what=url)
    except urllib.error.HTTPError as exc:
        raise BlocklistError(f"{url}: the server answered {exc.code} {exc.reason}",
                             hint="check the address; the previous index stays in service"
                             ) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BlocklistError(f"{url}: download failed ({reason})",
                             hint="check the school's internet connection and try again; "
                                  "the previous index stays in service") from None


def _copy(src: BinaryIO, directory: Path, max_bytes: int, *, expected: int | None,
          what: str) -> tuple[Path, str]:
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=".download-", dir=directory)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := src.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise BlocklistError(f"{what}: larger than {max_bytes >> 20} MB",
                                         hint="raise blocklists.max_download_mb if this list "
                                              "is really that large")
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise BlocklistError(f"{what}: cannot write the download: {exc.strerror}",
                             hint="free space in the data directory; the previous index "
                                  "stays in service") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if expected is not None and size != expected:
        Path(tmp).unlink(missing_ok=True)
        raise BlocklistError(f"{what}: download stopped after {size:,} of {expected:,} bytes",
                             hint="try again later; the previous index stays in service")
    return Path(tmp), digest.hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def promote(tmp: Path, final: Path) -> None:
    """Put a verified download in place of the cached copy (same directory: atomic)."""
    if tmp.is_dir():
        return  # a local directory is read where it is
    os.replace(tmp, final)


def discard(tmp: Path) -> None:
    if not tmp.is_dir():
        tmp.unlink(missing_ok=True)



