"""Bringing up a rig's heater: its film's resistance against temperature and its step
response, measured with the camera running.

The procedure steps the drive through a few levels (each held, then back to ambient) as an
ordinary recorded run, then reads it:

- **R(T)**: from every DAQ sample R = V / I. At the end of each hold the film is at its
  steady temperature; R against the electrical power P = V I is a straight line whose
  intercept is R0, the resistance at ambient (no self-heating), and R against the
  setpoints (the heater calibration's steady temperatures) gives alpha.
- **The step response from V/I**: the film temperature of every DAQ sample, from R and the
  fitted R0 and alpha, fitted with two exponentials (200 samples/s resolve the fast one).
- **The step response from the image**: the common-mode focal drift of the particles
  (`tjump.analysis.thermometry`), as a cross-check of what the particles feel.

The result is written as the rig's heater model file (`tjump.rig.heater_model`).
"""

from __future__ import annotations

import csv
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tjump.analysis.events import find_cycles
from tjump.analysis.pipeline import analyze_recording
from tjump.analysis.thermometry import (
    InferredResponse,
    agreement,
    exposure_rise,
    infer_from_film,
    infer_from_image,
)
from tjump.errors import InputError
from tjump.rig import load_calibration, load_rig
from tjump.rig.heater_model import FilmResistance, HeaterModel, ThermalComponent
from tjump.sequencer.launch import run_plan
from tjump.sequencer.plan import plan_run
from tjump.sequencer.states import FinishReason
from tjump.storage.layout import DAQ_CSV, FRAMES_CSV

FloatArray = NDArray[np.float64]
STEADY_SHARE = 0.2  # the last fifth of each hold counts as steady state
TOP_K = 400.0  # default hottest level: well below ablation, above the transition


@dataclass(frozen=True)
class HeaterCalibrationResult:
    """What one calibration run measured."""

    model: HeaterModel
    film: InferredResponse | None  # step response from V/I
    image: InferredResponse | None  # step response from the focal drift
    r0_stderr_ohm: float
    alpha_stderr_per_K: float
    run: Path

    def summary(self) -> str:
        f = self.model.film_resistance
        lines = [
            f"film: R0 {f.r0_ohm:.4f} +- {self.r0_stderr_ohm:.4f} ohm at {f.t0_K:g} K, "
            f"alpha {f.alpha_per_K:.5f} +- {self.alpha_stderr_per_K:.5f} /K",
        ]
        for name, r in (("V/I", self.film), ("image", self.image)):
            if r is None:
                lines.append(f"step response from {name}: not measurable in this run")
                continue
            parts = ", ".join(f"{w:.3f} x {tau:.3g} s" for w, tau in r.response)
            at = r.fraction_at(np.array([0.1, 1.0, 10.0]))
            lines.append(
                f"step response from {name}: {parts} "
                f"({at[0]:.0%} at 0.1 s, {at[1]:.0%} at 1 s, {at[2]:.0%} at 10 s)"
            )
        if "image_vs_film_max_difference" in self.model.notes:
            lines.append(
                "largest difference between the two: "
                f"{self.model.notes['image_vs_film_max_difference']:.1%} of a step"
            )
        return "\n".join(lines)


def calibration_protocol(levels_K: list[float], hold_s: float, cool_s: float) -> str:
    """The run: a baseline, then each level held once and cooled."""
    temps = ", ".join(f"{t:.1f}" for t in levels_K)
    return f"""name: heater-calibration
frame_rate_hz: 10
steps:
  - kind: baseline
    duration_s: 6
  - kind: series
    temperatures_K: [{temps}]
    cycles: 1
    heat_s: {hold_s:g}
    cool_s: {cool_s:g}
"""


def choose_levels(rig_path: Path, levels: int, top_K: float, hold_s: float) -> list[float]:
    """`levels` setpoints from a third of the way up to `top_K`, inside the rig's limits."""
    rig = load_rig(rig_path)
    calibration = load_calibration(rig.calibration)
    top = min(top_K, rig.limits.max_temperature_K, calibration.range_K[1])
    above = rig.limits.max_time_above
    if hold_s > above.seconds:
        top = min(top, above.temperature_K - 1.0)
    low = rig.ambient_K + (top - rig.ambient_K) / 3
    if levels < 2 or top <= rig.ambient_K + 5:
        raise InputError(
            f"calibration needs at least two levels above ambient up to {top:g} K "
            f"(rig {rig_path}: ambient {rig.ambient_K:g} K)"
        )
    return [float(t) for t in np.linspace(low, top, levels)]


def _read_columns(path: Path, names: tuple[str, ...]) -> dict[str, FloatArray]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    try:
        return {n: np.array([float(r[n]) for r in rows]) for n in names}
    except (KeyError, ValueError) as e:
        raise InputError(f"{path} lacks a numeric column {e}") from e


