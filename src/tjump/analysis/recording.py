"""Opening a recording for analysis: a tjump run directory or the generic format.

Generic format (docs/run-directory.md): a folder with `frames.tif` (multi-page TIFF, one page per
frame, uint16 or float) and `frames.csv` (one row per frame, header with at least
`frame,time_s,temperature_K`; more columns allowed: `kind` (baseline/heat/cool/ablation)
and `exposure_s` are used when present, else heating is where the setpoint is raised and the
exposure is taken to fill the frame period).

Frames are never loaded whole. Each TIFF file becomes a (T, H, W) *view* of the file on disk:
when the pages' pixel data are uncompressed and regularly spaced (what tifffile writes page by
page, or as one contiguous series) the view is `np.memmap` + `as_strided` with the page
spacing as the first stride, so slicing a patch out of every frame reads only the bytes the
patch needs. Anything else (compressed, tiled or irregular pages) falls back to reading pages
one at a time. Every problem found is raised as one `InputError` naming the file and what is
wrong with it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from numpy.lib.stride_tricks import as_strided
from numpy.typing import NDArray

from tjump.errors import InputError
from tjump.storage.layout import (
    FRAMES_CSV,
    FRAMES_DIR,
    GENERIC_FRAMES,
    MANIFEST,
    TRUTH_DIR,
    ZARR_JSON,
)
from tjump.storage.scan import Page
from tjump.storage.table import read_columns
from tjump.storage.verify import require_consistent

FloatArray = NDArray[np.float64]


@dataclass
class FrameFile:
    """One TIFF file's frames: a lazily opened (T, H, W) view."""

    path: Path
    frames: int
    shape: tuple[int, int]
    dtype: np.dtype[Any]
    first_offset: int | None  # None: pages not regularly spaced -> page-by-page reading
    stride: int
    first_page: int = 0  # the file's page this view starts at

    def pages(self, first: int, count: int) -> FrameFile:
        """A view of `count` of this file's pages from its page `first`."""
        offset = None if self.first_offset is None else self.first_offset + first * self.stride
        return FrameFile(
            self.path, count, self.shape, self.dtype, offset, self.stride, self.first_page + first
        )

    def view(self) -> NDArray[Any]:
        """All frames of the file as a read-only array backed by the file (no copy)."""
        if self.first_offset is None:
            return _PagedArray(self).load()
        h, w = self.shape
        item = self.dtype.itemsize
        size = (self.frames - 1) * self.stride + h * w * item
        raw = np.memmap(self.path, dtype=np.uint8, mode="r", offset=self.first_offset, shape=size)
        flat = raw.view(self.dtype)
        view: NDArray[Any] = as_strided(
            flat, shape=(self.frames, h, w), strides=(self.stride, w * item, item), writeable=False
        )
        return view


class _PagedArray:
    """Fallback for TIFFs whose pages cannot be memory-mapped: read them one by one."""

    def __init__(self, file: FrameFile) -> None:
        self.file = file

    def load(self) -> NDArray[Any]:
        with tifffile.TiffFile(self.file.path) as tif:
            first = self.file.first_page
            pages = tif.pages[first : first + self.file.frames]
            return np.stack([page.asarray() for page in pages])


def _page_data(page: Any, frame_bytes: int, path: Path) -> tuple[int, int, bool]:
    """(first data offset, end of data, strips contiguous) of one page."""
    offsets, counts = page.dataoffsets, page.databytecounts
    if not offsets or sum(counts) < frame_bytes:
        raise InputError(f"{path} is truncated or damaged: a page has no complete data")
    contiguous = all(offsets[i + 1] == offsets[i] + counts[i] for i in range(len(offsets) - 1))
    return int(offsets[0]), int(offsets[-1] + counts[-1]), contiguous


