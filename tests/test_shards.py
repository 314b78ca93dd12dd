"""The export's shard files: written past the page cache (O_DIRECT) in aligned pieces, or
through it where the file system refuses that, byte for byte the same; read back pixel by
pixel and as frame sums, with chunks stored time-last (the default) or (t, y, x) as earlier
exports stored them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tjump.storage import shards
from tjump.storage.shards import ShardGeometry, ShardReader, blosc, sharded_geometry, write_shard

GEOMETRY = ShardGeometry(frames=96, height=37, width=45, tile_h=8, tile_w=8)


def _frames(count: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.normal(900, 30, (count, 37, 45)).clip(0, 65535).astype(np.uint16)


@pytest.fixture
def pool() -> ThreadPoolExecutor:
    with ThreadPoolExecutor(2) as p:
        yield p


def test_a_shard_written_past_the_cache_is_the_one_written_through_it(
    tmp_path: Path, pool: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    block = _frames(90)  # fewer than the shard's 96: padded
    codec = blosc("lz4", 5, "shuffle")
    monkeypatch.setattr(shards, "STAGE", 3 * shards.PAGE)  # many pieces and a ragged tail
    direct = tmp_path / "direct"
    size = write_shard(direct, block, GEOMETRY, codec, pool)
    monkeypatch.setattr(shards, "_set_direct", lambda fd, on: False)  # e.g. tmpfs
    plain = tmp_path / "plain"
    write_shard(plain, block, GEOMETRY, codec, pool)
    assert size == direct.stat().st_size > 3 * shards.PAGE
    assert direct.read_bytes() == plain.read_bytes()


@pytest.mark.parametrize("time_last", [True, False])
def test_shard_pixels_and_frame_sums_read_back_exactly(
    tmp_path: Path, pool: ThreadPoolExecutor, time_last: bool
) -> None:
    block = _frames(96)
    path = tmp_path / "shard"
    geometry = ShardGeometry(96, 37, 45, 8, 8, time_last=time_last)
    write_shard(path, block, geometry, blosc("zstd", 1, "shuffle"), pool)
    reader = ShardReader(path, geometry)
    try:
        rows = np.array([0, 36, 36, 8, 7, 20])  # edge tiles, a pixel twice, tile borders
        cols = np.array([0, 44, 44, 8, 7, 31])
        out = np.empty((len(rows), 50), dtype=np.float32)
        reader.read_pixels(rows, cols, out, pool)
        np.testing.assert_array_equal(out, block[:50, rows, cols].T)
        total = np.zeros((37, 45))
        reader.add_frames(10, 70, total, pool)
        np.testing.assert_array_equal(total, block[10:70].sum(axis=0, dtype=np.float64))
    finally:
        reader.close()


def test_time_last_chunks_hold_each_pixels_frames_in_a_row(
    tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    """What the transpose codec's metadata promises: chunk (0, 0) decompressed is the
    first tile's pixels, each with its 96 frames one after another."""
    block = _frames(96)
    path = tmp_path / "shard"
    write_shard(path, block, GEOMETRY, blosc("lz4", 5, "shuffle"), pool)
    reader = ShardReader(path, GEOMETRY)
    try:
        raw = path.read_bytes()[int(reader.offsets[0]) :][: int(reader.lengths[0])]
    finally:
        reader.close()
    chunk = np.frombuffer(blosc("lz4", 5, "shuffle").decode(raw), dtype="<u2")
    np.testing.assert_array_equal(chunk.reshape(8, 8, 96), block[:, :8, :8].transpose(1, 2, 0))


def test_the_layout_is_read_from_the_metadata() -> None:
    def metadata(inner: list[dict[str, object]]) -> dict[str, object]:
        return {
            "shape": [96, 37, 45],
            "data_type": "uint16",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [96, 40, 48]}},
            "codecs": [
                {
                    "name": "sharding_indexed",
                    "configuration": {
                        "chunk_shape": [96, 8, 8],
                        "codecs": inner,
                        "index_codecs": [{"name": "bytes"}, {"name": "crc32c"}],
                        "index_location": "end",
                    },
                }
            ],
        }

    plain = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "blosc"}]
    transpose = {"name": "transpose", "configuration": {"order": [1, 2, 0]}}
    assert sharded_geometry(metadata([transpose, *plain])) == GEOMETRY
    assert sharded_geometry(metadata(plain)) == ShardGeometry(96, 37, 45, 8, 8, time_last=False)
    other = {"name": "transpose", "configuration": {"order": [2, 1, 0]}}
    assert sharded_geometry(metadata([other, *plain])) is None  # read by a Zarr library