def measure_heater(
    rig_path: Path,
    levels: int = 4,
    hold_s: float = 60.0,
    cool_s: float = 60.0,
    top_K: float = TOP_K,
    run_dir: Path | None = None,
    seed: int | None = None,
) -> HeaterCalibrationResult:
    """Run the calibration on the rig (camera running) and measure the film."""
    rig = load_rig(rig_path)
    levels_K = choose_levels(rig_path, levels, top_K, hold_s)
    folder = run_dir or Path(tempfile.mkdtemp(prefix="tjump-calibrate-"))
    folder.mkdir(parents=True, exist_ok=True)
    protocol = folder.parent / f"{folder.name}-protocol.yaml"
    protocol.write_text(calibration_protocol(levels_K, hold_s, cool_s), encoding="utf-8")
    run = folder / "run"
    result = run_plan(plan_run(protocol, rig_path), run, seed=seed)
    if result.status is not FinishReason.COMPLETE:
        raise InputError(f"the calibration run did not complete ({result.status}): see {run}")
    return analyse_calibration_run(run, rig.ambient_K)


def analyse_calibration_run(run: Path, ambient_K: float) -> HeaterCalibrationResult:
    """R0, alpha and the step responses from a calibration run's directory."""
    daq = _read_columns(run / DAQ_CSV, ("time_s", "drive_V", "current_A"))
    frames = _read_columns(run / FRAMES_CSV, ("time_s", "temperature_K"))
    t, v, i = daq["time_s"], daq["drive_V"], daq["current_A"]
    # the setpoint of every DAQ sample: that of the frame it falls in
    k = np.clip(np.searchsorted(frames["time_s"], t, side="right") - 1, 0, None)
    setpoint = frames["temperature_K"][k]
    setpoint = np.where(t < frames["time_s"][0], ambient_K, setpoint)
    period = float(np.median(np.diff(t)))
    cycles, _ = find_cycles(t, setpoint, None, period)
    if len(cycles) < 2:
        raise InputError(f"{run}: fewer than two heated levels in the calibration run")
    driven = (v > 0.01) & (i > 1e-5)
    steady = np.zeros(len(t), dtype=bool)
    for c in cycles:
        n = c.cool_first - c.first
        steady[c.cool_first - max(int(n * STEADY_SHARE), 2) : c.cool_first] = True
    steady &= driven
    r = np.where(driven, v / np.where(driven, i, 1.0), np.nan)
    # R = R0 + (R0 alpha R_th) P: the intercept is the resistance without self-heating
    power = v * i
    coef, cov = np.polyfit(power[steady], r[steady], 1, cov=True)
    r0, r0_err = float(coef[1]), float(np.sqrt(cov[1, 1]))
    heating = np.zeros(len(t), dtype=bool)
    for c in cycles:
        heating[c.first : c.cool_first] = True
    # R / R0 - 1 = alpha (T - T0): first with T the setpoints at the end of each hold, then
    # with the film temperature the measured step response gives there (the slow part of
    # a step may not be over by the end of a hold)
    y = r[steady] / r0 - 1.0
    rise = setpoint[steady] - ambient_K
    film: InferredResponse | None = None
    for _ in range(2):
        alpha = float((rise @ y) / (rise @ rise))
        resid = y - alpha * rise
        alpha_err = float(np.sqrt(resid @ resid / max(len(y) - 1, 1) / (rise @ rise)))
        alpha_err = float(np.hypot(alpha_err, alpha * r0_err / r0))
        film_resistance = FilmResistance(r0_ohm=r0, alpha_per_K=alpha, t0_K=ambient_K)
        film_K = film_resistance.temperature_K(v, i)
        film = infer_from_film(film_K, heating & driven, cycles, t, setpoint, ambient_K, 1e-6)
        if film is None:
            break
        rise = exposure_rise(t, setpoint, film.response, ambient_K, 1e-6)[steady]
    analysis = analyze_recording(run, thermometer="setpoints", temperature_errors=False)
    rec = analysis.recording
    image = infer_from_image(
        analysis.common, analysis.cycles, rec.time_s, rec.temperature_K, ambient_K, rec.exposure_s
    )
    best = film or image
    if best is None:
        raise InputError(f"{run}: neither V/I nor the image gave a step response")
    hold = max(c.hold_s for c in cycles)
    notes = {"r0_stderr_ohm": r0_err, "alpha_stderr_per_K": alpha_err}
    for name, inferred in (("film", film), ("image", image)):
        if inferred is not None:
            at10 = float(inferred.fraction_error_at(np.array([10.0]))[0])
            notes[f"{name}_fraction_at_10_s_stderr"] = at10
    if film is not None and image is not None:
        notes["image_vs_film_max_difference"] = agreement(film.response, image.response, hold)
    model = HeaterModel(
        film_resistance=film_resistance,
        step_response=tuple(ThermalComponent(weight=w, tau_s=tau) for w, tau in best.response),
        step_response_source="film resistance (V/I)" if film is not None else "image",
        notes=notes,
    )
    return HeaterCalibrationResult(model, film, image, r0_err, alpha_err, run)
