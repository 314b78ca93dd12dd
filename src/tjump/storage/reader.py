"""Reading a run directory back, complete or cut short: pages and rows joined by frame
number (see verify.py for what makes a run consistent)."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from numpy.typing import NDArray

from tjump.errors import InputError
from tjump.storage.layout import FRAMES_CSV
from tjump.storage.scan import Page, scan_chunks
from tjump.storage.verify import read_log, read_manifest


class RunDirectory:
    """A run directory on disk."""

    def __init__(self, path: Path) -> None:
        read_manifest(path)  # an InputError if it is not a run directory
        self.path = path

    def manifest(self) -> dict[str, Any]:
        return read_manifest(self.path)

    def chunk_files(self) -> list[Path]:
        return [c.path for c in scan_chunks(self.path)]

    def pages(self) -> list[Page]:
        """Every complete page, in frame order."""
        pages = [p for c in scan_chunks(self.path) for p in c.pages]
        return sorted(pages, key=lambda p: p.frame)

    def frame_count(self) -> int:
        """Frames readable from the TIFF chunks (a page a crash cut short is not)."""
        return len(self.pages())

    def iter_frames(self, pages: list[Page] | None = None) -> Iterator[NDArray[np.uint16]]:
        """Every frame (or those of `pages`) in frame order, one at a time."""
        pages = self.pages() if pages is None else pages
        tif: tifffile.TiffFile | None = None
        current: Path | None = None
        try:
            for page in pages:
                if tif is None or current != page.chunk:
                    if tif is not None:
                        tif.close()
                    tif, current = tifffile.TiffFile(page.chunk), page.chunk
                yield tif.pages[page.index].asarray()
        finally:
            if tif is not None:
                tif.close()

    def read_into(self, pages: list[Page], out: NDArray[np.uint16], direct: bool = True) -> None:
        """Frames of `pages` into `out[:len(pages)]` (a C-contiguous (T, Y, X) uint16 array):
        straight from the file when a page is one little-endian strip, else through
        tifffile. `direct`: pages one after another in a file are read past the page cache
        (O_DIRECT) in aligned pieces of about 8 MB and copied into place, which costs the
        processor a fraction of what filling the page cache does; where the file system
        refuses that, through the cache."""
        frame_bytes = out[0].nbytes if len(out) else 0
        done = _read_direct(pages, out, frame_bytes) if direct else [False] * len(pages)
        fds: dict[Path, int] = {}
        try:
            for i, page in enumerate(pages):
                if done[i]:
                    continue
                if page.offset >= 0:
                    if page.chunk not in fds:
                        fds[page.chunk] = os.open(page.chunk, os.O_RDONLY)
                    if os.preadv(fds[page.chunk], [out[i]], page.offset) == out[i].nbytes:
                        continue
                frame = next(self.iter_frames([page]))
                if frame.shape != out.shape[1:]:
                    raise InputError(
                        f"{page.chunk}: frame {page.frame} is {frame.shape} in a run of "
                        f"{out.shape[1:]} frames"
                    )
                out[i] = frame
        finally:
            for fd in fds.values():
                os.close(fd)

    def read_frames(self) -> NDArray[np.uint16]:
        """All frames as one (T, Y, X) array; for small runs and tests."""
        return np.stack(list(self.iter_frames()))

    def read_frames_range(self, start: int, stop: int) -> NDArray[np.uint16]:
        """The `start`-th to `stop`-th readable frames (in frame order) as one array."""
        return np.stack(list(self.iter_frames(self.pages()[start:stop])))

    def frames_table(self) -> list[dict[str, str]]:
        with (self.path / FRAMES_CSV).open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    def log(self) -> list[dict[str, Any]]:
        return read_log(self.path)


ALIGN = 4096  # O_DIRECT: file offsets, lengths and memory in whole pages
PIECE = 8 * 2**20  # read at a time past the page cache


def _read_direct(pages: list[Page], out: NDArray[np.uint16], frame_bytes: int) -> list[bool]:
    """Read what can be read with O_DIRECT of `pages` into `out`; which pages were."""
    done = [False] * len(pages)
    flag = getattr(os, "O_DIRECT", 0)
    if not flag or not frame_bytes:
        return done
    spare = np.empty(max(PIECE, frame_bytes + 2 * ALIGN) + ALIGN, dtype=np.uint8)
    skip = -spare.ctypes.data % ALIGN
    buffer = spare[skip : skip + len(spare) - ALIGN]
    rows = out.reshape(len(out), -1).view(np.uint8)
    i = 0
    fd, current = -1, None
    try:
        while i < len(pages):
            page = pages[i]
            if page.offset < 0:
                i += 1
                continue
            if page.chunk != current:
                if fd >= 0:
                    os.close(fd)
                fd, current = -1, page.chunk
                try:
                    fd = os.open(page.chunk, os.O_RDONLY | flag)
                except OSError:
                    return done  # e.g. tmpfs: the caller reads through the cache
            # a piece from page i's aligned start: as many whole pages of this file as fit
            first = page.offset // ALIGN * ALIGN
            last = i
            while (
                last + 1 < len(pages)
                and pages[last + 1].chunk == page.chunk
                and pages[last + 1].offset > pages[last].offset
                and -(-(pages[last + 1].offset + frame_bytes) // ALIGN) * ALIGN - first
                <= len(buffer)
            ):
                last += 1
            stop = -(-(pages[last].offset + frame_bytes) // ALIGN) * ALIGN
            try:
                got = os.preadv(fd, [buffer[: stop - first].data], first)
            except OSError:
                return done  # refused after all: the rest through the cache
            for k in range(i, last + 1):
                at = pages[k].offset - first
                if at + frame_bytes <= got:  # else the file ends early: left to the caller
                    rows[k] = buffer[at : at + frame_bytes]
                    done[k] = True
            i = last + 1
    finally:
        if fd >= 0:
            os.close(fd)
    return done
