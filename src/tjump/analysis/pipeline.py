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
from collections.abc import Callable
from dataclasses import dataclass, field, replace
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
from tjump.analysis.references import find_inert, read_inert_file
from tjump.analysis.sizing import SizeCalibration
from tjump.analysis.thermometry import (
    InferredResponse,
    agreement,
    infer_from_film,
    infer_from_image,
    to_response,
)
from tjump.analysis.traces import TraceSet, extract_traces
from tjump.errors import InputError

FloatArray = NDArray[np.float64]
BASELINE_FRAMES = 50
THERMOMETERS = ("auto", "image", "film", "rig", "setpoints")
INERT_FLAG = 4  # in particles.csv `flags`: an inert reference (no transition, follows the drift)
# the image's response is trusted by `auto` when the fraction of the step reached at 10 s
# is known to better than this
IMAGE_MAX_STDERR = 0.05


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
    inert: NDArray[np.bool_] | None = None  # inert reference particles
    thermometry: dict[str, Any] = field(default_factory=dict)

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
    thermometer: str = "auto",
    inert_file: Path | None = None,
    temperature_errors: bool = True,
    keep_interrupted: bool = False,
) -> Analysis:
    """Everything from a recording folder; raises InputError on bad input.

    Temperatures: `response` (the heater's step response as (weight, time constant s)
    pairs) when given, else the one `thermometer` picks: "image" (inferred from the
    common-mode focal drift), "film" (inferred from the film temperature V/I recorded in
    frames.csv), "rig" (the response the run recorded from its rig file), "setpoints"
    (none), or "auto": the image's when it is well determined, else the film's, the
    rig's, the setpoints. `inert_file` names inert particles (ids or x,y lines).
    `temperature_errors`: add the step response's uncertainty to each Ea's error.
    `keep_interrupted`: keep a run's frames of cycles it did not finish (left out by
    default)."""
    if thermometer not in THERMOMETERS:
        raise InputError(f"thermometer {thermometer!r}: choose one of {', '.join(THERMOMETERS)}")
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    rec = open_recording(path, keep_interrupted)
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
    named = read_inert_file(inert_file, detections) if inert_file is not None else None
    timings["open_and_detect_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    traces = extract_traces(rec.blocks(), rec.frames, detections.x, detections.y, baseline)
    timings["traces_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    args = (rec.time_s, rec.exposure_s, rec.frame_period_s)
    measurable = detections.usable
    first_pass = detect_events(traces.intensity, cycles, *args, need_return=True, inert=named)
    common = common_mode(traces.intensity, cycles, first_pass, measurable)
    events = detect_events(
        traces.intensity, cycles, *args, common=common, need_return=True, inert=named
    )
    inert = find_inert(traces.intensity, cycles, events, common)
    if named is not None:
        inert |= named
    # the common mode again with the inert particles known (they have no events), then the
    # final events
    common = common_mode(traces.intensity, cycles, events, measurable | inert)
    events = detect_events(
        traces.intensity, cycles, *args, common=common, need_return=True, inert=inert
    )
    detections = replace(
        detections, flags=np.where(inert, detections.flags | INERT_FLAG, detections.flags)
    )
    timings["events_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    ambient = float(np.min(rec.temperature_K))
    response, thermometry, inferred = _choose_response(
        rec, cycles, common, ambient, response, thermometer
    )
    timings["thermometry_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    initial = np.median(traces.intensity[first : first + count], axis=0)
    size = calibration.size(initial) if calibration is not None else None
    start_K = _start_states(rec, cycles, response, ambient)
    fits: dict[int, list[ArrheniusFit]] = {}
    for s in sorted({c.series for c in cycles}):
        chosen = [j for j, c in enumerate(cycles) if c.series == s and c.cycle > skip_cycles]
        fits[s] = _fit_series(events.nucleation_s, cycles, chosen, response, start_K, ambient)
        if inferred is not None and temperature_errors:

            def start_of(moved: Response, chosen: list[int] = chosen) -> FloatArray | None:
                states = _start_states(rec, cycles, moved, ambient)
                return states[chosen] if states is not None else None

            fits[s] = with_temperature_errors(
                fits[s],
                events.nucleation_s[:, chosen],
                np.array([cycles[j].temperature_K for j in chosen]),
                np.array([cycles[j].hold_s for j in chosen]),
                inferred,
                start_of,
                ambient,
            )
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
        inert,
        thermometry,
    )
    _ensemble(analysis)
    timings["ensemble_s"] = time.perf_counter() - clock
    return analysis


def _start_states(
    rec: Recording, cycles: list[Cycle], response: Response | None, ambient: float
) -> FloatArray | None:
    """(cycles, components): the film's state at each jump, for a lag-aware fit."""
    if not response:
        return None
    states = film_states(rec.time_s, rec.temperature_K, response, ambient)
    return np.array([states[c.first] for c in cycles])


def _fit_series(
    nucleation_s: FloatArray,
    cycles: list[Cycle],
    chosen: list[int],
    response: Response | None,
    start_K: FloatArray | None,
    ambient: float,
) -> list[ArrheniusFit]:
    temps = np.array([cycles[j].temperature_K for j in chosen])
    holds = np.array([cycles[j].hold_s for j in chosen])
    start = start_K[chosen] if start_K is not None else None
    return [
        fit_arrhenius(temps, nucleation_s[i, chosen], holds, None, response, start, ambient)
        for i in range(nucleation_s.shape[0])
    ]


def with_temperature_errors(
    fits: list[ArrheniusFit],
    waiting_s: FloatArray,
    temperature_K: FloatArray,
    hold_s: FloatArray,
    inferred: InferredResponse,
    start_of: Callable[[Response], FloatArray | None],
    ambient_K: float,
) -> list[ArrheniusFit]:
    """Each Ea (`waiting_s`: particles x observations) refitted (from its optimum) with the
    step response one standard deviation away along each principal axis of its
    uncertainty; the changes, added in quadrature, are Ea's error from the temperature,
    added in quadrature to its statistical error. `start_of(response)`: the film's state
    at each jump under it."""
    shifts = np.zeros(len(fits))
    fitted = [i for i, f in enumerate(fits) if math.isfinite(f.ea_kj_mol)]
    for d in inferred.directions():
        moved = to_response(inferred.theta + d)
        start = start_of(moved)
        for i in fitted:
            ea = fit_arrhenius(
                temperature_K,
                waiting_s[i],
                hold_s,
                None,
                moved,
                start,
                ambient_K,
                initial=fits[i],
                stderr=False,
            ).ea_kj_mol
            if math.isfinite(ea):
                shifts[i] += (ea - fits[i].ea_kj_mol) ** 2
    out = []
    for i, f in enumerate(fits):
        temp_err = float(np.sqrt(shifts[i]))
        total = float(np.hypot(f.ea_stderr_kj_mol, temp_err))
        out.append(
            replace(f, ea_stderr_kj_mol=total, ea_stderr_temperature_kj_mol=temp_err)
            if i in fitted
            else f
        )
    return out


def _choose_response(
    rec: Recording,
    cycles: list[Cycle],
    common: FloatArray,
    ambient: float,
    given: Response | None,
    thermometer: str,
) -> tuple[Response | None, dict[str, Any], InferredResponse | None]:
    """The step response to fit with, what every thermometer said, and the inferred
    response whose uncertainty goes into Ea's error (None when the response was given)."""
    image = infer_from_image(common, cycles, rec.time_s, rec.temperature_K, ambient, rec.exposure_s)
    film = None
    if rec.film_temperature_K is not None:
        heating = np.zeros(rec.frames, dtype=bool)
        for c in cycles:
            heating[c.first : c.cool_first] = True
        film = infer_from_film(
            rec.film_temperature_K,
            heating,
            cycles,
            rec.time_s,
            rec.temperature_K,
            ambient,
            rec.exposure_s,
        )
    rig = _recorded_response(rec)
    candidates: dict[str, Response | None] = {
        "image": image.response if image else None,
        "film": film.response if film else None,
        "rig": rig,
    }
    if given:
        used, response, inferred = "given", given, None
    elif thermometer == "setpoints":
        used, response, inferred = "setpoints", None, None
    elif thermometer != "auto":
        response = candidates[thermometer]
        if response is None:
            raise InputError(f"{rec.source}: {_unavailable[thermometer]}")
        used = thermometer
        inferred = {"image": image, "film": film}.get(thermometer)
    else:
        trusted = image is not None and float(image.fraction_error_at(np.array([10.0]))[0]) < (
            IMAGE_MAX_STDERR
        )
        if trusted and image is not None:
            used, response, inferred = "image", image.response, image
        elif film is not None:
            used, response, inferred = "film", film.response, film
        elif rig:
            used, response, inferred = "rig", rig, None
        else:
            used, response, inferred = "setpoints", None, None
    hold = max((c.hold_s for c in cycles), default=1.0)
    report: dict[str, Any] = {
        "used": used,
        "response": [list(r) for r in response] if response else None,
        "image": image.as_dict() if image else None,
        "film_resistance": film.as_dict() if film else None,
        "rig": [list(r) for r in rig] if rig else None,
        "agreement": {},
    }
    named = {"image": candidates["image"], "film_resistance": candidates["film"], "rig": rig}
    if given:
        named["given"] = given
    names = [k for k, v in named.items() if v]
    for a_i, a in enumerate(names):
        for b in names[a_i + 1 :]:
            ra, rb = named[a], named[b]
            assert ra is not None and rb is not None
            report["agreement"][f"{a}_vs_{b}"] = agreement(ra, rb, hold)
    return response, report, inferred


def _recorded_response(rec: Recording) -> Response | None:
    """The step response a run recorded from its rig (run directories and their OME-Zarr
    exports keep the run's manifest)."""
    manifest = rec.extra.get("manifest")
    pairs = manifest.get("heater_step_response") if isinstance(manifest, dict) else None
    if not pairs:
        return None
    return tuple((float(w), float(tau)) for w, tau in pairs)


_unavailable = {
    "image": "the image thermometer found no common-mode dimming to fit (too few cycles or "
    "no focal drift)",
    "film": "no film temperature in frames.csv (film_temperature_K, from V/I), or too few "
    "heated frames with one",
    "rig": "the recording holds no step response from a rig (only run directories do)",
}


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
            steps = a.events.step[usable][:, chosen]
            step = float(np.nanmedian(steps)) if np.isfinite(steps).any() else float("nan")
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
        "ea_stderr_temperature_kj_mol",
        "ln_prefactor",
        "ln_prefactor_stderr",
        "waiting_shape",
        "loglik",
        "n_events",
        "n_censored",
        "n_temperatures",
        "fit_status",
        "outlier",
        "inert",
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
            _fmt(f.ea_stderr_temperature_kj_mol, 2),
            _fmt(f.ln_prefactor, 3),
            _fmt(f.ln_prefactor_stderr, 3),
            _fmt(f.shape, 2),
            _fmt(f.loglik, 2),
            str(f.n_events),
            str(f.n_censored),
            str(f.n_temperatures),
            f.status,
            str(int(i in outliers)),
            str(int(a.inert is not None and bool(a.inert[i]))),
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
        "thermometry": a.thermometry,
        "inert_particles": [int(i) for i in np.flatnonzero(a.inert)] if a.inert is not None else [],
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
