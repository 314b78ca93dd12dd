"""Reading what a run directory holds, whatever state a crash left it in: every complete
TIFF page with the frame number its file name gives it (checked against the page's own
description), every well-formed row of frames.csv, and what is torn or damaged."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tifffile

from tjump.storage.ifd import read_whole_file
from tjump.storage.layout import (
    FRAME_COLUMNS,
    FRAMES_DIR,
    INT_COLUMNS,
    OPTIONAL_NUMBERS,
    TEXT_COLUMNS,
)

logging.getLogger("tifffile").addHandler(logging.NullHandler())  # its warnings are ours to tell
logging.getLogger("tifffile").propagate = False

Row = dict[str, Any]
# columns a table from an older tjump may lack
_LATER_COLUMNS = ("film_temperature_K", "schedule_frame", "session", "interrupted", "missing")
MAX_LINE_REPORT = 5  # damaged lines named in a message before "and N more"


@dataclass
class Page:
    """One complete page: the frame its file name and position give it, where it is."""

    frame: int
    chunk: Path
    index: int
    row: Row | None  # the row its description holds (None: no description, an older run)
    offset: int = -1  # where its pixels start in the file when stored as one little-endian strip


@dataclass
class ChunkScan:
    """One frames/NNNNNN.tif file."""

    path: Path
    first: int  # the frame number its name gives its first page
    pages: list[Page] = field(default_factory=list)
    torn: str = ""  # what follows the last complete page, if anything: a torn page
    problem: str = ""  # a page that is not the frame its place says, an unreadable file
    shape: tuple[int, int] | None = None


def chunk_first_frame(path: Path) -> int | None:
    """The frame number a chunk's name gives (000123.tif -> 123), None if not a number."""
    stem = path.stem
    return int(stem) if stem.isdigit() else None


def scan_chunk(path: Path) -> ChunkScan:
    """Every complete page of one chunk, in order; anything after them is `torn`."""
    first = chunk_first_frame(path)
    scan = ChunkScan(path, first if first is not None else -1)
    if first is None:
        scan.problem = f"{FRAMES_DIR}/{path.name}: the name is not a frame number"
        return scan
    whole = read_whole_file(path)
    if whole is not None:  # a whole file of tjump's pages: read from the IFDs alone
        scan.shape = whole.shape
        for index, ifd in enumerate(whole.pages):
            if not _add_page(scan, index, _described_row(ifd.description), ifd.offset):
                break
        return scan
    try:
        size = path.stat().st_size
        tif = tifffile.TiffFile(path)
    except Exception as e:  # tifffile raises many types for a damaged file
        scan.torn = f"not a readable TIFF ({type(e).__name__})" if _size(path) else "empty"
        return scan
    with tif:
        end = 8
        last_ifd: tuple[int, int] | None = None
        index = 0
        while True:
            try:
                page = tif.pages[index] if index < len(tif.pages) else None
            except Exception:
                page = None  # a torn IFD: what follows the complete pages is cut
            if page is None:
                break
            if not isinstance(page, tifffile.TiffPage):
                break
            data_end = _complete_data_end(page, size)
            if data_end is None:
                break
            shape = (int(page.shape[0]), int(page.shape[1])) if len(page.shape) == 2 else None
            if shape is None or page.dtype is None or page.dtype.name != "uint16":
                scan.problem = f"{FRAMES_DIR}/{path.name} page {index} is not a uint16 frame"
                break
            if scan.shape is None:
                scan.shape = shape
            elif shape != scan.shape:
                scan.problem = f"{FRAMES_DIR}/{path.name} page {index} differs in size"
                break
            strip = len(page.dataoffsets) == 1 and tif.byteorder == "<"
            offset = int(page.dataoffsets[0]) if strip else -1
            if not _add_page(scan, index, _described_row(page.description), offset):
                break
            end = max(end, data_end)
            last_ifd = (int(page.offset), len(page.tags))
            index += 1
        if not scan.problem:
            scan.torn = _tail(path, tif, size, end, last_ifd)
    return scan


def _add_page(scan: ChunkScan, index: int, row: Row | None, offset: int) -> bool:
    """Page `index` of the chunk into `scan`; False (and the `problem` told) if its
    description says it is another frame than its place in the file."""
    frame = scan.first + index
    if row is not None and row.get("frame") != frame:
        scan.problem = (
            f"{FRAMES_DIR}/{scan.path.name} page {index} is frame {row.get('frame')}, but the "
            f"file's name says frame {frame}"
        )
        return False
    scan.pages.append(Page(frame, scan.path, index, row, offset))
    return True


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _complete_data_end(page: tifffile.TiffPage, size: int) -> int | None:
    """Where a page's pixel data ends, or None if the file ends before it does."""
    offsets, counts = page.dataoffsets, page.databytecounts
    if not offsets or page.compression != 1:
        return None
    expected = page.shape[0] * page.shape[1] * 2 if len(page.shape) == 2 else -1
    if sum(counts) != expected:
        return None
    data_end = int(offsets[-1] + counts[-1])
    return data_end if data_end <= size else None


