"""The analysis's parts on synthetic data with known answers: the censored Arrhenius fit,
the JMAK and first-order fits, the memory-mapped TIFF reader, drift tracking, and events."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from tjump.analysis import detect_particles
from tjump.analysis.detection import CROWDED
from tjump.analysis.events import Step, find_cycles, find_step, switch_time
from tjump.analysis.kinetics import (
    R_KJ,
    film_states,
    first_order_rate,
    fit_arrhenius,
    fit_avrami,
    survival_curve,
)
from tjump.analysis.recording import open_tiff
from tjump.analysis.traces import extract_traces


def waiting_times(
    ea: float, ln_a: float, temps: list[float], cycles: int, shape: float, hold: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.repeat(temps, cycles)
    mean = np.exp(-(ln_a - ea / (R_KJ * t)))
    w = rng.gamma(shape, mean / shape)
    return t, np.where(w <= hold, w, np.nan), np.full(len(t), hold)


def test_censored_arrhenius_recovers_ea_within_its_standard_error() -> None:
    """Many synthetic particles: the estimates scatter about the truth as their standard
    errors say (z within 3 for all, |mean z| small), including heavily censored ones."""
    z = []
    for seed in range(30):
        temps = [370.8, 374.3, 377.7, 381.0, 384.9]
        ea = 200.0
        ln_a = np.log(1 / 20.0) + ea / (R_KJ * 370.8)  # mean 20 s at 370.8 K, hold 50 s
        t, w, hold = waiting_times(ea, ln_a, temps, 20, 8.0, 50.0, seed)
        fit = fit_arrhenius(t, w, hold)
        assert fit.status == "ok"
        assert fit.n_events + fit.n_censored == 100
        z.append((fit.ea_kj_mol - ea) / fit.ea_stderr_kj_mol)
        assert 4 < fit.shape < 16
    z_arr = np.asarray(z)
    assert np.all(np.abs(z_arr) < 3.5)
    assert abs(z_arr.mean()) < 0.6
    assert 0.6 < z_arr.std() < 1.5


def test_ignoring_censoring_would_bias_ea_and_the_fit_does_not() -> None:
    """At the coldest temperature most cycles end without a switch: dropping them (the naive
    mean of the seen times) underestimates the waiting time there and so Ea; the censored fit
    stays within 10 %."""
    temps = [370.8, 374.3, 377.7, 381.0, 384.9]
    ea = 250.0
    ln_a = np.log(1 / 80.0) + ea / (R_KJ * 370.8)  # mean 80 s at the coldest, hold 50 s
    t, w, hold = waiting_times(ea, ln_a, temps, 40, 8.0, 50.0, seed=3)
    assert np.isnan(w[t == 370.8]).mean() > 0.7
    fit = fit_arrhenius(t, w, hold)
    assert abs(fit.ea_kj_mol - ea) / ea < 0.1
    seen = np.isfinite(w)
    means = [np.mean(w[seen & (t == temp)]) for temp in temps]
    naive = -np.polyfit(1 / np.array(temps), np.log(1 / np.array(means)), 1)[0] * R_KJ
    assert naive < 0.85 * ea


def lagged_waiting_times(ea: float, temps: list[float], cycles: int, seed: int) -> np.ndarray:
    """Waiting times when the film lags the setpoint (the simulated heater's response):
    the clock integral of k(T(s)) passes a Gamma(8, mean 1) threshold."""
    rng = np.random.default_rng(seed)
    ln_a = np.log(1 / 10.0) + ea / (R_KJ * 377.7)
    s = np.arange(0.0, 50.0, 0.001)
    out = []
    for temp in temps:
        film = temp - (temp - 293.0) * (0.776 * np.exp(-s / 0.17) + 0.224 * np.exp(-s / 8.6))
        clock = np.cumsum(np.exp(ln_a - ea / (R_KJ * film))) * 0.001
        k = np.searchsorted(clock, rng.gamma(8.0, 1 / 8.0, cycles))
        out.append(np.where(k < len(s), s[np.minimum(k, len(s) - 1)], np.nan))
    return np.concatenate(out)


def test_the_heater_lag_biases_a_setpoint_fit_and_the_lagged_model_removes_it() -> None:
    temps = [370.8, 374.3, 377.7, 381.0, 384.9]
    t = np.repeat(temps, 30)
    hold = np.full(len(t), 50.0)
    w = lagged_waiting_times(200.0, temps, 30, seed=2)
    plain = fit_arrhenius(t, w, hold)
    lagged = fit_arrhenius(t, w, hold, response=((0.776, 0.17), (0.224, 8.6)))
    assert plain.ea_kj_mol < 0.7 * 200.0
    assert abs(lagged.ea_kj_mol - 200.0) < 3 * lagged.ea_stderr_kj_mol
    assert abs(lagged.ea_kj_mol - 200.0) / 200.0 < 0.15
    assert 5 < lagged.shape < 13


def test_film_states_follow_the_step_response() -> None:
    time_s = np.arange(0, 30, 0.1)
    setpoint = np.where(time_s >= 10, 380.0, 293.0)
    states = film_states(time_s, setpoint, ((0.776, 0.17), (0.224, 8.6)), 293.0)
    rise = states.sum(axis=1)
    jump = 100
    assert np.all(rise[: jump + 1] == 0)
    # at 1 s and 10 s after the jump: 80 % and 93 % of the step, as the heater does
    assert rise[jump + 10] / 87 == pytest.approx(
        1 - 0.776 * np.exp(-1 / 0.17) - 0.224 * np.exp(-1 / 8.6)
    )
    assert rise[jump + 100] / 87 == pytest.approx(0.93, abs=0.01)


def test_no_ea_without_transitions_at_two_temperatures() -> None:
    t = np.repeat([370.0, 380.0], 5)
    w = np.full(10, np.nan)
    assert fit_arrhenius(t, w, np.full(10, 50.0)).status == "no transitions"
    w[:5] = 10.0
    assert "two temperatures" in fit_arrhenius(t, w, np.full(10, 50.0)).status


def test_avrami_and_first_order_recover_their_constants() -> None:
    grid = np.linspace(0, 60, 601)
    truth = 1 - np.exp(-0.002 * np.clip(grid - 3.0, 0, None) ** 2.5)
    fit = fit_avrami(grid, truth + np.random.default_rng(0).normal(0, 0.005, len(grid)))
    assert fit is not None
    assert fit.n == pytest.approx(2.5, rel=0.05)
    assert fit.t0_s == pytest.approx(3.0, abs=0.5)
    waits = np.random.default_rng(1).exponential(1 / 0.08, 5000)
    remaining = survival_curve(np.where(waits < 60, waits, np.nan), 60, grid)
    assert first_order_rate(grid, remaining) == pytest.approx(0.08, rel=0.05)


def test_step_timing_is_sub_frame() -> None:
    """A drop of 15 % whose exposure saw 30 % of it: the switch is 70 % of the exposure in."""
    rng = np.random.default_rng(4)
    y = np.concatenate([np.ones(40), [1 - 0.15 * 0.3], np.full(30, 0.85)])
    y = y + rng.normal(0, 0.003, len(y))
    step = find_step(y, 100, 20, True, 0.05, 6.0)
    assert isinstance(step, Step)
    assert step.frame == 140
    assert step.fraction == pytest.approx(0.3, abs=0.05)
    time_s = np.arange(300) * 0.1
    t = switch_time(step, time_s, exposure_s=0.05, period_s=0.1)
    assert t == pytest.approx(14.0 + 0.05 * 0.7, abs=0.003)
    assert find_step(np.ones(70) + rng.normal(0, 0.003, 70), 0, 20, True, 0.05, 6.0) is None
    assert step.ramp_frames <= 1  # a switch within one exposure: growth not resolved
    # a growth spread over 6 frames (a fast camera, or a slow particle) is resolved
    ramp = np.concatenate([np.ones(40), 1 - 0.15 * np.arange(1, 7) / 7, np.full(30, 0.85)])
    slow = find_step(ramp + rng.normal(0, 0.003, len(ramp)), 0, 20, True, 0.05, 6.0)
    assert slow is not None
    assert 5 <= slow.ramp_frames <= 7


def write_pages(path: Path, frames: np.ndarray, **kwargs: object) -> None:
    with tifffile.TiffWriter(path) as tif:
        for frame in frames:
            tif.write(frame, contiguous=False, metadata=None, **kwargs)


def test_memory_mapped_view_equals_tifffile(tmp_path: Path) -> None:
    frames = np.random.default_rng(0).integers(0, 16383, (7, 20, 30), dtype=np.uint16)
    write_pages(tmp_path / "pages.tif", frames)
    tifffile.imwrite(tmp_path / "one.tif", frames)
    tifffile.imwrite(tmp_path / "big.tif", frames.byteswap().view(frames.dtype.newbyteorder()))
    write_pages(tmp_path / "zip.tif", frames, compression="zlib")
    for name, mapped in [("pages", True), ("one", True), ("big", True), ("zip", False)]:
        f = open_tiff(tmp_path / f"{name}.tif")
        assert (f.first_offset is not None) == mapped, name
        np.testing.assert_array_equal(f.view(), frames)


def gaussian_frames(
    n: int, positions: np.ndarray, drift: tuple[float, float], amplitude: float, seed: int
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :80]
    out = np.empty((n, 64, 80), np.uint16)
    for k in range(n):
        image = np.full((64, 80), 100.0)
        for x, y in positions:
            cx, cy = x + drift[0] * k / n, y + drift[1] * k / n
            image += amplitude * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 0.76**2))
        out[k] = rng.poisson(image)
    return out


def test_traces_follow_lateral_drift() -> None:
    """Spots drifting 3 px over the stack keep their intensity; the track follows them."""
    positions = np.array([[20.3, 15.7], [50.6, 30.2], [33.1, 45.5], [60.2, 50.8]])
    frames = gaussian_frames(400, positions, (3.0, -2.0), 3000.0, seed=2)
    found = detect_particles(frames[:20].mean(axis=0))
    assert len(found) == 4
    blocks = ((i, frames[i : i + 50]) for i in range(0, 400, 50))
    traces = extract_traces(blocks, 400, found.x, found.y, frames[:20].mean(axis=0))
    level = np.median(traces.intensity[:50], axis=0)
    assert np.all(np.abs(np.median(traces.intensity[-50:], axis=0) / level - 1) < 0.02)
    fixed = extract_traces(
        ((i, frames[i : i + 50]) for i in range(0, 400, 50)),
        400,
        found.x,
        found.y,
        frames[:20].mean(axis=0),
        track=False,
    )
    assert np.all(np.median(fixed.intensity[-50:], axis=0) / level < 0.85)  # lost without it
    assert traces.x[-1] - traces.x[0] == pytest.approx(np.full(4, 3.0 * 350 / 400), abs=0.3)


def test_neighbours_are_flagged_not_merged() -> None:
    frames = gaussian_frames(10, np.array([[30.0, 30.0], [34.0, 30.5], [60, 20]]), (0, 0), 3000, 1)
    found = detect_particles(frames.mean(axis=0))
    assert len(found) == 3
    crowded = (found.flags & CROWDED) > 0
    assert crowded.sum() == 2
    assert not found.usable[crowded].any()


def test_a_heating_cut_short_and_redone_after_a_resume_is_two_cycles() -> None:
    """A stop 12 s into a 30 s heat, then a resumed session that redoes it: the frames of
    both sessions at the same setpoint are two heatings, not one of 42 s."""
    period = 0.1
    cut = np.r_[np.full(50, 293.0), np.full(120, 377.7)]  # stopped mid-heat
    redo = np.r_[np.full(300, 377.7), np.full(200, 293.0)]
    setpoint = np.r_[cut, redo]
    time_s = np.r_[np.arange(len(cut)) * period, 20.0 + np.arange(len(redo)) * period]
    cycles, _ = find_cycles(time_s, setpoint, None, period)
    assert [(c.first, c.cool_first) for c in cycles] == [(50, 170), (170, 470)]
    assert [c.cycle for c in cycles] == [1, 2]
