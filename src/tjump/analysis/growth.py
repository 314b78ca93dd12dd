"""Growth time per particle from the fast camera's bursts.

Each burst is centred on the particle whose nucleation fired it. Its trace (the particle's
light in a 5 x 5 px box, less the frame's background) is fitted by a linear ramp between
two levels, integrated over each exposure: the particle goes from low to high spin over
`growth_s` starting at `start_s`, so frame k (exposure [s_k, s_k + e]) sees

    y_k = before + (after - before) * mean over the exposure of clip((t - start) / growth, 0, 1).

A ramp of one or two frames shows only in how the two or three frames it falls in are
partly dimmed, which one burst's shot noise can hide; so a particle's bursts are fitted
together: one growth time shared by all, each burst's own start and levels (a coarse,
then a fine grid; the levels by least squares at each point). With fewer than
`MIN_BURSTS` bursts the result is marked uncertain.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tjump.analysis.events import find_step
from tjump.storage.bursts import read_bursts

FloatArray = NDArray[np.float64]
GROWTH_CSV = "growth.csv"
BOX_RADIUS_PX = 2
BACKGROUND_RADIUS_PX = 5  # pixels beyond this far from the particle are background
WINDOW_FRAMES = 15  # frames either side of the step that are fitted
MAX_GROWTH_S = 0.02
MIN_DROP = 0.03  # relative; the high-spin state is ~15 % dimmer
# A growth of one or two frames leaves its mark on two or three frames only; one burst's
# noise can hide it, so a particle's growth is stated only from several bursts together.
MIN_BURSTS = 3


def particle_trace(frames: NDArray[np.uint16]) -> FloatArray:
    """The light of the particle nearest the centre of each frame: a box around the
    brightest spot of the mean image near the centre, less the median background."""
    mean = frames.mean(axis=0)
    h, w = mean.shape
    cy, cx = h // 2, w // 2
    r = BOX_RADIUS_PX + 2
    near = mean[max(cy - r, 0) : cy + r + 1, max(cx - r, 0) : cx + r + 1]
    py, px = np.unravel_index(int(np.argmax(near)), near.shape)
    py, px = py + max(cy - r, 0), px + max(cx - r, 0)
    yy, xx = np.mgrid[0:h, 0:w]
    box = (np.abs(yy - py) <= BOX_RADIUS_PX) & (np.abs(xx - px) <= BOX_RADIUS_PX)
    far = np.hypot(yy - py, xx - px) > BACKGROUND_RADIUS_PX
    stack = frames.astype(np.float64)
    background = np.median(stack[:, far], axis=1)
    return np.asarray(stack[:, box].sum(axis=1) - background * box.sum())


def _ramp_area(u: FloatArray, g: FloatArray) -> FloatArray:
    return np.asarray(np.where(u <= 0, 0.0, np.where(u < g, u * u / (2 * g), u - g / 2)))


def _sse(
    y: FloatArray, start: FloatArray, exposure_s: float, mid: FloatArray, g: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Residual sum of squares (mid, g) of ramps with middles `mid` and lengths `g`, the
    two levels by least squares at each point; and the relative drop there."""
    T0 = (mid[:, None] - g[None, :] / 2).ravel()[:, None]
    G = np.broadcast_to(g[None, :], (len(mid), len(g))).ravel()[:, None]
    s = start[None, :]
    r = (_ramp_area(s + exposure_s - T0, G) - _ramp_area(s - T0, G)) / exposure_s
    r_mean = r.mean(axis=1)
    y_mean = float(y.mean())
    dr, dy = r - r_mean[:, None], y - y_mean
    var = (dr * dr).sum(axis=1)
    cov = (dr * dy[None, :]).sum(axis=1)
    slope = np.where(var > 0, cov / np.where(var > 0, var, 1.0), 0.0)
    sse = float((dy * dy).sum()) - slope * cov
    before = y_mean - slope * r_mean
    drop = np.where(before > 0, -slope / np.where(before > 0, before, 1.0), np.nan)
    shape = (len(mid), len(g))
    return sse.reshape(shape), drop.reshape(shape)


@dataclass(frozen=True)
class _Trace:
    """The frames of one burst around its drop."""

    y: FloatArray
    start: FloatArray  # exposure starts
    exposure_s: float
    period_s: float
    centre_s: float  # middle of the frame seen changing


