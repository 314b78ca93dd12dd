"""Per-particle intensity traces: aperture sums minus the local background.

`ApertureTraces` precomputes, for every particle, the flat pixel indices of a disc and of
a surrounding ring, so measuring a frame is one gather and two reductions: it reads only
the pixels the apertures need. `OnlineTraces` runs the same code live: it keeps the first
frames, finds the particles in their mean, and from then on measures each frame as it
comes (the kept frames too)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tjump.analysis.detection import Detections, detect_particles

FloatArray = NDArray[np.float64]


def _offsets(r_min: float, r_max: float) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    span = int(np.ceil(r_max))
    dy, dx = np.mgrid[-span : span + 1, -span : span + 1]
    r = np.hypot(dx, dy)
    keep = (r >= r_min) & (r <= r_max)
    return dy[keep], dx[keep]


class ApertureTraces:
    """Background-subtracted aperture photometry at fixed positions."""

    def __init__(
        self,
        x: FloatArray,
        y: FloatArray,
        shape: tuple[int, int],
        radius: float = 2.5,
        ring: tuple[float, float] = (4.0, 6.0),
    ) -> None:
        h, w = shape
        cx, cy = np.rint(x).astype(np.intp), np.rint(y).astype(np.intp)

        def flat(dy: NDArray[np.intp], dx: NDArray[np.intp]) -> NDArray[np.intp]:
            rows = np.clip(cy[:, None] + dy[None, :], 0, h - 1)
            cols = np.clip(cx[:, None] + dx[None, :], 0, w - 1)
            return np.asarray(rows * w + cols)

        disc_dy, disc_dx = _offsets(0.0, radius)
        ring_dy, ring_dx = _offsets(*ring)
        self._disc = flat(disc_dy, disc_dx)
        self._ring = flat(ring_dy, ring_dx)
        self._disc_size = len(disc_dy)
        self._ring_middle = len(ring_dy) // 2  # the ring's median: robust to a hot pixel
        self.count = len(x)

    def measure(self, image: NDArray[Any]) -> FloatArray:
        """Intensity of every particle in one frame (ADU above background)."""
        flat = image.reshape(-1)
        disc = flat[self._disc].sum(axis=1, dtype=np.float64)
        ring = np.partition(flat[self._ring], self._ring_middle, axis=1)[:, self._ring_middle]
        return np.asarray(disc - self._disc_size * ring.astype(np.float64))


class OnlineTraces:
    """Live traces: detect in the first `baseline_frames`, then measure every frame."""

    def __init__(self, baseline_frames: int = 20, threshold_sigma: float = 8.0) -> None:
        self.baseline_frames = baseline_frames
        self.threshold_sigma = threshold_sigma
        self._kept: list[NDArray[Any]] = []
        self.detections: Detections | None = None
        self.apertures: ApertureTraces | None = None

    @classmethod
    def of(cls, particles: Detections) -> OnlineTraces:
        """Traces of particles found before (a resumed run's): every frame is measured."""
        traces = cls(baseline_frames=0)
        traces.detections = particles
        return traces

    def add(self, image: NDArray[Any]) -> FloatArray | None:
        """Take one frame. Returns the intensities of every frame that became measurable
        (rows: frames, columns: particles), or None while still collecting the baseline."""
        if self.apertures is None and self.detections is not None:  # particles given
            self.apertures = ApertureTraces(self.detections.x, self.detections.y, image.shape)
        if self.apertures is not None:
            return self.apertures.measure(image)[None, :]
        self._kept.append(image.copy())
        if len(self._kept) < self.baseline_frames:
            return None
        baseline = np.mean(np.stack(self._kept), axis=0)
        self.detections = detect_particles(baseline, threshold_sigma=self.threshold_sigma)
        d = self.detections
        self.apertures = ApertureTraces(d.x, d.y, baseline.shape)
        rows = np.stack([self.apertures.measure(frame) for frame in self._kept])
        self._kept.clear()
        return rows


# -- offline: every frame of a recording, read patch by patch ------------------------------

PATCH_HALF = 6  # apertures reach 6 px from the particle's rounded position


class _Apertures:
    """The pixels each particle needs (disc and background ring around its rounded
    position) and their weights. Ring pixels that are bright in the baseline image (a
    neighbour's light, a hot pixel) are left out of the background, so the background is a
    plain mean of clean pixels. Reading a block is one fancy-indexed gather of exactly these
    pixels for every particle at once."""

    def __init__(self, radius: float, ring: tuple[float, float], shape: tuple[int, int]):
        span = np.arange(-PATCH_HALF, PATCH_HALF + 1)
        dy, dx = np.meshgrid(span, span, indexing="ij")
        r = np.hypot(dx, dy)
        need = (r <= radius) | ((r >= ring[0]) & (r <= ring[1]))
        self.dy, self.dx = dy[need], dx[need]
        rr = r[need]
        self.disc = rr <= radius
        self.ring = (rr >= ring[0]) & (rr <= ring[1])
        self.shape = shape

    def indices(
        self, cx: NDArray[np.intp], cy: NDArray[np.intp]
    ) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        h, w = self.shape
        rows = np.clip(cy[:, None] + self.dy[None, :], 0, h - 1)
        cols = np.clip(cx[:, None] + self.dx[None, :], 0, w - 1)
        return rows, cols

    def weights(
        self, cx: NDArray[np.intp], cy: NDArray[np.intp], baseline: FloatArray
    ) -> NDArray[np.float32]:
        """(particles, pixels, 2), for every particle at once: column 0 sums the disc minus
        its background, column 1 gives the background per pixel."""
        rows, cols = self.indices(cx, cy)
        values = baseline[rows, cols]
        ring_values = values[:, self.ring]
        middle = np.median(ring_values, axis=1)
        spread = 1.4826 * np.median(np.abs(ring_values - middle[:, None]), axis=1) + 1e-6
        near = np.abs(values - middle[:, None]) <= (4.0 * spread + 1e-9)[:, None]
        clean = self.ring[None, :] & near
        clean[clean.sum(axis=1) < 8] = self.ring  # too few clean pixels: the whole ring
        background = clean / clean.sum(axis=1, keepdims=True)
        disc_net = self.disc[None, :] - self.disc.sum() * background
        return np.stack([disc_net, background], axis=2).astype(np.float32)


@dataclass(frozen=True)
class TraceSet:
    """Intensities of every particle in every frame, and where the particles were."""

    intensity: FloatArray  # (frames, particles): aperture sum minus background (ADU)
    background: FloatArray  # (frames, particles): background per pixel (ADU)
    block_start: NDArray[np.int64]  # first frame of each block of the tracking
    x: FloatArray  # (blocks, particles): column of each particle during the block
    y: FloatArray  # (blocks, particles)


def _measure(
    block: Any, rows: NDArray[np.intp], cols: NDArray[np.intp], w: NDArray[np.float32], step: int
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """(particles, 2, frames): each particle's pixels times its weights, in one batched
    matrix product; and (particles, pixels): its pixels' mean over every `step`-th frame.
    A block with `by_pixel` (the OME-Zarr reader) gives (particles, pixels, frames) float32,
    each pixel's frames in a row; any other block is indexed as a (T, H, W) array."""
    if hasattr(block, "by_pixel"):
        pixels = np.asarray(block.by_pixel(rows, cols), dtype=np.float32)  # (n, p, t)
        out = np.matmul(w.transpose(0, 2, 1), pixels)
        return out, pixels[:, :, ::step].mean(axis=2)
    t, n = len(block), len(rows)
    frame_major = np.asarray(block[:, rows.ravel(), cols.ravel()], dtype=np.float32)
    frame_major = frame_major.reshape(t, n, -1)
    out = np.matmul(frame_major.transpose(1, 0, 2), w).transpose(0, 2, 1)  # batched BLAS
    return out, frame_major[::step].mean(axis=0)


def extract_traces(
    blocks: Iterable[tuple[int, NDArray[Any]]],
    frames: int,
    x: FloatArray,
    y: FloatArray,
    baseline: FloatArray,
    radius: float = 2.5,
    ring: tuple[float, float] = (4.0, 6.0),
    track: bool = True,
) -> TraceSet:
    """Aperture traces from (first frame, (T, H, W) array) blocks, reading only the pixels
    the apertures need. `baseline` is the mean image used for detection.

    Tracking: after each block the particles' centroids in the block's mean disc give the
    lateral drift; the median shift over all particles (a stage drift moves them together)
    moves every aperture for the next block."""
    n = len(x)
    shape = (int(baseline.shape[0]), int(baseline.shape[1]))
    apertures = _Apertures(radius, ring, shape)
    disc = apertures.disc
    intensity = np.full((frames, n), np.nan)
    background = np.full((frames, n), np.nan)
    starts: list[int] = []
    xs: list[FloatArray] = []
    ys: list[FloatArray] = []
    drift = np.zeros(2)
    for start, block in blocks:
        t = len(block)
        px, py = x + drift[0], y + drift[1]
        cx, cy = np.rint(px).astype(np.intp), np.rint(py).astype(np.intp)
        starts.append(start)
        xs.append(px)
        ys.append(py)
        rows, cols = apertures.indices(cx, cy)
        w = apertures.weights(cx, cy, baseline)
        out, mean = _measure(block, rows, cols, w, max(t // 50, 1))
        intensity[start : start + t] = out[:, 0].T
        background[start : start + t] = out[:, 1].T
        if track:
            signal = np.clip(mean - out[:, 1].mean(axis=1)[:, None], 0, None) * disc
            total = signal.sum(axis=1)
            ok = total > 0
            if ok.any():
                sx = (signal @ apertures.dx)[ok] / total[ok] + (cx - px)[ok]
                sy = (signal @ apertures.dy)[ok] / total[ok] + (cy - py)[ok]
                drift = drift + np.array([np.median(sx), np.median(sy)])
    return TraceSet(
        intensity,
        background,
        np.asarray(starts, dtype=np.int64),
        np.asarray(xs).reshape(-1, n),
        np.asarray(ys).reshape(-1, n),
    )