def _tail(
    path: Path, tif: tifffile.TiffFile, size: int, end: int, last_ifd: tuple[int, int] | None
) -> str:
    """'' if the file ends with its last complete page, else what is after it."""
    if last_ifd is None:
        return f"no complete page in {size} bytes" if size else "empty"
    offset, tags = last_ifd
    count_size, entry_size, pointer = (8, 20, "Q") if tif.is_bigtiff else (2, 12, "I")
    at = offset + count_size + tags * entry_size
    try:
        with path.open("rb") as f:
            f.seek(at)
            raw = f.read(struct.calcsize(pointer))
        next_ifd = struct.unpack(tif.byteorder + pointer, raw)[0] if len(raw) else 0
    except (OSError, struct.error):
        next_ifd = 0
    if next_ifd or size > end:
        return f"a torn page after the complete ones ({size - end} bytes)"
    return ""


def _described_row(description: str | None) -> Row | None:
    """The row a page's description holds, typed as frames.csv's columns; None if the
    description is not one (an older run, or damage)."""
    if not description or not description.startswith("{"):
        return None
    try:
        data = json.loads(description)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    try:
        return parse_row({k: str(data[k]) for k in FRAME_COLUMNS if k in data})
    except (KeyError, ValueError):
        return None


def scan_chunks(directory: Path) -> list[ChunkScan]:
    """Every chunk of a run, in frame order."""
    paths = sorted(
        (directory / FRAMES_DIR).glob("*.tif"),
        key=lambda p: (chunk_first_frame(p) is None, chunk_first_frame(p) or 0, p.name),
    )
    return [scan_chunk(p) for p in paths]


# -- frames.csv ------------------------------------------------------------------------


@dataclass
class Table:
    """frames.csv as read: its header, the rows that parse, the lines that do not."""

    header: list[str]
    rows: list[Row]
    lines: list[int]  # the line each row came from
    bad: list[tuple[int, str]] = field(default_factory=list)  # (line, what is wrong)
    torn: str = ""  # a last line cut short
    text_rows: list[dict[str, str]] = field(default_factory=list)


def parse_row(values: dict[str, str]) -> Row:
    """Typed values of one row; ValueError naming the column for anything wrong."""
    row: Row = {}
    for name in FRAME_COLUMNS:
        if name not in values:
            if name in _LATER_COLUMNS:
                continue  # an older run's table
            raise ValueError(f"no '{name}' value")
        text = values[name]
        if name in OPTIONAL_NUMBERS and text.strip().lower() in ("", "nan"):
            row[name] = math.nan  # not known for this frame
            continue
        if name in TEXT_COLUMNS:
            if not text.isidentifier():
                raise ValueError(f"'{name}' is {text[:20]!r}")
            row[name] = text
        elif name in INT_COLUMNS:
            try:
                row[name] = int(text)
            except ValueError:
                raise ValueError(f"'{name}' is {text[:20]!r}, not a whole number") from None
        else:
            try:
                number = float(text)
            except ValueError:
                raise ValueError(f"'{name}' is {text[:20]!r}, not a number") from None
            if not math.isfinite(number):
                raise ValueError(f"'{name}' is {text[:20]!r}, not a finite number")
            row[name] = number
    if row["frame"] < 0:
        raise ValueError(f"'frame' is {row['frame']}, below 0")
    if row["temperature_K"] <= 0:
        raise ValueError(f"'temperature_K' is {row['temperature_K']:g}, not above 0 K")
    if row["time_s"] < 0:
        raise ValueError(f"'time_s' is {row['time_s']:g}, below 0")
    for flag in ("interrupted", "missing"):
        if row.get(flag, 0) not in (0, 1):
            raise ValueError(f"'{flag}' is {row[flag]}, not 0 or 1")
    return row


def read_table(path: Path) -> Table:
    """frames.csv, each line checked; a last line without its newline is `torn`."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return Table([], [], [], torn="")
    lines = text.split("\n")
    torn = ""
    if lines and lines[-1] == "":
        lines.pop()
    elif lines:
        torn = f"the last line ({len(lines[-1])} characters) was cut short"
        lines.pop()
    if not lines:
        return Table([], [], [], torn=torn)
    header = next(csv.reader([lines[0]]), [])
    table = Table(header, [], [], torn=torn)
    if header[:1] != ["frame"]:
        table.bad.append((1, "the header is not frames.csv's"))
        return table
    for number, fields in enumerate(csv.reader(io.StringIO("\n".join(lines[1:]))), start=2):
        if not fields:
            continue
        if len(fields) != len(header):
            table.bad.append((number, f"{len(fields)} fields, the header has {len(header)}"))
            continue
        values = dict(zip(header, fields, strict=True))
        try:
            row = parse_row(values)
        except ValueError as e:
            table.bad.append((number, str(e)))
            continue
        table.rows.append(row)
        table.lines.append(number)
        table.text_rows.append(values)
    return table


def format_row(row: Row) -> list[str]:
    """A row as frames.csv writes it."""
    out = []
    for name in FRAME_COLUMNS:
        value = row.get(name, 0)
        if name == "schedule_frame" and name not in row:
            value = row["frame"]
        if isinstance(value, float):
            out.append(repr(value) if math.isfinite(value) else "")
        else:
            out.append(str(value))
    return out
