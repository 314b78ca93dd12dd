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

    def read_into(self, pages: list[Page], out: NDArray[np.uint16]) -> None:
        """Frames of `pages` into `out[:len(pages)]` (a C-contiguous (T, Y, X) uint16 array):
        straight from the file into place when a page is one little-endian strip, else
        through tifffile."""
        fds: dict[Path, int] = {}
        try:
            for i, page in enumerate(pages):
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
