"""The whole analysis of one recording: detection, traces, common mode, events, fits.

`analyze_recording` computes everything and returns an `Analysis` (no files written);
`write_analysis` writes it to a folder through a temporary sibling that is renamed into
place at the end, so an interrupted or failed analysis never leaves a half-written result.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tjump.analysis.detection import Detections, detect_particles
from tjump.analysis.events import Cycle, EventTable, common_mode, detect_events, find_cycles
from tjump.analysis.kinetics import (
    ArrheniusFit,
    AvramiFit,
    Response,
    arrhenius_line,
    censored_mean,
    film_states,
    first_order_rate,
    fit_arrhenius,
    fit_avrami,
    nucleation_rate,
    survival_curve,
)
from tjump.analysis.recording import Recording, open_recording
from tjump.analysis.sizing import SizeCalibration
from tjump.analysis.traces import TraceSet, extract_traces
from tjump.errors import InputError

FloatArray = NDArray[np.float64]
BASELINE_FRAMES = 50


@dataclass
class EnsembleKinetics:
    """One temperature of one series, over all usable particles and cycles."""

    series: int
    temperature_K: float
    hold_s: float
    grid_s: FloatArray  # time since the jump
    remaining: FloatArray  # fraction of particle-cycles not yet switched
    mean_intensity: FloatArray  # ensemble average of the normalised traces
    first_order_k: float
    avrami_switched: AvramiFit | None  # JMAK fit of the switched fraction
    avrami_intensity: AvramiFit | None  # JMAK fit of the ensemble-averaged dimming
    nucleation_rate_per_s: float


@dataclass
class Analysis:
    recording: Recording
    detections: Detections
    traces: TraceSet
    cycles: list[Cycle]
    common: FloatArray
    events: EventTable
    initial_intensity: FloatArray
    size_nm: FloatArray | None
    fits: dict[int, list[ArrheniusFit]]  # series -> per particle
    ensemble: list[EnsembleKinetics]
    first_order_ea: dict[int, tuple[float, float]]  # series -> (Ea, ln A)
    skip_cycles: int
    response: Response | None = None
    start_K: FloatArray | None = None  # (cycles, components): film state at each jump
    ambient_K: float = 293.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def series(self) -> list[int]:
        return sorted({c.series for c in self.cycles})

    def used(self, c: Cycle) -> bool:
        return c.cycle > self.skip_cycles

    def population(self, series: int) -> dict[str, Any]:
        fits = self.fits[series]
        usable = self.detections.usable
        ea = np.array([f.ea_kj_mol for f in fits])
        ok = usable & np.isfinite(ea)
        if not ok.any():
            return {"particles_with_ea": 0}
        mean = float(np.mean(ea[ok]))
        outliers = ok & (ea >= 2.0 * mean)
        core = ok & ~outliers
        result: dict[str, Any] = {
            "particles_with_ea": int(ok.sum()),
            "ea_mean_kj_mol": mean,
            "ea_median_kj_mol": float(np.median(ea[ok])),
            "ea_sd_kj_mol": float(np.std(ea[ok], ddof=1)) if ok.sum() > 1 else float("nan"),
            "ea_mean_without_outliers_kj_mol": float(np.mean(ea[core])) if core.any() else None,
            "outliers_ea_at_least_twice_mean": [int(i) for i in np.flatnonzero(outliers)],
        }
        if self.size_nm is not None:
            both = ok & np.isfinite(self.size_nm)
            if both.sum() >= 3:
                slope, _ = np.polyfit(self.size_nm[both], ea[both], 1)
                result["ea_vs_size_slope_kj_mol_per_100nm"] = float(slope * 100)
                result["ea_vs_size_correlation"] = float(
                    np.corrcoef(self.size_nm[both], ea[both])[0, 1]
                )
        return result


def _baseline(rec: Recording, first_jump: int) -> tuple[int, int]:
    if first_jump < 1:
        raise InputError(
            f"{rec.source}: the first jump is at the first frame; detection needs frames "
            "before it (at ambient temperature)"
        )
    count = min(first_jump, BASELINE_FRAMES)
    return first_jump - count, count


def analyze_recording(
    path: Path,
    calibration: SizeCalibration | None = None,
    skip_cycles: int = 0,
    ablation_K: float = 450.0,
    threshold_sigma: float = 8.0,
    response: Response | None = None,
) -> Analysis:
    """Everything from a recording folder; raises InputError on bad input. `response`:
    the heater's step response as (weight, time constant s) pairs, to fit Arrhenius against
    the lagging film temperature instead of the setpoint."""
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    rec = open_recording(path)
    cycles, _ = find_cycles(rec.time_s, rec.temperature_K, rec.kind, rec.frame_period_s, ablation_K)
    if not cycles:
        raise InputError(
            f"{rec.source}: no jump in the temperature column (temperature_K never rises "
            "above its lowest value by more than 2 K)"
        )
    first, count = _baseline(rec, cycles[0].first)
    baseline = rec.mean_image(first, count)
    detections = detect_particles(baseline, threshold_sigma=threshold_sigma)
    if len(detections) == 0:
        raise InputError(
            f"{rec.source}: no particle found in the {count} frames before the first jump "
            f"(nothing stands {threshold_sigma:g} noise levels above the background)"
        )
    timings["open_and_detect_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    traces = extract_traces(rec.blocks(), rec.frames, detections.x, detections.y, baseline)
    timings["traces_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    args = (rec.time_s, rec.exposure_s, rec.frame_period_s)
    first_pass = detect_events(traces.intensity, cycles, *args)
    common = common_mode(traces.intensity, cycles, first_pass, detections.usable)
    events = detect_events(traces.intensity, cycles, *args, common=common)
    timings["events_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    initial = np.median(traces.intensity[first : first + count], axis=0)
    size = calibration.size(initial) if calibration is not None else None
    ambient = float(np.min(rec.temperature_K))
    start_K = None
    if response:
        states = film_states(rec.time_s, rec.temperature_K, response, ambient)
        start_K = np.array([states[c.first] for c in cycles])
    fits: dict[int, list[ArrheniusFit]] = {}
    for s in sorted({c.series for c in cycles}):
        chosen = [j for j, c in enumerate(cycles) if c.series == s and c.cycle > skip_cycles]
        temps = np.array([cycles[j].temperature_K for j in chosen])
        holds = np.array([cycles[j].hold_s for j in chosen])
        start = start_K[chosen] if start_K is not None else None
        fits[s] = [
            fit_arrhenius(
                temps, events.nucleation_s[i, chosen], holds, None, response, start, ambient
            )
            for i in range(len(detections))
        ]
    timings["arrhenius_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    analysis = Analysis(
        rec,
        detections,
        traces,
        cycles,
        common,
        events,
        initial,
        size,
        fits,
        [],
        {},
        skip_cycles,
        response,
        start_K,
        ambient,
        timings,
    )
    _ensemble(analysis)
    timings["ensemble_s"] = time.perf_counter() - clock
    return analysis


def _ensemble(a: Analysis) -> None:
    """Population views per series and temperature: survival, first order, JMAK."""
    usable = a.detections.usable
    period = a.recording.frame_period_s
    corrected = a.traces.intensity / a.common[:, None]
    for s in a.series:
        temps = sorted({c.temperature_K for c in a.cycles if c.series == s})
        rates: list[float] = []
        for temp in temps:
            chosen = [
                j
                for j, c in enumerate(a.cycles)
                if c.series == s and c.temperature_K == temp and a.used(c)
            ]
            if not chosen:
                rates.append(float("nan"))
                continue
            hold = min(a.cycles[j].hold_s for j in chosen)
            frames = round(hold / period)
            grid = np.arange(frames, dtype=np.float64) * period
            waits = a.events.nucleation_s[usable][:, chosen].ravel()
            switched_particles = np.isfinite(a.events.nucleation_s[usable][:, chosen]).any(axis=1)
            remaining = survival_curve(waits, hold, grid)
            # ensemble average of the traces of particles that switch at this temperature
            curves = []
            for j in chosen:
                c = a.cycles[j]
                level = a.events.level[:, j]
                block = corrected[c.first : c.first + frames] / level[None, :]
                pick = usable & np.isfinite(a.events.step[:, j])
                if pick.any() and len(block) == frames:
                    curves.append(block[:, pick])
            if curves:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    mean_intensity = np.nanmean(np.concatenate(curves, axis=1), axis=1)
            else:
                mean_intensity = np.full(frames, np.nan)
            step = float(np.nanmedian(a.events.step[usable][:, chosen]))
            dimming = (1.0 - mean_intensity) / step if math.isfinite(step) else mean_intensity
            k1 = first_order_rate(grid, remaining)
            rates.append(k1)
            a.ensemble.append(
                EnsembleKinetics(
                    s,
                    temp,
                    hold,
                    grid,
                    remaining,
                    mean_intensity,
                    k1,
                    fit_avrami(grid, 1.0 - remaining),
                    fit_avrami(grid, np.clip(dimming, 0.0, 1.0)),
                    nucleation_rate(grid, (1.0 - remaining) * len(waits), int(max(len(waits), 1)))
                    if switched_particles.any()
                    else float("nan"),
                )
            )
        a.first_order_ea[s] = arrhenius_line(np.array(temps), np.array(rates))


# -- writing --------------------------------------------------------------------------------


def _fmt(value: float | int | None, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if not math.isfinite(value):
        return ""
    return f"{value:.{digits}f}"


def particle_rows(a: Analysis) -> tuple[list[str], list[list[str]]]:
    d = a.detections
    header = [
        "particle_id",
        "x",
        "y",
        "flags",
        "usable",
        "intensity_adu",
        "size_nm",
        "ea_kj_mol",
        "ea_stderr_kj_mol",
        "ln_prefactor",
        "ln_prefactor_stderr",
        "waiting_shape",
        "loglik",
        "n_events",
        "n_censored",
        "n_temperatures",
        "fit_status",
        "outlier",
    ]
    later = [s for s in a.series if s > 1]
    for s in later:
        header += [
            f"ea_series{s}_kj_mol",
            f"ea_series{s}_stderr_kj_mol",
            f"ln_prefactor_series{s}",
            f"n_events_series{s}",
        ]
    first = a.series[0]
    pop = a.population(first)
    outliers = set(pop.get("outliers_ea_at_least_twice_mean", []))
    rows = []
    for i in range(len(d)):
        f = a.fits[first][i]
        row = [
            str(i),
            _fmt(float(d.x[i]), 3),
            _fmt(float(d.y[i]), 3),
            str(int(d.flags[i])),
            str(int(d.usable[i])),
            _fmt(float(a.initial_intensity[i]), 1),
            _fmt(float(a.size_nm[i]), 1) if a.size_nm is not None else "",
            _fmt(f.ea_kj_mol, 2),
            _fmt(f.ea_stderr_kj_mol, 2),
            _fmt(f.ln_prefactor, 3),
            _fmt(f.ln_prefactor_stderr, 3),
            _fmt(f.shape, 2),
            _fmt(f.loglik, 2),
            str(f.n_events),
            str(f.n_censored),
            str(f.n_temperatures),
            f.status,
            str(int(i in outliers)),
        ]
        for s in later:
            g = a.fits[s][i]
            row += [
                _fmt(g.ea_kj_mol, 2),
                _fmt(g.ea_stderr_kj_mol, 2),
                _fmt(g.ln_prefactor, 3),
                str(g.n_events),
            ]
        rows.append(row)
    return header, rows


def event_rows(a: Analysis) -> tuple[list[str], list[list[str]]]:
    header = [
        "particle_id",
        "series",
        "cycle",
        "temperature_K",
        "jump_s",
        "hold_s",
        "nucleation_s",
        "censored",
        "used_in_fit",
        "frame",
        "step",
        "growth_s",
        "return_s",
        "t_stat",
    ]
    e = a.events
    rows = []
    for i in range(len(a.detections)):
        for j, c in enumerate(a.cycles):
            t = float(e.nucleation_s[i, j])
            rows.append(
                [
                    str(i),
                    str(c.series),
                    str(c.cycle),
                    _fmt(c.temperature_K, 2),
                    _fmt(c.jump_s, 3),
                    _fmt(c.hold_s, 3),
                    _fmt(t, 4),
                    str(int(not math.isfinite(t))),
                    str(int(a.used(c))),
                    str(int(e.switch_frame[i, j])) if e.switch_frame[i, j] >= 0 else "",
                    _fmt(float(e.step[i, j]), 4),
                    _fmt(float(e.growth_s[i, j]), 3),
                    _fmt(float(e.return_s[i, j]), 3),
                    _fmt(float(e.t_stat[i, j]), 1),
                ]
            )
    return header, rows


def temperature_rows(a: Analysis) -> tuple[list[str], list[list[str]]]:
    header = [
        "particle_id",
        "series",
        "temperature_K",
        "cycles",
        "events",
        "mean_nucleation_s",
        "sd_nucleation_s",
        "ml_mean_nucleation_s",
        "fit_mean_nucleation_s",
        "avrami_k",
        "avrami_n",
        "avrami_t0_s",
    ]
    rows = []
    for s in a.series:
        temps = sorted({c.temperature_K for c in a.cycles if c.series == s})
        for i in range(len(a.detections)):
            fit = a.fits[s][i]
            for temp in temps:
                chosen = [
                    j
                    for j, c in enumerate(a.cycles)
                    if c.series == s and c.temperature_K == temp and a.used(c)
                ]
                if not chosen:
                    continue
                w = a.events.nucleation_s[i, chosen]
                ev = w[np.isfinite(w)]
                hold = min(a.cycles[j].hold_s for j in chosen)
                shape = fit.shape if math.isfinite(fit.shape) else 1.0
                fitted = (
                    1.0 / float(fit.rate(np.array([temp]))[0]) if fit.status[:2] == "ok" else None
                )
                # JMAK of this particle's switched fraction of cycles against time
                grid = np.linspace(0.0, hold, 201)
                jmak = fit_avrami(grid, 1.0 - survival_curve(w, hold, grid)) if len(ev) else None
                rows.append(
                    [
                        str(i),
                        str(s),
                        _fmt(temp, 2),
                        str(len(chosen)),
                        str(len(ev)),
                        _fmt(float(ev.mean()), 3) if len(ev) else "",
                        _fmt(float(ev.std(ddof=1)), 3) if len(ev) > 1 else "",
                        _fmt(censored_mean(w, hold, shape), 3),
                        _fmt(fitted, 3),
                        _fmt(jmak.k, 8) if jmak else "",
                        _fmt(jmak.n, 3) if jmak else "",
                        _fmt(jmak.t0_s, 3) if jmak else "",
                    ]
                )
    return header, rows


def ensemble_rows(a: Analysis) -> tuple[list[str], list[list[str]]]:
    header = [
        "series",
        "temperature_K",
        "first_order_k_per_s",
        "avrami_k",
        "avrami_n",
        "avrami_t0_s",
        "avrami_intensity_k",
        "avrami_intensity_n",
        "avrami_intensity_t0_s",
        "nucleation_rate_per_s",
        "switched_fraction_at_hold_end",
    ]
    rows = []
    for k in a.ensemble:
        av, ai = k.avrami_switched, k.avrami_intensity
        rows.append(
            [
                str(k.series),
                _fmt(k.temperature_K, 2),
                _fmt(k.first_order_k, 5),
                _fmt(av.k, 6) if av else "",
                _fmt(av.n, 3) if av else "",
                _fmt(av.t0_s, 3) if av else "",
                _fmt(ai.k, 6) if ai else "",
                _fmt(ai.n, 3) if ai else "",
                _fmt(ai.t0_s, 3) if ai else "",
                _fmt(k.nucleation_rate_per_s, 5),
                _fmt(float(1.0 - k.remaining[-1]), 3) if len(k.remaining) else "",
            ]
        )
    return header, rows


def _write_csv(path: Path, table: tuple[list[str], list[list[str]]]) -> None:
    header, rows = table
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(header)
        out.writerows(rows)


def summary(a: Analysis) -> dict[str, Any]:
    rec = a.recording
    e = a.events
    used = np.array([a.used(c) for c in a.cycles])
    usable = a.detections.usable
    result: dict[str, Any] = {
        "input": str(rec.source),
        "frames": rec.frames,
        "frame_shape": list(rec.shape),
        "frame_period_s": rec.frame_period_s,
        "exposure_s": rec.exposure_s,
        "particles": len(a.detections),
        "usable_particles": int(usable.sum()),
        "cycles": len(a.cycles),
        "skip_cycles": a.skip_cycles,
        "thermal_response": [list(r) for r in a.response] if a.response else None,
        "series": a.series,
        "events": int(np.isfinite(e.nucleation_s).sum()),
        "censored": int((~np.isfinite(e.nucleation_s)).sum()),
        "events_in_fits": int(np.isfinite(e.nucleation_s[usable][:, used]).sum()),
        "median_step": float(np.nanmedian(e.step)) if np.isfinite(e.step).any() else None,
        "median_return_s": float(np.nanmedian(e.return_s))
        if np.isfinite(e.return_s).any()
        else None,
        "population": {str(s): a.population(s) for s in a.series},
        "first_order_arrhenius": {
            str(s): {"ea_kj_mol": v[0], "ln_prefactor": v[1]} for s, v in a.first_order_ea.items()
        },
        "size_calibration": a.size_nm is not None,
        "timings_s": a.timings,
    }
    clean: dict[str, Any] = json.loads(
        json.dumps(result, default=_json_default).replace("NaN", "null")
    )
    return clean


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value).__name__)


def write_analysis(a: Analysis, output: Path, figures: bool = True) -> Path:
    """Write every output into `output` (created; a previous analysis there is replaced)."""
    if output.exists():
        if not output.is_dir():
            raise InputError(f"output {output} exists and is not a folder")
        if any(output.iterdir()) and not (output / "summary.json").is_file():
            raise InputError(
                f"output folder {output} already holds files that are not an analysis; "
                "choose another"
            )
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    try:
        _write_csv(staging / "particles.csv", particle_rows(a))
        _write_csv(staging / "events.csv", event_rows(a))
        _write_csv(staging / "temperatures.csv", temperature_rows(a))
        _write_csv(staging / "ensemble.csv", ensemble_rows(a))
        rec = a.recording
        proxy = np.sqrt(np.clip(1.0 / a.common - 1.0, 0.0, None))
        _write_csv(
            staging / "common_mode.csv",
            (
                ["frame", "time_s", "temperature_K", "common_mode", "defocus_proxy"],
                [
                    [
                        str(k),
                        f"{rec.time_s[k]:.4f}",
                        f"{rec.temperature_K[k]:.2f}",
                        f"{a.common[k]:.5f}",
                        f"{proxy[k]:.5f}",
                    ]
                    for k in range(rec.frames)
                ],
            ),
        )
        np.savez_compressed(
            staging / "traces.npz",
            intensity=a.traces.intensity.astype(np.float32),
            time_s=rec.time_s,
            common_mode=a.common,
            x=a.traces.x,
            y=a.traces.y,
            block_start=a.traces.block_start,
        )
        clock = time.perf_counter()
        if figures:
            from tjump.analysis.report import write_report

            write_report(a, staging)
        a.timings["report_s"] = time.perf_counter() - clock
        (staging / "summary.json").write_text(json.dumps(summary(a), indent=2), encoding="utf-8")
        if output.exists():
            old = output.with_name(f".{output.name}.old-{time.time_ns()}")
            output.rename(old)
            staging.rename(output)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output
