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

_TAGS = 14
_ENTRIES = struct.Struct("<H" + "HHII" * _TAGS + "I")  # count, entries, next IFD
_READ = _ENTRIES.size + 1024  # an IFD and, just after it, its description (512 bytes)
_FIXED = {  # tag: (type, count, value) of every page; width and height are per file
    258: (3, 1, 16),  # bits per sample
    259: (3, 1, 1),  # no compression
    262: (3, 1, 1),  # min-is-black
    277: (3, 1, 1),  # one sample per pixel
    296: (3, 1, 1),  # no resolution unit
}
_POINTING = {270: 2, 282: 5, 283: 5, 305: 2}  # tags whose values lie elsewhere: their type
_ORDER = (256, 257, 258, 259, 262, 270, 273, 277, 278, 279, 282, 283, 296, 305)


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
    tjump's complete pages."""
    if len(raw) < _ENTRIES.size:
        return None
    values = _ENTRIES.unpack_from(raw)
    if values[0] != _TAGS:
        return None
    entries = {}
    for i in range(_TAGS):
        tag, kind, count, value = values[1 + 4 * i : 5 + 4 * i]
        if tag != _ORDER[i]:
            return None
        entries[tag] = (kind, count, value)
    if any(entries[tag] != fixed for tag, fixed in _FIXED.items()):
        return None
    (_, _, width), (_, _, height) = entries[256], entries[257]
    if entries[256][:2] != (4, 1) or entries[257][:2] != (4, 1):
        return None
    kind, count, strip = entries[273]
    if (kind, count) != (4, 1) or entries[279] != (4, 1, width * height * 2):
        return None
    if entries[278] != (4, 1, height) or strip + width * height * 2 > size:
        return None
    if not all(_points_inside(entries[tag], kind, size) for tag, kind in _POINTING.items()):
        return None  # tifffile would drop the tag
    kind, count, where = entries[270]
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


def _points_inside(entry: tuple[int, int, int], kind: int, size: int) -> bool:
    """Whether a tag whose value lies elsewhere in the file has the type and an offset
    inside the file."""
    entry_kind, count, offset = entry
    item = 8 if kind == 5 else 1
    return entry_kind == kind and count >= 1 and offset >= 8 and offset + count * item <= size


def _data_end(page: IfdPage, shape: tuple[int, int]) -> int:
    return page.offset + shape[0] * shape[1] * 2