def _trace(trace: FloatArray, time_s: FloatArray, exposure_s: float) -> _Trace | str:
    """The part of `trace` around its drop, or why there is none."""
    level = float(np.median(trace[: max(len(trace) // 4, 3)]))
    if not level > 0:
        return "no particle at the centre of the burst"
    step = find_step(trace / level, 0, 2, True, MIN_DROP, 6.0)
    if step is None:
        return "no growth seen in the burst"
    lo, hi = max(step.frame - WINDOW_FRAMES, 0), min(step.frame + WINDOW_FRAMES, len(trace))
    period = float(np.median(np.diff(time_s)))
    centre = float(time_s[step.frame]) + exposure_s / 2
    return _Trace(trace[lo:hi] / level, time_s[lo:hi], exposure_s, period, centre)


def _joint_fit(traces: list[_Trace]) -> tuple[float, list[float], float]:
    """(growth, each burst's start, median drop): one growth time shared by every burst,
    each burst's ramp placed where it fits best."""
    period = traces[0].period_s
    offsets = np.arange(-3 * period, 3 * period, period / 20)
    g = np.geomspace(period / 20, MAX_GROWTH_S, 50)
    grids = [_sse(t.y, t.start, t.exposure_s, t.centre_s + offsets, g)[0] for t in traces]
    g0 = float(g[int(np.argmin(sum(grid.min(axis=0) for grid in grids)))])
    best_mid = [
        float(t.centre_s + offsets[int(np.argmin(grid[:, np.argmin(np.abs(g - g0))]))])
        for t, grid in zip(traces, grids, strict=True)
    ]
    fine_g = np.clip(g0 * np.geomspace(0.85, 1.15, 31), period / 40, MAX_GROWTH_S)
    fine_offsets = np.linspace(-period / 10, period / 10, 21)
    fine = [
        _sse(t.y, t.start, t.exposure_s, m + fine_offsets, fine_g)
        for t, m in zip(traces, best_mid, strict=True)
    ]
    j = int(np.argmin(sum(sse.min(axis=0) for sse, _ in fine)))
    starts, drops = [], []
    for (sse, drop), m in zip(fine, best_mid, strict=True):
        i = int(np.argmin(sse[:, j]))
        starts.append(m + float(fine_offsets[i]) - float(fine_g[j]) / 2)
        drops.append(float(drop[i, j]))
    return float(fine_g[j]), starts, float(np.median(drops))


@dataclass(frozen=True)
class ParticleGrowth:
    """One particle's growth time from all its bursts (NaN and a status if none fitted)."""

    particle: int
    bursts: int  # bursts fitted
    growth_s: float
    drop: float  # relative dimming, median over the bursts
    start_s: tuple[float, ...]  # DAQ time the growth began, per burst
    status: str


def fit_growth(
    bursts: list[tuple[FloatArray, FloatArray, float]], particle: int = -1
) -> ParticleGrowth:
    """The growth time shared by the bursts (trace, exposure start times, exposure) of one
    particle."""
    traces: list[_Trace] = []
    problems: list[str] = []
    for trace, time_s, exposure_s in bursts:
        t = _trace(trace, time_s, exposure_s)
        if isinstance(t, str):
            problems.append(t)
        else:
            traces.append(t)
    if not traces:
        reason = problems[0] if problems else "no bursts"
        return ParticleGrowth(particle, 0, float("nan"), float("nan"), (), reason)
    growth, starts, drop = _joint_fit(traces)
    if len(traces) < MIN_BURSTS:
        status = f"uncertain: {len(traces)} burst(s) with growth, {MIN_BURSTS} wanted"
    else:
        status = "ok" if not problems else f"ok ({len(problems)} burst(s) without growth)"
    return ParticleGrowth(particle, len(traces), growth, drop, tuple(starts), status)


def growth_from_run(run_dir: Path) -> list[ParticleGrowth]:
    """Each particle's growth time from the run's bursts (by the particle that fired them)."""
    by_particle: dict[int, list[tuple[FloatArray, FloatArray, float]]] = {}
    for record in read_bursts(run_dir):
        frames, time_s = record.read()
        by_particle.setdefault(record.particle, []).append(
            (particle_trace(frames), time_s, record.exposure_ms / 1e3)
        )
    return [fit_growth(b, particle) for particle, b in sorted(by_particle.items())]


def write_growth_table(fits: Iterable[ParticleGrowth], path: Path) -> None:
    """growth.csv: one row per particle with bursts (growth in ms)."""

    def fmt(value: float, digits: int) -> str:
        return f"{value:.{digits}f}" if math.isfinite(value) else ""

    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["particle_id", "bursts", "growth_ms", "drop", "status"])
        for fit in fits:
            out.writerow(
                [fit.particle, fit.bursts, fmt(fit.growth_s * 1e3, 3), fmt(fit.drop, 4), fit.status]
            )
