"""Per-particle intensity traces: aperture sums minus the local background.

`ApertureTraces` precomputes, for every particle, the flat pixel indices of a disc and of
a surrounding ring, so measuring a frame is one gather and two reductions: it reads only
the pixels the apertures need. `OnlineTraces` runs the same code live: it keeps the first
frames, finds the particles in their mean, and from then on measures each frame as it
comes (the kept frames too)."""

from __future__ import annotations

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

    def add(self, image: NDArray[Any]) -> FloatArray | None:
        """Take one frame. Returns the intensities of every frame that became measurable
        (rows: frames, columns: particles), or None while still collecting the baseline."""
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
