"""TIFF pages written the cheap way: one frame, one page, one system call.

Every page of a run's frame file has the same shape, the same 16-bit pixels and a
description of the same length, so every page's header (its IFD, description and the few
values the IFD points to) is the same bytes but for its offsets. `PageWriter` builds that
header once and per frame only fills in the offsets and the description, writes header and
pixels with one `writev` at the end of the file, and then links the page in (the previous
page's next-IFD pointer, or the file header's, written in place). The pages are what
tifffile itself writes for `write(image, contiguous=False, metadata=None, description=...)`:
the same 14 tags in the same order, the pixels 16-byte aligned, little-endian classic TIFF.

A page is complete on disk before it is linked, so a kill at any instant leaves the pages
before it readable and at most one unlinked page after them, which `verify` reports as torn
and `verify --repair` sets aside (storage/repair.py)."""

from __future__ import annotations

import os
import struct

import numpy as np
from numpy.typing import NDArray

MAX_BYTES = 2**32 - 1  # classic TIFF offsets are 32-bit
_HEADER = b"II*\x00" + struct.pack("<I", 0)  # first-IFD pointer linked with the first page
_SOFTWARE = b"tifffile.py\x00"
_ALIGN = 16
_LONG, _SHORT, _ASCII, _RATIONAL = 4, 3, 2, 5  # TIFF field types
TAGS = 14  # entries in each page's IFD
_NEXT_IFD = 2 + TAGS * 12  # where in an IFD the next IFD's offset is
_IFD_SIZE = _NEXT_IFD + 4


class PageWriter:
    """Appends uint16 pages of one `shape`, each with a description of exactly
    `description_bytes` bytes (ASCII), to an empty file opened for writing."""

    def __init__(self, fd: int, shape: tuple[int, int], description_bytes: int) -> None:
        self._fd = fd
        self.shape = shape
        self._description_bytes = description_bytes
        self._image_bytes = shape[0] * shape[1] * 2
        self._template, self._fields = _page_template(shape, description_bytes)
        self._data_at = len(self._template)
        self._link_at = 4  # where the next page's offset goes: the file header at first
        self._end = _write_all(fd, [_HEADER])  # the file is empty, written from its start
        self.pages = 0

    def fits(self) -> bool:
        """Whether one more page stays within classic TIFF's 4 GiB."""
        return self._end + _ALIGN + self._data_at + self._image_bytes <= MAX_BYTES

    def write(self, image: NDArray[np.uint16], description: str) -> None:
        """Append one page and link it in; both are in the operating system's hands when
        this returns (not necessarily on the platter)."""
        if image.shape != self.shape or image.dtype != np.dtype("<u2"):
            raise ValueError(f"a {self.shape} uint16 page, not {image.shape} {image.dtype}")
        text = description.encode("ascii")
        if len(text) != self._description_bytes:
            raise ValueError(f"a description of {self._description_bytes} bytes, not {len(text)}")
        gap = -self._end % _ALIGN  # the page starts aligned, so its pixels are too
        at = self._end + gap
        header = bytearray(self._template)
        for offset, relative in self._fields:
            struct.pack_into("<I", header, offset, at + relative)
        header[_IFD_SIZE : _IFD_SIZE + len(text)] = text
        pixels = np.ascontiguousarray(image).reshape(-1).view(np.uint8).data  # bytes
        buffers: list[bytes | bytearray | memoryview] = [bytes(gap), header, pixels]
        self._end += _write_all(self._fd, buffers)
        os.pwrite(self._fd, struct.pack("<I", at), self._link_at)
        self._link_at = at + _NEXT_IFD
        self.pages += 1


POINTERS = frozenset({270, 273, 282, 283, 305})  # tags whose value is an offset in the page


def page_entries(shape: tuple[int, int], description_bytes: int) -> list[tuple[int, int, int, int]]:
    """(tag, type, count, value) of each of a page's 14 IFD entries, in order; the value of
    a tag in POINTERS is where it points, which each page fills in (0 here)."""
    height, width = shape
    entries = [  # ascending, as TIFF requires
        (256, _LONG, 1, width),
        (257, _LONG, 1, height),
        (258, _SHORT, 1, 16),
        (259, _SHORT, 1, 1),  # no compression
        (262, _SHORT, 1, 1),  # min-is-black
        (270, _ASCII, description_bytes + 1, 0),
        (273, _LONG, 1, 0),
        (277, _SHORT, 1, 1),
        (278, _LONG, 1, height),
        (279, _LONG, 1, height * width * 2),
        (282, _RATIONAL, 1, 0),
        (283, _RATIONAL, 1, 0),
        (296, _SHORT, 1, 1),  # no resolution unit
        (305, _ASCII, len(_SOFTWARE), 0),
    ]
    assert len(entries) == TAGS
    return entries


def _page_template(
    shape: tuple[int, int], description_bytes: int
) -> tuple[bytes, list[tuple[int, int]]]:
    """A page's header with offsets relative to the page's start, and where each offset
    field is (byte in the header, value relative to the page's start)."""
    description_at = _IFD_SIZE
    after = description_at + description_bytes + 1  # NUL-terminated
    x_resolution = after + (-after) % 8
    y_resolution = x_resolution + 8
    software = y_resolution + 8
    end = software + len(_SOFTWARE)
    data = end + (-end) % _ALIGN
    relative = {270: description_at, 273: data, 282: x_resolution, 283: y_resolution, 305: software}
    assert set(relative) == POINTERS
    entries = page_entries(shape, description_bytes)
    header = bytearray(data)
    struct.pack_into("<H", header, 0, TAGS)
    fields: list[tuple[int, int]] = []
    for i, (tag, kind, count, value) in enumerate(entries):
        at = 2 + i * 12
        struct.pack_into("<HHI", header, at, tag, kind, count)
        if tag in relative:
            fields.append((at + 8, relative[tag]))
        elif kind == _SHORT:
            struct.pack_into("<HH", header, at + 8, value, 0)
        else:
            struct.pack_into("<I", header, at + 8, value)
    # the next-IFD pointer stays 0 (the last page) until a page follows
    struct.pack_into("<II", header, x_resolution, 1, 1)
    struct.pack_into("<II", header, y_resolution, 1, 1)
    header[software:end] = _SOFTWARE
    return bytes(header), fields


def _write_all(fd: int, buffers: list[bytes | bytearray | memoryview]) -> int:
    """Write `buffers` where the file's offset is, however many calls it takes; returns
    the bytes written."""
    views = [memoryview(b) for b in buffers]
    total = 0
    while views:
        written = os.writev(fd, views)
        total += written
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]
    return total
