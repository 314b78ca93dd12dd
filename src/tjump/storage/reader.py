"""Reading a run directory back, complete or cut short."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from numpy.typing import NDArray

from tjump.errors import InputError
from tjump.storage.layout import FRAMES_CSV, FRAMES_DIR, LOG, MANIFEST


class RunDirectory:
    """A run directory on disk."""

    def __init__(self, path: Path) -> None:
        if not (path / MANIFEST).is_file():
            raise InputError(f"{path} is not a tjump run directory (no {MANIFEST})")
        self.path = path

    def manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.path / MANIFEST).read_text(encoding="utf-8"))
        return data

    def chunk_files(self) -> list[Path]:
        return sorted((self.path / FRAMES_DIR).glob("*.tif"))

    def frame_count(self) -> int:
        """Frames readable from the TIFF chunks."""
        total = 0
        for path in self.chunk_files():
            with tifffile.TiffFile(path) as tif:
                total += len(tif.pages)
        return total

    def iter_frames(self) -> Iterator[NDArray[np.uint16]]:
        """Every frame in order, one at a time."""
        for path in self.chunk_files():
            with tifffile.TiffFile(path) as tif:
                for page in tif.pages:
                    yield page.asarray()

    def read_frames(self) -> NDArray[np.uint16]:
        """All frames as one (T, Y, X) array; for small runs and tests."""
        return np.stack(list(self.iter_frames()))

    def read_frames_range(self, start: int, stop: int) -> NDArray[np.uint16]:
        """Frames `start` to `stop` (on-disk order) as one (T, Y, X) array."""
        frames = []
        first = 0
        for path in self.chunk_files():
            with tifffile.TiffFile(path) as tif:
                n = len(tif.pages)
                for i in range(max(start - first, 0), min(stop - first, n)):
                    frames.append(tif.pages[i].asarray())
                first += n
            if first >= stop:
                break
        return np.stack(frames)

    def frames_table(self) -> list[dict[str, str]]:
        with (self.path / FRAMES_CSV).open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    def log(self) -> list[dict[str, Any]]:
        lines = (self.path / LOG).read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
