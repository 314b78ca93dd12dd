"""Adaptive cools: when a cool ends, when the live detector sees a particle back in low
spin, and why a heat may start before the film is fully cold (the analysis superposes the
film's step response over the setpoints, so a warm start does not bias the kinetics)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from tjump.analysis.adaptive import CoolEnd, cool_end
from tjump.analysis.kinetics import R_KJ, film_states, fit_arrhenius
from tjump.analysis.live import LiveDetector

RESPONSE = ((0.776, 0.17), (0.224, 8.6))  # the simulated film's step response
AMBIENT_K = 293.0


def test_cool_ends_once_the_film_and_every_particle_are_back() -> None:
    # a 90 K jump, 5 %: the film must be within 4.5 K of the cool's temperature
    args = (0.05, 5.0, 50.0)  # film_within, min_cool_s, max_cool_s
    assert cool_end(12.0, 10, 10, 4.4, 90.0, *args) is CoolEnd.SETTLED
    assert cool_end(12.0, 10, 10, 4.6, 90.0, *args) is None  # film still warm
    assert cool_end(12.0, 9, 10, 1.0, 90.0, *args) is None  # a particle still high spin
    assert cool_end(4.0, 10, 10, 1.0, 90.0, *args) is None  # before the shortest cool
    assert cool_end(12.0, 10, 10, float("nan"), 90.0, *args) is None  # film unknown
    assert cool_end(50.0, 0, 10, 30.0, 90.0, *args) is CoolEnd.LONGEST
    assert cool_end(6.0, 0, 0, 4.0, 90.0, *args) is CoolEnd.SETTLED  # nothing tracked yet


def detector_after_a_heat(back_after: int) -> LiveDetector:
    """Two particles and two references (intensity 1): a 30-frame level, a 30-frame heat
    in which particle 0 dims by 15 %, then a cool in which it is back after `back_after`
    frames."""
    rng = np.random.default_rng(3)
    detector = LiveDetector(np.ones(4))
    frame = 0
    for kind, count in (("level", 30), ("heat", 30), ("cool", 12)):
        for k in range(count):
            row = 1.0 + 0.005 * rng.standard_normal(4)
            if (kind == "heat" and k >= 10) or (kind == "cool" and k < back_after):
                row[0] *= 0.85
            detector.add(frame, 0.1 * frame, 1 if kind == "heat" else 0, kind == "heat", row)
            frame += 1
    return detector


def test_live_detector_sees_a_particle_back_in_low_spin() -> None:
    back = detector_after_a_heat(back_after=3)
    assert [e.particle for e in back.events] == [0]
    assert back.back_at_level().tolist() == [True, True, True, True]
    late = detector_after_a_heat(back_after=10)  # 2 of its last 5 frames are back
    assert late.back_at_level().tolist() == [False, True, True, True]
    assert not detector_after_a_heat(3).back_at_level(frames=20).any()  # 12 frames only


def warm_started_series(cool_s: float, seed: int) -> dict[str, float]:
    """Waiting times of one particle (Ea 200 kJ/mol, Gamma shape 8, 10 s at 377.7 K) over
    40 cycles at each of three temperatures, 60 s heats and `cool_s` cools, on the film's
    exact temperature (a fine grid under the step response, from each setpoint in turn);
    Ea fitted with the film's state at each jump from the setpoints (as the analysis
    does), and as if every jump started cold."""
    rng = np.random.default_rng(seed)
    ea, period, sub, hold = 200.0, 0.1, 10, 60.0
    temperatures = np.repeat([370.8, 377.7, 384.9], 40)
    rng.shuffle(temperatures)
    per_cycle = int(hold / period) + int(cool_s / period)
    setpoint = np.full(len(temperatures) * per_cycle, AMBIENT_K)
    jumps = np.arange(len(temperatures)) * per_cycle
    for jump, t in zip(jumps, temperatures, strict=True):
        setpoint[jump : jump + int(hold / period)] = t
    fine = np.repeat(setpoint - AMBIENT_K, sub)
    film = np.full(len(fine), AMBIENT_K)
    for weight, tau in RESPONSE:  # exact for a setpoint constant over each fine tick
        a = np.exp(-period / sub / tau)
        film += signal.lfilter([0.0, (1 - a) * weight], [1.0, -a], fine)
    ln_a = np.log(0.1) + ea / (R_KJ * 377.7)
    rate = np.exp(ln_a - ea / (R_KJ * film)) * period / sub
    waits = np.full(len(jumps), np.nan)
    for j, jump in enumerate(jumps):
        clock = np.cumsum(rate[jump * sub : (jump + int(hold / period)) * sub])
        crossed = np.searchsorted(clock, rng.gamma(8.0, 1 / 8.0))
        if crossed < len(clock):
            waits[j] = (crossed + 0.5) * period / sub
    holds = np.full(len(jumps), hold)
    time_s = np.arange(len(setpoint)) * period
    start = film_states(time_s, setpoint, RESPONSE, AMBIENT_K)[jumps]
    fitted = fit_arrhenius(temperatures, waits, holds, None, RESPONSE, start, AMBIENT_K)
    cold = fit_arrhenius(temperatures, waits, holds, None, RESPONSE, None, AMBIENT_K)
    return {"warm": fitted.ea_kj_mol, "cold": cold.ea_kj_mol, "rise": float(start[:, 1].max())}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_heat_started_on_a_warm_film_leaves_ea_unbiased(seed: int) -> None:
    """8 s cools leave the film's slow part 8 K above ambient at the next jump. With the
    film's state superposed over the setpoints, the fit finds the Ea that the same
    thresholds give after 50 s cools (the film cold) to 2 %; taken as a cold start it
    would be 25 % too high or more (the particles switch early)."""
    short, cold = warm_started_series(8.0, seed), warm_started_series(50.0, seed)
    assert short["rise"] > 7.0 and cold["rise"] < 0.1
    assert short["warm"] == pytest.approx(cold["warm"], rel=0.02)
    assert short["warm"] == pytest.approx(200.0, rel=0.12)
    assert short["cold"] > 1.25 * short["warm"]
