"""The run directory joins pages and rows by frame number and names every state a crash or
a careless hand can leave; `verify --repair` makes it consistent without losing a frame."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import zarr

from tjump.analysis.recording import open_recording
from tjump.cli import main
from tjump.errors import InputError
from tjump.storage import RunDirectory
from tjump.storage.layout import FrameRecord
from tjump.storage.repair import repair
from tjump.storage.verify import verify
from tjump.storage.writer import RunWriter
from tjump.storage.zarr_export import export_ome_zarr

FPS = 10.0
SHAPE = (12, 16)


def image(frame: int) -> np.ndarray:
    """A frame whose pixels say which frame it is."""
    return np.full(SHAPE, 100 + frame, dtype=np.uint16) + np.arange(SHAPE[1], dtype=np.uint16)


def make_run(path: Path, frames: int, chunk_frames: int = 4, status: str = "complete") -> Path:
    """A run directory of `frames` synthetic frames, written as the sequencer writes them."""
    manifest = {
        "protocol": "test",
        "rig": "none",
        "frames_planned": frames,
        "frame_rate_hz": FPS,
        "exposure_ms": 50.0,
        "pixel_size_um": 0.37,
        "frame_shape": list(SHAPE),
    }
    writer = RunWriter(path, manifest, ("drive_V", "current_A"), 200.0, chunk_frames)
    for f in range(frames):
        heat = (f // 5) % 2 == 1
        record = FrameRecord(
            frame=f,
            time_s=f / FPS,
            temperature_K=380.0 if heat else 293.0,
            segment=f // 5,
            kind="heat" if heat else "cool",
            step=1,
            cycle=1 + f // 10,
            drive_V=1.0 if heat else 0.0,
            current_A=0.04 if heat else 0.0,
            daq_index=f * 20,
            camera_frame=f,
        )
        writer.write_frame(image(f), record)
        if f % 5 == 4 or (f == frames - 1 and status == "complete"):
            writer.log("segment_finished", segment=f // 5)
    writer.close(status)
    return path


def rows_of(path: Path) -> list[dict[str, str]]:
    with (path / "frames.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    with (path / "frames.csv").open("w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=list(rows[0]))
        out.writeheader()
        out.writerows(rows)


def assert_frames_intact(path: Path, frames: int) -> None:
    """Every frame readable, its pixels and its row those it was written with."""
    run = RunDirectory(path)
    pages = run.pages()
    assert [p.frame for p in pages] == list(range(frames))
    for page, pixels in zip(pages, run.iter_frames(pages), strict=True):
        np.testing.assert_array_equal(pixels, image(page.frame))
    verdict = verify(path)
    assert verdict.consistent, verdict.problems
    assert [verdict.rows[f]["time_s"] for f in range(frames)] == pytest.approx(
        [f / FPS for f in range(frames)]
    )


def test_a_chunk_of_one_page_reads(tmp_path: Path) -> None:
    """1,001 frames in chunks of 1,000 leave a last file of one page (scaled down: 5 in 4)."""
    run = make_run(tmp_path / "run", frames=5, chunk_frames=4)
    assert sorted(p.name for p in (run / "frames").iterdir()) == ["000000.tif", "000004.tif"]
    recording = open_recording(run)
    assert recording.frames == 5
    views = np.concatenate([f.view() for f in recording.files])
    np.testing.assert_array_equal(views, np.stack([image(f) for f in range(5)]))
    assert_frames_intact(run, 5)


def test_a_torn_last_page_is_named_and_cut(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", frames=7, status="aborted")
    last = run / "frames" / "000004.tif"
    last.write_bytes(last.read_bytes()[:-100])  # frame 6's pixels cut short
    verdict = verify(run)
    assert not verdict.consistent
    assert any("torn page" in p for p in verdict.problems)
    with pytest.raises(InputError, match="verify --repair"):
        open_recording(run)
    actions = repair(run)
    assert any("torn page" in a for a in actions)
    verdict = verify(run)
    assert verdict.consistent, verdict.problems
    assert sorted(verdict.pages) == list(range(6))
    assert verdict.rows[6]["missing"] == 1  # its row is kept, marked: its page is lost
    assert any((run / "set-aside").glob("000004.tif.torn-*"))  # the bytes are kept
    # frames 5 and 6 are of a segment the log never saw finish: an interrupted cycle, left
    # out of analysis unless asked for
    assert [verdict.rows[f]["interrupted"] for f in range(7)] == [0] * 5 + [1] * 2
    assert open_recording(run).frames == 5
    assert open_recording(run, keep_interrupted=True).frames == 6


def test_a_page_whose_row_was_lost_gets_it_back(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", frames=9)
    original = rows_of(run)
    write_rows(run, original[:-2])  # a crash between a page and its row, twice over
    verdict = verify(run)
    assert verdict.orphans == [7, 8]
    repair(run)
    assert rows_of(run) == original
    assert_frames_intact(run, 9)


@pytest.mark.parametrize("damage", ["shuffled", "duplicated", "negative temperature"])
def test_a_damaged_table_is_refused_then_repaired_from_the_pages(
    tmp_path: Path,
    damage: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = make_run(tmp_path / "run", frames=10)
    original = rows_of(run)
    rows = [dict(r) for r in original]
    if damage == "shuffled":
        numbers = [r["frame"] for r in rows]
        for r, n in zip(rows, numbers[::-1], strict=True):
            r["frame"] = n
    elif damage == "duplicated":
        rows.insert(5, dict(rows[3]))
    else:
        rows[4]["temperature_K"] = "-12.5"
    write_rows(run, rows)
    monkeypatch.setattr("sys.argv", ["tjump", "analyze", str(run), "-o", str(tmp_path / "a")])
    with pytest.raises(SystemExit) as exit_code:
        main()
    assert exit_code.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "not consistent" in err and f"tjump verify --repair {run}" in err
    assert "Traceback" not in err
    repair(run)
    assert [r["frame"] for r in rows_of(run)] == [r["frame"] for r in original]
    assert [r["temperature_K"] for r in rows_of(run)] == [r["temperature_K"] for r in original]
    assert_frames_intact(run, 10)
    assert any((run / "set-aside").glob("frames-rows.csv"))


def test_chunks_renamed_out_of_order_are_named_then_put_back(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", frames=8, chunk_frames=4)
    a, b = run / "frames" / "000000.tif", run / "frames" / "000004.tif"
    a.rename(run / "frames" / "x.tmp")
    b.rename(a)
    (run / "frames" / "x.tmp").rename(b)
    verdict = verify(run)
    assert any("the file's name says frame 0" in p for p in verdict.problems)
    with pytest.raises(InputError, match="not consistent"):
        open_recording(run)
    repair(run)
    assert_frames_intact(run, 8)


def test_rows_without_pages_are_marked_missing(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", frames=8, chunk_frames=4)
    (run / "frames" / "000004.tif").unlink()
    repair(run)
    verdict = verify(run)
    assert verdict.consistent
    assert [verdict.rows[f]["missing"] for f in range(8)] == [0] * 4 + [1] * 4
    assert open_recording(run).frames == 4


def test_verify_reports_what_is_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run(tmp_path / "run", frames=6, status="running")
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "running"  # as a killed run leaves it
    monkeypatch.setattr("sys.argv", ["tjump", "verify", str(run)])
    with pytest.raises(SystemExit) as code:
        main()
    out = capsys.readouterr().out
    assert code.value.code == 1
    assert "6 readable pages in 2 files, 6 rows" in out
    assert "no process writes it" in out and "tjump verify --repair" in out
    monkeypatch.setattr("sys.argv", ["tjump", "verify", "--repair", str(run)])
    with pytest.raises(SystemExit) as code:
        main()
    out = capsys.readouterr().out
    assert code.value.code in (0, None)
    assert "status running -> interrupted" in out
    assert "consistent" in out
    assert any(e["event"] == "repaired" for e in RunDirectory(run).log())


def test_a_repaired_run_with_lost_pages_exports_to_ome_zarr_by_frame_number(
    tmp_path: Path,
) -> None:
    """Frames 4-7 lost and marked missing: the OME-Zarr holds the 8 frames that are left,
    each plane beside its own row (time and pixels of the same frame)."""
    run = make_run(tmp_path / "run", frames=12, chunk_frames=4)
    (run / "frames" / "000004.tif").unlink()
    repair(run)
    kept = [0, 1, 2, 3, 8, 9, 10, 11]
    assert export_ome_zarr(RunDirectory(run), tmp_path / "run.ome.zarr") == len(kept)
    root = zarr.open_group(tmp_path / "run.ome.zarr", mode="r")
    movie = root["0"][:]
    for plane, frame in enumerate(kept):
        np.testing.assert_array_equal(movie[plane], image(frame))
    assert root["frames/time_s"][:] == pytest.approx([f / FPS for f in kept])


def test_the_final_status_is_written_after_the_data_reaches_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A power cut after a run ended must not leave `complete` beside lost rows or pages:
    every data file, and the folders naming them, is synced before the last manifest."""
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(Path(f"/proc/self/fd/{fd}").readlink().name)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    make_run(tmp_path / "run", frames=10, chunk_frames=4)
    last_manifest = len(synced) - 1 - synced[::-1].index("manifest.json.tmp")
    before = set(synced[:last_manifest])
    assert {"000008.tif", "frames.csv", "daq.csv", "log.jsonl", "frames", "run"} <= before
