"""The run's TIFF pages, written without tifffile's per-page work: tifffile reads them back
as it wrote them, and a file cut anywhere keeps every page before the cut."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

from tjump.storage.pages import PageWriter
from tjump.storage.scan import scan_chunk

DESCRIPTION = 512


def described(i: int) -> str:
    return f'{{"frame": {i}}}'.ljust(DESCRIPTION)


def write_pages(path: Path, frames: np.ndarray) -> list[int]:
    """Write `frames` as pages; the file's size after each page."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    sizes = []
    try:
        pages = PageWriter(fd, frames.shape[1:], DESCRIPTION)
        for i, frame in enumerate(frames):
            pages.write(frame, described(i))
            sizes.append(os.fstat(fd).st_size)
    finally:
        os.close(fd)
    return sizes


def test_pages_read_back_as_tifffile_writes_them(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 2**16, (5, 37, 53), dtype=np.uint16)  # odd sizes
    write_pages(tmp_path / "ours.tif", frames)
    with tifffile.TiffWriter(tmp_path / "theirs.tif") as tif:
        for i, frame in enumerate(frames):
            tif.write(frame, contiguous=False, metadata=None, description=described(i))
    with (
        tifffile.TiffFile(tmp_path / "ours.tif") as ours,
        tifffile.TiffFile(tmp_path / "theirs.tif") as theirs,
    ):
        assert len(ours.pages) == 5
        for i, (a, b) in enumerate(zip(ours.pages, theirs.pages, strict=True)):
            assert isinstance(a, tifffile.TiffPage) and isinstance(b, tifffile.TiffPage)
            assert np.array_equal(a.asarray(), frames[i])
            assert a.description == b.description == described(i).rstrip()
            assert [(t.code, t.value) for t in a.tags if t.code not in (273,)] == [
                (t.code, t.value) for t in b.tags if t.code not in (273,)
            ]
            assert a.dataoffsets[0] % 16 == 0
    ours_size, theirs_size = ((tmp_path / n).stat().st_size for n in ("ours.tif", "theirs.tif"))
    assert ours_size <= theirs_size + 5 * 16  # at most the alignment more per page


def test_a_file_cut_anywhere_keeps_the_pages_before_the_cut(tmp_path: Path) -> None:
    frames = np.arange(3 * 8 * 10, dtype=np.uint16).reshape(3, 8, 10)
    whole = tmp_path / "whole.tif"
    sizes = write_pages(whole, frames)
    data = whole.read_bytes()
    cut = tmp_path / "000000.tif"
    for end in range(sizes[0], len(data) + 1, 7):
        cut.write_bytes(data[:end])
        scan = scan_chunk(cut)
        complete = sum(size <= end for size in sizes)
        assert not scan.problem
        assert len(scan.pages) == complete, end
        assert bool(scan.torn) == (end != len(data)), end  # what follows is torn


def test_a_page_of_another_shape_or_description_is_refused(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "x.tif", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        pages = PageWriter(fd, (4, 4), DESCRIPTION)
        with pytest.raises(ValueError, match="uint16 page"):
            pages.write(np.zeros((4, 5), np.uint16), described(0))
        with pytest.raises(ValueError, match="description of 512 bytes"):
            pages.write(np.zeros((4, 4), np.uint16), "short")
    finally:
        os.close(fd)
