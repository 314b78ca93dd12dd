"""The whole analysis of one recording: detection, traces, common mode, events, fits.

`analyze_recording` computes everything and returns an `Analysis` (`tjump.analysis.model`);
it writes nothing (`tjump.analysis.output.write_analysis` does)."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tjump.analysis.detection import detect_particles
from tjump.analysis.events import Cycle, common_mode, detect_events, find_cycles
from tjump.analysis.kinetics import (
    ArrheniusFit,
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
from tjump.analysis.model import Analysis, EnsembleKinetics, Population, TemperatureStats
from tjump.analysis.recording import Recording, open_recording
from tjump.analysis.references import find_inert, inert_file_of, read_inert_file
from tjump.analysis.sizing import SizeCalibration
from tjump.analysis.thermometry import (
    InferredResponse,
    agreement,
    infer_from_film,
    infer_from_image,
    to_response,
)
from tjump.analysis.traces import extract_traces
from tjump.errors import InputError

FloatArray = NDArray[np.float64]
BASELINE_FRAMES = 50
THERMOMETERS = ("auto", "image", "film", "rig", "setpoints")
INERT_FLAG = 4  # in particles.csv `flags`: an inert reference (no transition, follows the drift)
# the image's response is trusted by `auto` when the fraction of the step reached at 10 s
# is known to better than this
IMAGE_MAX_STDERR = 0.05


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
    rig's, the setpoints. `inert_file` names inert particles (ids or x,y lines); without
    one, the recording's own `inert.txt` (written by the GUI) if there is one.
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
    if inert_file is None and inert_file_of(path).is_file():
        inert_file = inert_file_of(path)
    names, named = None, None
    if inert_file is not None:
        names = read_inert_file(inert_file, detections)
        named = names.inert
        rec.extra["inert_file"] = str(inert_file)
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
    if names is not None:
        inert = names.apply(inert)
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
    analysis = Analysis(
        recording=rec,
        detections=detections,
        traces=traces,
        cycles=cycles,
        common=common,
        events=events,
        initial_intensity=initial,
        size_nm=size,
        fits={},  # filled below, then the population views
        ensemble=[],
        first_order_ea={},
        skip_cycles=skip_cycles,
        response=response,
        start_K=start_K,
        ambient_K=ambient,
        timings=timings,
        inert=inert,
        thermometry=thermometry,
    )
    _fit(analysis, inferred if temperature_errors else None)
    timings["arrhenius_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    _ensemble(analysis)
    analysis.per_temperature = _per_temperature(analysis)
    analysis.populations = {s: population(analysis, s) for s in analysis.series}
    timings["ensemble_s"] = time.perf_counter() - clock
    return analysis


def _fit(a: Analysis, inferred: InferredResponse | None) -> None:
    """Each particle's Arrhenius fit per series, over the cycles used; with `inferred`, its
    step response's uncertainty added to each Ea's error."""
    rec, cycles = a.recording, a.cycles
    for s in a.series:
        chosen = a.cycles_at(s)
        a.fits[s] = _fit_series(
            a.events.nucleation_s, cycles, chosen, a.response, a.start_K, a.ambient_K
        )
        if inferred is not None:

            def start_of(moved: Response, chosen: list[int] = chosen) -> FloatArray | None:
                states = _start_states(rec, cycles, moved, a.ambient_K)
                return states[chosen] if states is not None else None

            a.fits[s] = with_temperature_errors(
                a.fits[s],
                a.events.nucleation_s[:, chosen],
                np.array([cycles[j].temperature_K for j in chosen]),
                np.array([cycles[j].hold_s for j in chosen]),
                inferred,
                start_of,
                a.ambient_K,
            )


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
        temps = a.temperatures(s)
        rates: list[float] = []
        for temp in temps:
            chosen = a.cycles_at(s, temp)
            if not chosen:
                rates.append(float("nan"))
                continue
            hold = a.hold_s(chosen)
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


def _per_temperature(a: Analysis) -> list[TemperatureStats]:
    """Each particle at each temperature of each series: its waiting times' mean, their
    censored maximum-likelihood mean, its fit's mean and a JMAK fit of its cycles."""
    out: list[TemperatureStats] = []
    for s in a.series:
        temps = a.temperatures(s)
        for i in range(len(a.detections)):
            fit = a.fits[s][i]
            for temp in temps:
                chosen = a.cycles_at(s, temp)
                if not chosen:
                    continue
                w = a.events.nucleation_s[i, chosen]
                ev = w[np.isfinite(w)]
                hold = a.hold_s(chosen)
                shape = fit.shape if math.isfinite(fit.shape) else 1.0
                fitted = (
                    1.0 / float(fit.rate(np.array([temp]))[0])
                    if fit.status[:2] == "ok"
                    else float("nan")
                )
                grid = np.linspace(0.0, hold, 201)
                jmak = fit_avrami(grid, 1.0 - survival_curve(w, hold, grid)) if len(ev) else None
                out.append(
                    TemperatureStats(
                        i,
                        s,
                        temp,
                        len(chosen),
                        len(ev),
                        float(ev.mean()) if len(ev) else float("nan"),
                        float(ev.std(ddof=1)) if len(ev) > 1 else float("nan"),
                        censored_mean(w, np.array([a.cycles[j].hold_s for j in chosen]), shape),
                        fitted,
                        jmak,
                    )
                )
    return out


def population(a: Analysis, series: int) -> Population:
    """The Ea distribution of a series over the usable particles: mean, median, spread,
    the outliers (Ea at least twice the mean) and, with sizes, Ea against size."""
    ea = np.array([f.ea_kj_mol for f in a.fits[series]])
    ok = a.detections.usable & np.isfinite(ea)
    if not ok.any():
        return Population(0)
    mean = float(np.mean(ea[ok]))
    outliers = ok & (ea >= 2.0 * mean)
    core = ok & ~outliers
    slope = correlation = None
    if a.size_nm is not None:
        both = ok & np.isfinite(a.size_nm)
        if both.sum() >= 3:
            slope = float(np.polyfit(a.size_nm[both], ea[both], 1)[0] * 100)
            correlation = float(np.corrcoef(a.size_nm[both], ea[both])[0, 1])
    return Population(
        int(ok.sum()),
        mean,
        float(np.median(ea[ok])),
        float(np.std(ea[ok], ddof=1)) if ok.sum() > 1 else float("nan"),
        float(np.mean(ea[core])) if core.any() else None,
        tuple(int(i) for i in np.flatnonzero(outliers)),
        slope,
        correlation,
    )
