"""`tjump export --ome-zarr`: a valid OME-Zarr v0.5 store that napari's reader opens, with
every frame and the per-frame table; `tjump analyze` reads it to the same results as the
run directory."""

from __future__ import annotations

import csv
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaozarrs
import zarr
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader

from tjump.analysis.pipeline import analyze_recording
from tjump.analysis.recording import open_recording
from tjump.analysis.traces import extract_traces
from tjump.analysis.zarr_recording import ShardBlock, TileBlock, ZarrRecording
from tjump.cli import main
from tjump.errors import InputError
from tjump.sequencer import plan_run, run_plan
from tjump.storage import RunDirectory, reader
from tjump.storage.zarr_export import ZarrLayout, export_ome_zarr, open_image

from conftest import rig_yaml, series_protocol


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """72 x 60 px (not a whole number of tiles), 8 particles, 2 temperatures x 2 cycles."""
    folder = tmp_path_factory.mktemp("zarr-run")
    (folder / "rig.yaml").write_text(
        rig_yaml(width=72, height=60, particles=8, references=1, seed=3)
    )
    (folder / "p.yaml").write_text(
        series_protocol("[381.0, 384.9]", cycles=2, heat_s=12, cool_s=6, baseline_s=4)
    )
    result = run_plan(plan_run(folder / "p.yaml", folder / "rig.yaml"), folder / "run", seed=3)
    assert result.status == "complete"
    return folder / "run"


def run_cli(*args: str) -> int:
    """`tjump ARGS` in this process; its exit code."""
    saved = sys.argv
    sys.argv = ["tjump", *args]
    try:
        main()
    except SystemExit as e:
        return int(e.code or 0)
    finally:
        sys.argv = saved
    return 0


@pytest.fixture(scope="module")
def exported(run_dir: Path) -> Path:
    """The run exported through the command line, with the default layout."""
    assert run_cli("export", str(run_dir), "--ome-zarr") == 0
    return run_dir.with_name("run.ome.zarr")