def open_tiff(path: Path, partial: bool = False) -> FrameFile:
    """Inspect one TIFF file: frame count, shape, dtype, and whether it can be memory-mapped.
    `partial`: keep the complete pages of a file cut short (a run that crashed) instead of
    refusing it.

    Regular spacing is checked on a sample of pages (first, second, quarters, last two);
    when the sample is regular every page's place follows from it, else all pages are read
    and checked one by one."""
    try:
        tif = tifffile.TiffFile(path)
    except Exception as e:  # tifffile raises many types for a bad file
        raise InputError(f"{path} is not a readable TIFF file: {e}") from e
    with tif:
        try:
            tif.pages.useframes = True
            n = len(tif.pages)
            first = tif.pages[0] if n else None
        except Exception as e:
            raise InputError(f"{path} is truncated or damaged: {e}") from e
        if first is None:
            raise InputError(f"{path} holds no image")
        if not isinstance(first, tifffile.TiffPage):
            raise InputError(f"{path} is truncated or damaged")
        dtype = np.dtype(first.dtype).newbyteorder(tif.byteorder)
        if not ((dtype.kind == "u" and dtype.itemsize == 2) or dtype.kind == "f"):
            raise InputError(
                f"{path} holds {dtype.name} pixels; tjump analyze needs uint16 or float frames"
            )
        if len(first.shape) != 2:
            raise InputError(
                f"{path}: each page must be one grey frame (rows, columns), not {first.shape}"
            )
        shape = (int(first.shape[0]), int(first.shape[1]))
        frame_bytes = shape[0] * shape[1] * dtype.itemsize
        file_size = path.stat().st_size
        try:
            sample = sorted(
                {i for i in (0, 1, n // 4, n // 2, 3 * n // 4, n - 2, n - 1) if 0 <= i < n}
            )
            data = {i: _page_data(tif.pages[i], frame_bytes, path) for i in sample}
            start = data[0][0]
            stride = data[1][0] - start if n > 1 else frame_bytes
            regular = (
                first.compression == 1
                and stride >= frame_bytes
                and stride % dtype.itemsize == 0
                and all(d[2] and d[0] == start + i * stride for i, d in data.items())
            )
            if regular:
                whole = (file_size - start - frame_bytes) // stride + 1 if file_size > start else 0
                if whole < n and not (partial and whole > 0):
                    raise InputError(
                        f"{path} is truncated: it holds {n} frames but the data of only "
                        f"{max(whole, 0)} fit in its {file_size} bytes"
                    )
                return FrameFile(path, min(n, whole), shape, dtype, start, stride)
            # irregular or compressed: check every page
            count = 0
            for page in tif.pages:
                _, end, _ = _page_data(page, frame_bytes, path)
                if end > file_size:
                    if partial and count:
                        break
                    raise InputError(
                        f"{path} is truncated: frame {count} ends at byte {end} "
                        f"but the file has {file_size} bytes"
                    )
                count += 1
        except InputError:
            raise
        except Exception as e:
            raise InputError(f"{path} is truncated or damaged: {e}") from e
    return FrameFile(path, count, shape, dtype, None, stride)


@dataclass
class Recording:
    """Frames (as per-file views) and the per-frame table, ready for analysis."""

    source: Path
    files: list[FrameFile]
    time_s: FloatArray
    temperature_K: FloatArray
    kind: list[str] | None  # baseline / heat / cool / ablation / hold, when recorded
    cycle: NDArray[np.int64] | None
    frame_period_s: float
    exposure_s: float
    pixel_size_um: float | None = None
    truth_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    film_temperature_K: FloatArray | None = None  # from the film's V/I, NaN where unknown

    @property
    def frames(self) -> int:
        return len(self.time_s)

    @property
    def shape(self) -> tuple[int, int]:
        return self.files[0].shape

    def blocks(self, max_frames: int = 1000) -> Iterator[tuple[int, NDArray[Any]]]:
        """(first frame, (T, H, W) view) for consecutive blocks of at most `max_frames`."""
        start = 0
        for f in self.files:
            view = f.view()
            for i in range(0, f.frames, max_frames):
                block = view[i : i + max_frames]
                yield start + i, block
            start += f.frames

    def mean_image(self, first: int, count: int) -> FloatArray:
        """Mean of frames [first, first + count)."""
        total = np.zeros(self.shape)
        n = 0
        for start, block in self.blocks():
            lo, hi = max(first - start, 0), min(first + count - start, len(block))
            if lo < hi:
                total += block[lo:hi].sum(axis=0, dtype=np.float64)
                n += hi - lo
            if start + len(block) >= first + count:
                break
        return total / max(n, 1)


def _numbers(path: Path, columns: dict[str, list[str]], name: str) -> FloatArray:
    if name not in columns:
        raise InputError(
            f"{path} has no '{name}' column (header: {', '.join(columns)}); "
            "it needs frame,time_s,temperature_K"
        )
    try:
        values = np.array([float(v) for v in columns[name]], dtype=np.float64)
    except ValueError as e:
        raise InputError(f"{path}: column '{name}' holds a value that is not a number: {e}") from e
    if not np.all(np.isfinite(values)):
        raise InputError(f"{path}: column '{name}' holds empty or non-finite values")
    return values


def _optional_numbers(path: Path, columns: dict[str, list[str]], name: str) -> FloatArray | None:
    """A numeric column that may be absent or hold empty cells (NaN); None when absent or
    empty throughout."""
    if name not in columns:
        return None
    try:
        values = np.array(
            [float(v) if v.strip() else np.nan for v in columns[name]], dtype=np.float64
        )
    except ValueError as e:
        raise InputError(f"{path}: column '{name}' holds a value that is not a number: {e}") from e
    return values if np.isfinite(values).any() else None


def _frame_period(time_s: FloatArray, path: Path) -> float:
    if len(time_s) < 2:
        raise InputError(f"{path} has fewer than two frames")
    steps = np.diff(time_s)
    if np.any(steps <= 0):
        raise InputError(f"{path}: time_s must increase from frame to frame")
    return float(np.median(steps))


def _check_step_response(manifest: dict[str, Any], where: Path) -> None:
    """The heater's step response a run recorded from its rig, if any, must be
    [[weight, time constant s], ...] with numbers above 0."""
    pairs = manifest.get("heater_step_response")
    if not pairs:
        return
    field = f"{where}: heater_step_response"
    if not isinstance(pairs, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(_is_number(v) for v in p) for p in pairs
    ):
        raise InputError(f"{field} must be a list of [weight, time constant s] number pairs")
    if any(not (math.isfinite(w) and math.isfinite(t) and w > 0 and t > 0) for w, t in pairs):
        raise InputError(f"{field}: weights and time constants must be finite and above 0")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _manifest_number(manifest: dict[str, Any], name: str, where: Path) -> float | None:
    """An optional positive number from the manifest; InputError if present but bad."""
    value = manifest.get(name)
    if value is None:
        return None
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise InputError(f"{where}: {name} is {value!r}; it must be a number above 0")
    return float(value)


def open_recording(path: Path, keep_interrupted: bool = False) -> Recording:
    """A run directory (manifest.json), an OME-Zarr export of one (zarr.json), or a generic
    folder (frames.tif + frames.csv). A run's frames in cycles it did not finish (marked
    `interrupted`, redone after a resume) are left out unless `keep_interrupted`; `extra`
    tells how many."""
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_dir() and (path / MANIFEST).is_file():
        return _open_run(path, keep_interrupted)
    if path.is_dir() and (path / ZARR_JSON).is_file():
        from tjump.analysis.zarr_recording import open_zarr_recording  # builds on this module

        return open_zarr_recording(path)
    folder = path if path.is_dir() else path.parent
    tif, table = folder / GENERIC_FRAMES, folder / FRAMES_CSV
    if not tif.is_file() or not table.is_file():
        raise InputError(
            f"{path} is neither a tjump run directory (manifest.json) nor a generic recording "
            "(frames.tif + frames.csv)"
        )
    return _open_generic(tif, table)


def _check_table_length(files: list[FrameFile], table: Path, rows: int) -> None:
    frames = sum(f.frames for f in files)
    if frames != rows:
        raise InputError(
            f"{table} has {rows} rows but the TIFF holds {frames} frames; they must match"
        )
    shapes = {f.shape for f in files}
    if len(shapes) > 1:
        raise InputError(f"frame files differ in shape: {sorted(shapes)}")


def _open_generic(tif: Path, table: Path) -> Recording:
    frame_file = open_tiff(tif)
    columns = read_columns(table)
    time_s = _numbers(table, columns, "time_s")
    temperature = _numbers(table, columns, "temperature_K")
    _check_table_length([frame_file], table, len(time_s))
    _check_temperatures(temperature, table)
    _check_frame_numbers(columns, table)
    period = _frame_period(time_s, table)
    kind = columns.get("kind")
    cycle = _cycles(columns, table)
    exposure = period
    if "exposure_s" in columns:
        exposure = min(float(np.median(_numbers(table, columns, "exposure_s"))), period)
    return Recording(
        tif.parent,
        [frame_file],
        time_s,
        temperature,
        kind,
        cycle,
        period,
        exposure_s=exposure,
        film_temperature_K=_optional_numbers(table, columns, "film_temperature_K"),
    )


def _whole_numbers(columns: dict[str, list[str]], table: Path, name: str) -> NDArray[np.int64]:
    try:
        return np.array([int(v) for v in columns[name]], dtype=np.int64)
    except ValueError as e:
        raise InputError(
            f"{table}: column '{name}' holds a value that is not a whole number: {e}"
        ) from e


def _cycles(columns: dict[str, list[str]], table: Path) -> NDArray[np.int64] | None:
    if "cycle" not in columns:
        return None
    cycle = _whole_numbers(columns, table, "cycle")
    if np.any(cycle < 0):
        raise InputError(f"{table}: column 'cycle' holds a negative number")
    return cycle


def _check_frame_numbers(columns: dict[str, list[str]], table: Path) -> None:
    """Frames are matched to pages by number: numbers must rise, each once."""
    if "frame" not in columns:
        return
    frame = _whole_numbers(columns, table, "frame")
    steps = np.diff(frame)
    if np.any(steps <= 0):
        at = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise InputError(
            f"{table}: column 'frame' must rise from row to row, each number once; row {at + 1} "
            f"holds {frame[at]} after {frame[at - 1]} (shuffled or duplicated rows?)"
        )


def _check_temperatures(temperature: FloatArray, table: Path) -> None:
    if np.any(temperature <= 0):
        at = int(np.flatnonzero(temperature <= 0)[0])
        raise InputError(
            f"{table}: column 'temperature_K' holds {temperature[at]:g} K at row {at + 1}; "
            "temperatures are in kelvin, above 0"
        )


def _open_run(path: Path, keep_interrupted: bool) -> Recording:
    """A run directory, checked as `tjump verify` checks it; frames and rows are joined
    by frame number."""
    verdict = require_consistent(path, "analyse")
    manifest = verdict.manifest
    _check_step_response(manifest, path / MANIFEST)
    chosen = sorted(f for f in verdict.pages if f in verdict.rows)
    interrupted = [f for f in chosen if verdict.rows[f].get("interrupted")]
    if not keep_interrupted:
        chosen = [f for f in chosen if not verdict.rows[f].get("interrupted")]
    if not chosen:
        raise InputError(f"{path} holds no frames to analyse ({FRAMES_DIR}/*.tif)")
    files = _frame_files([verdict.pages[f] for f in chosen])
    rows = [verdict.rows[f] for f in chosen]
    table = path / FRAMES_CSV
    time_s = np.array([r["time_s"] for r in rows], dtype=np.float64)
    temperature = np.array([r["temperature_K"] for r in rows], dtype=np.float64)
    film = np.array([r.get("film_temperature_K", np.nan) for r in rows], dtype=np.float64)
    shapes = {f.shape for f in files}
    if len(shapes) > 1:
        raise InputError(f"frame files differ in shape: {sorted(shapes)}")
    period = _frame_period(time_s, table)
    exposure_ms = _manifest_number(manifest, "exposure_ms", path / MANIFEST)
    exposure = exposure_ms / 1e3 if exposure_ms else period
    truth = path / TRUTH_DIR
    return Recording(
        path,
        files,
        time_s,
        temperature,
        [str(r["kind"]) for r in rows],
        np.array([r["cycle"] for r in rows], dtype=np.int64),
        period,
        exposure_s=min(exposure, period),
        pixel_size_um=_manifest_number(manifest, "pixel_size_um", path / MANIFEST),
        truth_dir=truth if truth.is_dir() else None,
        extra={
            "manifest": manifest,
            "frame_numbers": np.array(chosen, dtype=np.int64),
            "interrupted_frames": len(interrupted),
            "interrupted_kept": keep_interrupted,
        },
        film_temperature_K=film if np.isfinite(film).any() else None,
    )


def _frame_files(pages: list[Page]) -> list[FrameFile]:
    """The pages as views of consecutive pages of one file each."""
    whole: dict[Path, FrameFile] = {}
    files: list[FrameFile] = []
    start = 0
    for i, page in enumerate(pages):
        last = i + 1 == len(pages)
        nxt = None if last else pages[i + 1]
        if nxt is not None and nxt.chunk == page.chunk and nxt.index == page.index + 1:
            continue
        first = pages[start]
        if first.chunk not in whole:
            whole[first.chunk] = open_tiff(first.chunk, partial=True)
        files.append(whole[first.chunk].pages(first.index, i + 1 - start))
        start = i + 1
    return files
