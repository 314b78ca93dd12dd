"""Opening a run reads tjump's own frame files straight from their IFDs (storage/ifd.py);
what it finds in any file, whole, cut short at any byte or with a byte damaged, is what the
general scan through tifffile finds."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from test_run_directory import make_run
from tjump.storage import scan
from tjump.storage.ifd import read_whole_file
from tjump.storage.writer import DESCRIPTION_BYTES


def _both(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[scan.ChunkScan, scan.ChunkScan]:
    """(the scan as run, the general scan alone) of one file."""
    quick = scan.scan_chunk(path)
    with monkeypatch.context() as m:
        m.setattr(scan, "read_whole_file", lambda _path: None)
        general = scan.scan_chunk(path)
    return quick, general


def _same(a: scan.ChunkScan, b: scan.ChunkScan) -> None:
    """Equal field by field (compared as text: a row's NaN is not equal to itself)."""
    assert repr(dataclasses.asdict(a)) == repr(dataclasses.asdict(b))


def _beside(tmp_path: Path, folder: str) -> Path:
    """Where a changed copy of a frame file goes (named as a run's first file)."""
    (tmp_path / folder).mkdir()
    return tmp_path / folder / "000000.tif"


def _agree_on(path: Path, data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """`data` written to `path` scans the same both ways."""
    path.write_bytes(data)
    _same(*_both(path, monkeypatch))


@pytest.fixture
def chunk(tmp_path: Path) -> Path:
    """A file of 3 pages (frames 0-2), as a run writes it."""
    run = make_run(tmp_path / "run", frames=3, chunk_frames=4)
    return run / "frames" / "000000.tif"


def test_a_whole_file_is_read_from_its_ifds_as_tifffile_reads_it(chunk: Path) -> None:
    whole = read_whole_file(chunk)
    assert whole is not None and whole.shape == (12, 16)
    with tifffile.TiffFile(chunk) as tif:
        assert [p.offset for p in whole.pages] == [p.dataoffsets[0] for p in tif.pages]
        assert [p.description.rstrip() for p in whole.pages] == [
            p.description.rstrip() for p in tif.pages
        ]
    assert all(len(p.description) == DESCRIPTION_BYTES for p in whole.pages)
    found = scan.scan_chunk(chunk)
    assert [p.frame for p in found.pages] == [0, 1, 2] and not found.torn
    assert [p.row["frame"] if p.row else None for p in found.pages] == [0, 1, 2]


def test_cut_short_anywhere_it_is_what_the_general_scan_finds(
    chunk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = chunk.read_bytes()
    cut = _beside(tmp_path, "cut")
    ends = sorted({*range(0, len(data), 37), *range(len(data) - 64, len(data) + 1)})
    for end in ends:
        _agree_on(cut, data[:end], monkeypatch)
        if end < len(data):
            assert read_whole_file(cut) is None  # nothing cut short is vouched for


def test_a_damaged_byte_anywhere_gives_what_the_general_scan_finds(
    chunk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = chunk.read_bytes()
    damaged = _beside(tmp_path, "damaged")
    for at, mask in [(at, 0x5A) for at in range(0, len(data), 3)] + [
        (at, mask) for at in range(1, len(data), 7) for mask in (0x01, 0x80)
    ]:
        flipped = bytearray(data)
        flipped[at] ^= mask
        _agree_on(damaged, bytes(flipped), monkeypatch)


def test_a_page_that_is_another_frame_is_named_the_same_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_run(tmp_path / "run", frames=8, chunk_frames=4)
    moved = run / "frames" / "000001.tif"
    shutil.copy(run / "frames" / "000004.tif", moved)  # frames 4-7 where 1-4 should be
    quick, general = _both(moved, monkeypatch)
    assert read_whole_file(moved) is not None
    _same(quick, general)
    assert "page 0 is frame 4, but the file's name says frame 1" in quick.problem


def test_a_chain_of_pages_that_turns_back_ends_without_hanging(
    chunk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A damaged next-page pointer naming an earlier page would make a loop."""
    with tifffile.TiffFile(chunk) as tif:
        first, last = tif.pages[0].offset, tif.pages[-1].offset
        pointer = last + 2 + len(tif.pages[-1].tags) * 12
    data = bytearray(chunk.read_bytes())
    data[pointer : pointer + 4] = first.to_bytes(4, "little")
    looped = _beside(tmp_path, "looped")
    looped.write_bytes(bytes(data))
    assert read_whole_file(looped) is None
    _agree_on(looped, bytes(data), monkeypatch)


@pytest.mark.parametrize("tjump_like", [True, False])
def test_a_file_tifffile_wrote_is_read_the_same_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tjump_like: bool
) -> None:
    """Pages tifffile itself wrote, as runs before storage/pages.py were: with tjump's
    options they take the IFD path; with tifffile's defaults (other tags) the general
    scan; both paths agree either way."""
    path = _beside(tmp_path, "tifffile")
    options = {"contiguous": False, "metadata": None} if tjump_like else {}
    with tifffile.TiffWriter(path) as tif:
        for frame in range(3):
            image = np.full((12, 16), frame, dtype=np.uint16)
            tif.write(image, description=json.dumps({"frame": frame}), **options)
    assert (read_whole_file(path) is not None) is tjump_like
    quick, general = _both(path, monkeypatch)
    _same(quick, general)
    assert [p.frame for p in quick.pages] == [0, 1, 2] and not quick.problem