def _table(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "frames.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_store_is_valid_ome_zarr_that_napari_reader_opens(run_dir: Path, exported: Path) -> None:
    yaozarrs.validate_zarr_store(str(exported))  # raises on any metadata error
    frames = RunDirectory(run_dir).read_frames()
    nodes = list(Reader(parse_url(str(exported)))())
    image = nodes[0]
    data = np.asarray(image.data[0])
    assert data.shape == frames.shape == (len(_table(run_dir)), 60, 72)
    np.testing.assert_array_equal(data, frames)
    axes = image.metadata["axes"]
    assert [(a["name"], a.get("unit")) for a in axes] == [
        ("t", "second"),
        ("y", "micrometer"),
        ("x", "micrometer"),
    ]
    scale = image.metadata["coordinateTransformations"][0][0]["scale"]
    assert scale == pytest.approx([0.1, 0.37, 0.37])


def test_tiles_are_long_in_time_small_in_space_and_compressed(exported: Path) -> None:
    array = zarr.open_array(exported / "0", mode="r")
    assert array.metadata.zarr_format == 3
    assert array.chunks == (1024, 8, 8)
    assert array.shards == (1024, 64, 72)  # whole frames, rounded up to whole tiles
    codecs = str(array.metadata.codecs)
    assert "lz4" in codecs and "shuffle" in codecs and "TransposeCodec(order=(1, 2, 0))" in codecs
    stored = sum(f.stat().st_size for f in (exported / "0").rglob("*") if f.is_file())
    assert stored < array.nbytes / 1.5


def test_per_frame_table_is_kept_beside_the_image(run_dir: Path, exported: Path) -> None:
    rows = _table(run_dir)
    table = zarr.open_group(exported / "frames", mode="r")
    assert list(table.attrs["columns"]) == list(rows[0])
    for name in ("time_s", "temperature_K", "drive_V"):
        np.testing.assert_allclose(table[name][:], [float(r[name]) for r in rows])
    for name in ("frame", "step", "cycle"):
        np.testing.assert_array_equal(table[name][:], [int(r[name]) for r in rows])
    kind = table["kind"]
    categories = kind.attrs["categories"]
    assert [categories[c] for c in kind[:]] == [r["kind"] for r in rows]
    manifest = open_recording(exported).extra["manifest"]
    assert manifest == RunDirectory(run_dir).manifest()  # the run's, step response included


def test_analysis_of_the_export_equals_the_run_directory(run_dir: Path, exported: Path) -> None:
    from_run = analyze_recording(run_dir)
    from_zarr = analyze_recording(exported)
    assert isinstance(from_zarr.recording, ZarrRecording)
    assert len(from_zarr.detections) == len(from_run.detections) >= 6
    np.testing.assert_allclose(from_zarr.traces.intensity, from_run.traces.intensity)
    np.testing.assert_array_equal(from_zarr.events.nucleation_s, from_run.events.nucleation_s)
    assert from_zarr.recording.kind == from_run.recording.kind
    assert from_zarr.recording.pixel_size_um == pytest.approx(0.37)


@pytest.mark.parametrize("time_last", [True, False])  # False: as exports before wrote them
def test_streamed_in_blocks_with_progress_and_other_layouts(
    run_dir: Path, tmp_path: Path, time_last: bool
) -> None:
    calls: list[tuple[int, int]] = []
    target = tmp_path / "small-tiles.zarr"
    layout = ZarrLayout(64, tile=8, cname="lz4", shuffle="bitshuffle", time_last=time_last)
    count = export_ome_zarr(
        RunDirectory(run_dir), target, layout, lambda d, t: calls.append((d, t))
    )
    assert calls == [(min(k * 64, count), count) for k in range(1, -(-count // 64) + 1)]
    frames = RunDirectory(run_dir).read_frames()
    np.testing.assert_array_equal(zarr.open_array(target / "0", mode="r")[:], frames)
    rec = open_recording(target)
    assert isinstance(rec, ZarrRecording)
    assert (rec.time_chunk, rec.tile) == (64, (8, 8))
    assert rec.sharded is not None and rec.sharded.time_last is time_last
    assert [start for start, _ in rec.blocks()] == list(range(0, count, 64))
    np.testing.assert_allclose(rec.mean_image(5, 30), frames[5:35].mean(axis=0))
    np.testing.assert_allclose(rec.mean_image(50, 30), frames[50:80].mean(axis=0))  # 2 shards
    # traces block by block (each next shard read ahead) equal those from the TIFFs
    tiff = open_recording(run_dir)
    baseline = tiff.mean_image(0, 20)
    x, y = np.array([10.2, 40.7, 66.0]), np.array([8.0, 30.4, 55.5])
    want = extract_traces(tiff.blocks(), tiff.frames, x, y, baseline, track=False)
    got = extract_traces(rec.blocks(), rec.frames, x, y, baseline, track=False)
    np.testing.assert_allclose(got.intensity, want.intensity)


def test_tile_block_reads_exactly_the_asked_pixels(exported: Path, run_dir: Path) -> None:
    frames = RunDirectory(run_dir).read_frames()
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 60, 300)
    cols = rng.integers(0, 72, 300)
    rows[:2], cols[:2] = (59, 0), (71, 0)  # corners, in the edge tiles
    block = TileBlock(open_image(exported / "0"), 100, 357, (8, 8))
    assert len(block) == 257
    np.testing.assert_array_equal(block[:, rows, cols], frames[100:357, rows, cols])
    np.testing.assert_array_equal(block[3:9], frames[103:109])


def test_shards_are_read_by_chunks_and_a_damaged_index_is_named(
    exported: Path, run_dir: Path, tmp_path: Path
) -> None:
    """The analysis reads the export's own shards directly (not through a Zarr library):
    exactly the asked pixels, 2-D patches too; a shard whose index fails its checksum is
    refused naming the file."""
    frames = RunDirectory(run_dir).read_frames()
    rec = open_recording(exported)
    assert isinstance(rec, ZarrRecording) and rec.sharded is not None
    [(start, block)] = list(rec.blocks())
    assert isinstance(block, ShardBlock) and (start, len(block)) == (0, len(frames))
    rows = np.array([[0, 1, 59], [7, 8, 30]])
    cols = np.array([[0, 71, 71], [8, 7, 40]])
    np.testing.assert_array_equal(block[:, rows, cols], frames[:, rows, cols])
    copy = tmp_path / "copy.zarr"
    shutil.copytree(exported, copy)
    shard = copy / "0" / "c" / "0" / "0" / "0"
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0xFF  # a bit flipped in the index
    shard.write_bytes(bytes(data))
    [(_, damaged)] = list(open_recording(copy).blocks())
    with pytest.raises(InputError, match="shard index is damaged"):
        damaged[:, rows, cols]


def test_export_refuses_to_overwrite_and_leaves_nothing_half_written(
    run_dir: Path, exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(p.name for p in (exported / "0" / "c").rglob("*"))
    assert run_cli("export", str(run_dir), "--ome-zarr", "-o", str(exported)) == 2
    assert "already exists" in capsys.readouterr().err
    assert sorted(p.name for p in (exported / "0" / "c").rglob("*")) == before
    assert run_cli("export", str(run_dir), "--ome-zarr", "--ome-tiff") == 2
    assert "choose one format" in capsys.readouterr().err
    # a run whose table does not match its frames is refused before anything is written
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("manifest.json", "frames"):
        (broken / name).symlink_to(run_dir / name)
    lines = (run_dir / "frames.csv").read_text().splitlines()
    (broken / "frames.csv").write_text("\n".join(lines[:-5]) + "\n")
    with pytest.raises(InputError, match=r"rows in frames\.csv"):
        export_ome_zarr(RunDirectory(broken), tmp_path / "out.zarr")
    assert not list(tmp_path.glob("out.zarr*"))


def test_analyze_names_what_is_missing_in_a_store(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "no-table.zarr"
    root = zarr.open_group(store, mode="w", zarr_format=3)
    root.attrs.update(dict(zarr.open_group(exported, mode="r").attrs))
    root.create_array("0", shape=(10, 8, 8), dtype="uint16")
    assert run_cli("analyze", str(store), "-o", str(tmp_path / "out")) == 2
    assert "no 'frames' table" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_frames_read_past_the_page_cache_are_the_frames(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export reads runs of pages with O_DIRECT in aligned pieces: every frame exactly,
    in pieces of many pages or of one, with gaps between the pages asked for, and through
    the page cache where the file system refuses O_DIRECT."""
    run = RunDirectory(run_dir)
    pages, frames = run.pages(), run.read_frames()
    for piece in (reader.PIECE, reader.ALIGN):  # a piece of one page when it is too small
        monkeypatch.setattr(reader, "PIECE", piece)
        out = np.zeros_like(frames)
        assert all(reader._read_direct(pages, out, out[0].nbytes))  # ext4 takes O_DIRECT
        np.testing.assert_array_equal(out, frames)
    out = np.zeros_like(frames[::3])
    run.read_into(pages[::3], out)
    np.testing.assert_array_equal(out, frames[::3])
    plain_open = os.open

    def refuse(path: Any, flags: int, *args: Any) -> int:
        if flags & getattr(os, "O_DIRECT", 0):
            raise OSError(22, "Invalid argument")
        return plain_open(path, flags, *args)

    monkeypatch.setattr(reader.os, "open", refuse)
    out = np.zeros_like(frames)
    assert not any(reader._read_direct(pages, out, out[0].nbytes))
    run.read_into(pages, out)
    np.testing.assert_array_equal(out, frames)
