"""The export's shard files: written past the page cache (O_DIRECT) in aligned pieces, or
through it where the file system refuses that, byte for byte the same; read back pixel by
pixel and as frame sums."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tjump.storage import shards
from tjump.storage.shards import ShardGeometry, ShardReader, blosc, write_shard

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


def test_shard_pixels_and_frame_sums_read_back_exactly(
    tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    block = _frames(96)
    path = tmp_path / "shard"
    write_shard(path, block, GEOMETRY, blosc("zstd", 1, "shuffle"), pool)
    reader = ShardReader(path, GEOMETRY)
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
