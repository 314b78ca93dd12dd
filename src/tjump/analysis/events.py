"""Heating cycles, the common-mode reference, and nucleation events in per-particle traces.

Cycles: a heating segment is a run of frames recorded as `heat` (run directories), or, in
the generic format without a `kind` column, a run of frames whose setpoint is above the
lowest setpoint by more than 2 K. Segments at or above `ablation_K` (default 450 K) are
ablation: they split the recording into series (before / after ablation). The cooling
segment is what follows a heating segment up to the next one.

Events: within a cycle a particle's trace, divided by the common-mode reference and by its
own level just before the jump, is modelled as one level before the switch, one frame that
is partly dimmed, and a lower level after. The switch frame minimises the squared residuals
(cumulative sums: one pass per cycle); it is accepted when the drop is at least
`min_step` of the level and `min_t` noise standard deviations. The partly dimmed frame gives
the sub-frame time: an exposure [t_k, t_k + e] with a fraction f of the drop saw the switch at
t_k + e (1 - f); a frame fully dimmed or not at all puts it in the dead time between
exposures (its middle). Cycles without an accepted drop are censored at the hold length.
With `need_return` a drop counts only if the particle comes back on cooling (a rise of at
least half the drop): a spin-crossover particle always does, noise, flicker and a
neighbour's light do not. Particles marked `inert` never get events.

Common mode: the focal drift dims every particle together. Per frame, the median over all
particles of the trace divided by its level before the jump, using each particle in its
known state (LS as is, HS divided by 1 - its step) and skipping its switching frames,
is the common-mode reference; a particle that never switches (an inert reference) takes
part like any other. Its defocus proxy sqrt(1/c - 1) is proportional to the substrate's
temperature rise for a Lorentzian focus curve."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

PRE_FRAMES = 20  # frames before each jump that set the particle's level
HEAT, ABLATION = "heat", "ablation"  # the recorded `kind` of heating and ablation frames


@dataclass(frozen=True)
class StepRule:
    """When a change in a trace normalised to its level before the jump is an event, not
    noise: at least `min_step` of that level, and at least `min_t` noise standard
    deviations of the difference between the two levels. The offline and the live
    detectors both use it."""

    min_step: float = 0.05
    min_t: float = 6.0


EVENT_RULE = StepRule()


@dataclass(frozen=True)
class Cycle:
    """One heating segment and the cooling that follows it."""

    index: int  # order in the recording, from 0
    series: int  # 1 before any ablation, 2 after the first, ...
    cycle: int  # cycle number at this temperature within the series, from 1
    temperature_K: float
    first: int  # first heating frame (starts at the jump)
    cool_first: int  # first cooling frame (= end of heating)
    end: int  # end of the cooling segment (exclusive)
    pre_first: int  # first frame of the level before the jump
    jump_s: float
    hold_s: float


def _runs(mask: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """(start, end) of each run of True."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def find_cycles(
    time_s: FloatArray,
    temperature_K: FloatArray,
    kind: list[str] | None,
    frame_period_s: float,
    ablation_K: float = 450.0,
) -> tuple[list[Cycle], list[tuple[int, int]]]:
    """Heating cycles and ablation segments (start, end) of a recording."""
    if kind is not None and HEAT in kind:
        heat = np.array([k == HEAT for k in kind])
        ablation_mask = np.array([k == ABLATION for k in kind])
    else:
        low = float(np.min(temperature_K))
        hot = temperature_K > low + 2.0
        heat = hot & (temperature_K < ablation_K)
        ablation_mask = hot & (temperature_K >= ablation_K)
    ablations = _runs(ablation_mask)
    heat_runs = _runs(heat)
    # split runs where the setpoint changes inside (a new temperature without cooling) or
    # where time jumps (a heating cut short by a stop, then its redo in a resumed session)
    split: list[tuple[int, int]] = []
    for a, b in heat_runs:
        setpoint_changes = np.abs(np.diff(temperature_K[a:b])) > 0.05
        time_gaps = np.diff(time_s[a:b]) > 1.5 * frame_period_s
        changes = np.flatnonzero(setpoint_changes | time_gaps) + a + 1
        bounds = [a, *changes.tolist(), b]
        split += [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
    cycles: list[Cycle] = []
    counts: dict[tuple[int, float], int] = {}
    n = len(time_s)
    for i, (a, b) in enumerate(split):
        series = 1 + sum(1 for s, _ in ablations if s < a)
        t = round(float(np.median(temperature_K[a:b])), 2)
        counts[(series, t)] = counts.get((series, t), 0) + 1
        nxt = split[i + 1][0] if i + 1 < len(split) else n
        nxt = min([nxt, *[s for s, _ in ablations if s >= b]])
        prev_end = split[i - 1][1] if i > 0 else 0
        prev_end = max([prev_end, *[e for _, e in ablations if e <= a]])
        pre_first = max(a - PRE_FRAMES, prev_end + min((a - prev_end) // 2, PRE_FRAMES), 0)
        pre_first = min(pre_first, a - 1) if a > 0 else 0
        cycles.append(
            Cycle(
                index=i,
                series=series,
                cycle=counts[(series, t)],
                temperature_K=t,
                first=a,
                cool_first=b,
                end=nxt,
                pre_first=pre_first,
                jump_s=float(time_s[a]),
                hold_s=(b - a) * frame_period_s,
            )
        )
    return cycles, ablations


@dataclass(frozen=True)
class Step:
    """A level change found in one window of a trace."""

    frame: int  # the partly changed frame (absolute index)
    fraction: float  # fraction of the change seen in that frame (0..1)
    before: float
    after: float
    t_stat: float
    ramp_frames: int  # frames clearly between the levels (growth where resolved)
    local_change: float  # the change between the 5 frames either side (drift-free size)


def find_step(
    y: FloatArray, offset: int, first_candidate: int, down: bool, min_step: float, min_t: float
) -> Step | None:
    """The best single step in `y` whose changing frame is at or after `first_candidate`
    (index into y), or None when no step passes the thresholds. `offset`: absolute frame of
    y[0]. Frames before the candidate form one level, frames after it the other."""
    n = len(y)
    if n - first_candidate < 2 or first_candidate < 2:
        return None
    good = np.isfinite(y)
    if good.sum() < 4:
        return None
    yv = np.where(good, y, 0.0)
    c1 = np.concatenate([[0.0], np.cumsum(yv)])
    c2 = np.concatenate([[0.0], np.cumsum(yv * yv)])
    cn = np.concatenate([[0], np.cumsum(good)]).astype(np.float64)
    j = np.arange(first_candidate, n - 1)  # the changing frame; at least one frame after
    nb, na = cn[j], cn[n] - cn[j + 1]
    ok = (nb >= 2) & (na >= 1)
    if not ok.any():
        return None
    sb, sa = c1[j], c1[n] - c1[j + 1]
    qb, qa = c2[j], c2[n] - c2[j + 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        sse = (qb - sb * sb / nb) + (qa - sa * sa / na)
        mean_b, mean_a = sb / nb, sa / na
    drop = (mean_b - mean_a) if down else (mean_a - mean_b)
    sse = np.where(ok & (drop > 0), sse, np.inf)
    best = int(np.argmin(sse))
    if not np.isfinite(sse[best]):
        return None
    k = int(j[best])
    before, after = float(mean_b[best]), float(mean_a[best])
    diffs = np.diff(y[good])
    noise = 1.4826 * float(np.median(np.abs(diffs - np.median(diffs)))) / np.sqrt(2.0)
    noise = max(noise, 1e-9)
    change = before - after if down else after - before
    t_stat = change / (noise * np.sqrt(1.0 / nb[best] + 1.0 / na[best]))
    if change < min_step * abs(before) or t_stat < min_t:
        return None
    fraction = (before - y[k]) / (before - after) if np.isfinite(y[k]) else 0.5
    fraction = float(np.clip(fraction, 0.0, 1.0))
    # growth: frames clearly (4 noise sd) between the two levels around the change; a switch
    # within one exposure leaves at most one such frame
    margin = 4.0 * noise
    lo_level, hi_level = min(before, after) + margin, max(before, after) - margin
    window = y[max(k - 5, 0) : min(k + 6, n)]
    ramp = int(np.count_nonzero((window > lo_level) & (window < hi_level)))
    near_before = y[max(k - 5, 0) : k]
    near_after = y[k + 1 : k + 6]
    local = float(np.nanmean(near_before) - np.nanmean(near_after))
    return Step(offset + k, fraction, before, after, float(t_stat), ramp, local)


def switch_time(step: Step, time_s: FloatArray, exposure_s: float, period_s: float) -> float:
    """Sub-frame time of a switch: the exposure [t_k, t_k + e] saw `fraction` of it."""
    t_k = float(time_s[step.frame])
    dead = max(period_s - exposure_s, 0.0)
    if step.fraction >= 0.97 and dead > 0:  # before the exposure began: in the dead time
        return t_k - dead / 2
    if step.fraction <= 0.03 and dead > 0:  # after it ended
        return t_k + exposure_s + dead / 2
    return t_k + exposure_s * (1.0 - step.fraction)


@dataclass
class EventTable:
    """Per particle and cycle: the switch and the return (NaN where none)."""

    nucleation_s: FloatArray  # (particles, cycles)
    switch_frame: IntArray  # -1 where none
    step: FloatArray  # relative drop (fraction of the level before)
    level: FloatArray  # level before the jump (ADU)
    t_stat: FloatArray
    growth_s: FloatArray  # NaN unless the change spans more than one frame
    return_s: FloatArray  # time from the start of cooling to the return, NaN if not seen
    return_frame: IntArray


def detect_events(
    intensity: FloatArray,
    cycles: list[Cycle],
    time_s: FloatArray,
    exposure_s: float,
    period_s: float,
    common: FloatArray | None = None,
    min_step: float = EVENT_RULE.min_step,
    min_t: float = EVENT_RULE.min_t,
    need_return: bool = False,
    inert: NDArray[np.bool_] | None = None,
) -> EventTable:
    """Switches (drops) in each heating segment and returns (rises) in each cooling."""
    n = intensity.shape[1]
    m = len(cycles)
    shape = (n, m)
    table = EventTable(
        np.full(shape, np.nan),
        np.full(shape, -1, dtype=np.int64),
        np.full(shape, np.nan),
        np.full(shape, np.nan),
        np.full(shape, np.nan),
        np.full(shape, np.nan),
        np.full(shape, np.nan),
        np.full(shape, -1, dtype=np.int64),
    )
    corrected = intensity / common[:, None] if common is not None else intensity
    for c, cy in enumerate(cycles):
        lo = cy.pre_first
        segment = corrected[lo : cy.cool_first]
        for i in range(n):
            y = segment[:, i]
            level = float(np.nanmedian(y[: cy.first - lo])) if cy.first > lo else np.nan
            if not np.isfinite(level) or level <= 0:
                continue
            table.level[i, c] = level
            step = find_step(y / level, lo, cy.first - lo, True, min_step, min_t)
            if step is None or (inert is not None and inert[i]):
                continue
            # the return on cooling: a rise after the heating ends
            back = None
            r_lo = max(step.frame + 1, cy.cool_first - PRE_FRAMES)
            seen_cooling = cy.end - cy.cool_first >= 5 and cy.end - r_lo >= 4
            if seen_cooling:
                y_ret = corrected[r_lo : cy.end, i] / level
                first = max(cy.cool_first - r_lo, 2)
                back = find_step(y_ret, r_lo, first, False, min_step, min_t)
                if back is not None and -back.local_change < 0.5 * step.local_change:
                    back = None
            if need_return and seen_cooling and back is None:
                continue
            t = switch_time(step, time_s, exposure_s, period_s)
            table.nucleation_s[i, c] = max(t - cy.jump_s, 0.0)
            table.switch_frame[i, c] = step.frame
            table.step[i, c] = step.local_change / step.before
            table.t_stat[i, c] = step.t_stat
            if step.ramp_frames >= 2:
                table.growth_s[i, c] = step.ramp_frames * period_s
            if back is not None:
                t_back = switch_time(back, time_s, exposure_s, period_s)
                table.return_s[i, c] = t_back - float(time_s[cy.cool_first])
                table.return_frame[i, c] = back.frame
    return table


def common_mode(
    intensity: FloatArray, cycles: list[Cycle], events: EventTable, usable: NDArray[np.bool_]
) -> FloatArray:
    """Per frame, the dimming every particle shares (1 outside the cycles)."""
    n_frames = intensity.shape[0]
    common = np.ones(n_frames)
    for c, cy in enumerate(cycles):
        lo, hi = cy.pre_first, cy.end
        level = events.level[:, c]
        rel = intensity[lo:hi] / level[None, :]
        frames = np.arange(lo, hi)[:, None]
        switch = events.switch_frame[:, c][None, :]
        back = events.return_frame[:, c][None, :]
        switched = switch >= 0
        hs = switched & (frames > switch) & ((back < 0) | (frames < back))
        changing = switched & ((frames == switch) | (frames == back))
        scale = np.where(hs, 1.0 - np.nan_to_num(events.step[:, c])[None, :], 1.0)
        values = np.where(changing | ~usable[None, :], np.nan, rel / scale)
        low_spin = np.where(hs, np.nan, values)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med_all = np.nanmedian(values, axis=1)
            med_ls = np.nanmedian(low_spin, axis=1)
        enough = np.isfinite(low_spin).sum(axis=1) >= 3
        med = np.where(enough, med_ls, med_all)
        common[lo:hi] = np.where(np.isfinite(med), med, 1.0)
    return common
