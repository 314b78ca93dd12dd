"""The pages of a frame file read straight from their IFDs, for files written as tjump
writes them (storage/pages.py): classic little-endian TIFF, each page one uncompressed
uint16 strip described by the same 14 tags. Parsing each page with tifffile took about
95 us, most of a run's opening time (0.47 s for 5,000 frames; about 20 s for the 200,000
of a published protocol with ablation); this takes one read and one unpack a page.

It vouches only for a file that is whole: every page complete and the last one closing
the chain. Anything else (a page cut short by a crash, other tags, another byte order)
gives None, and the general scan (storage/scan.py, through tifffile) reads the file, so
what a damaged file is found to hold does not depend on this module."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from tjump.storage.pages import POINTERS, TAGS, page_entries

_ENTRIES = struct.Struct("<H" + "HHII" * TAGS + "I")  # count, entries, next IFD
_READ = _ENTRIES.size + 1024  # an IFD and, just after it, its description (512 bytes)
_ITEM_BYTES = {2: 1, 5: 8}  # ASCII, RATIONAL: the pointing tags' types


@dataclass(frozen=True)
class IfdPage:
    """One complete page: where its pixels start, its description."""

    offset: int
    description: str


@dataclass(frozen=True)
class WholeFile:
    """Every page of a whole file, and their (height, width)."""

    shape: tuple[int, int]
    pages: list[IfdPage]


def read_whole_file(path: Path) -> WholeFile | None:
    """The pages of `path` when it is a whole file of tjump's pages, else None."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        header = os.pread(fd, 8, 0)
        if len(header) < 8 or header[:4] != b"II*\x00":
            return None
        at = struct.unpack_from("<I", header, 4)[0]
        pages: list[IfdPage] = []
        shape: tuple[int, int] | None = None
        while at:
            raw = os.pread(fd, _READ, at)
            page = _page(raw, at, size, fd)
            if page is None:
                return None
            page_shape, ifd_page, following = page
            if following and following <= at:
                return None  # tjump's pages follow one another: a chain that turns back
            at = following
            if shape is None:
                shape = page_shape
            elif page_shape != shape:
                return None  # the general scan names it
            pages.append(ifd_page)
        if shape is None or _data_end(pages[-1], shape) != size:
            return None  # no page, or bytes after the last: the general scan tells what
        return WholeFile(shape, pages)
    except OSError:
        return None
    finally:
        os.close(fd)


def _page(raw: bytes, at: int, size: int, fd: int) -> tuple[tuple[int, int], IfdPage, int] | None:
    """(shape, page, next IFD's offset) of the IFD at `at`, or None if it is not one of
    tjump's complete pages: each entry as `page_entries` makes it, and every value that
    points elsewhere pointing inside the file."""
    if len(raw) < _ENTRIES.size:
        return None
    values = _ENTRIES.unpack_from(raw)
    if values[0] != TAGS:
        return None
    found = [values[1 + 4 * i : 5 + 4 * i] for i in range(TAGS)]
    width, height, description_bytes = found[0][3], found[1][3], found[5][2] - 1
    for (tag, kind, count, value), wanted in zip(
        found, page_entries((height, width), description_bytes), strict=True
    ):
        if (tag, kind, count) != wanted[:3]:
            return None
        if tag not in POINTERS:
            if value != wanted[3]:
                return None
        elif count < 1 or value < 8 or value + count * _ITEM_BYTES.get(kind, 0) > size:
            return None  # tifffile would drop the tag
    strip, (_, _, count, where) = found[6][3], found[5]
    if strip + width * height * 2 > size:
        return None
    start = where - at
    text = raw[start : start + count] if start >= 0 and start + count <= len(raw) else None
    if text is None:
        text = os.pread(fd, count, where)
        if len(text) != count:
            return None
    if text.find(b"\x00") != count - 1 or not text.isascii():
        return None  # not one NUL-terminated ASCII text: tifffile's reading of it decides
    description = text[:-1].decode("ascii")
    return (height, width), IfdPage(strip, description), values[-1]


def _data_end(page: IfdPage, shape: tuple[int, int]) -> int:
    return page.offset + shape[0] * shape[1] * 2
