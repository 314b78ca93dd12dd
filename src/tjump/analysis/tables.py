"""The analysis as tables: rows of the CSV files, the summary (summary.json), and the typed
reader of what the GUI reads back (particles.csv, events.csv). Formatting only: every value
comes from the `Analysis` model."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tjump.analysis.model import Analysis, Population
from tjump.errors import InputError
from tjump.storage.layout import ANALYSIS_EVENTS, ANALYSIS_PARTICLES

Table = tuple[list[str], list[list[str]]]
FloatArray = NDArray[np.float64]


def _fmt(value: float | int | None, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if not math.isfinite(value):
        return ""
    return f"{value:.{digits}f}"


def particle_rows(a: Analysis) -> Table:
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
    outliers = set(a.populations[first].outliers)
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


def event_rows(a: Analysis) -> Table:
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


def temperature_rows(a: Analysis) -> Table:
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
    for t in a.per_temperature:
        jmak = t.avrami
        rows.append(
            [
                str(t.particle),
                str(t.series),
                _fmt(t.temperature_K, 2),
                str(t.cycles),
                str(t.events),
                _fmt(t.mean_nucleation_s, 3),
                _fmt(t.sd_nucleation_s, 3),
                _fmt(t.ml_mean_nucleation_s, 3),
                _fmt(t.fit_mean_nucleation_s, 3),
                _fmt(jmak.k, 8) if jmak else "",
                _fmt(jmak.n, 3) if jmak else "",
                _fmt(jmak.t0_s, 3) if jmak else "",
            ]
        )
    return header, rows


def ensemble_rows(a: Analysis) -> Table:
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


def common_mode_rows(a: Analysis) -> Table:
    rec = a.recording
    proxy = a.defocus_proxy
    return (
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
    )


def write_csv(path: Path, table: Table) -> None:
    header, rows = table
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(header)
        out.writerows(rows)


def population_dict(p: Population) -> dict[str, Any]:
    """A series' population as summary.json has it (sizes only when calibrated)."""
    if not p.particles_with_ea:
        return {"particles_with_ea": 0}
    result: dict[str, Any] = {
        "particles_with_ea": p.particles_with_ea,
        "ea_mean_kj_mol": p.ea_mean_kj_mol,
        "ea_median_kj_mol": p.ea_median_kj_mol,
        "ea_sd_kj_mol": p.ea_sd_kj_mol,
        "ea_mean_without_outliers_kj_mol": p.ea_mean_without_outliers_kj_mol,
        "outliers_ea_at_least_twice_mean": list(p.outliers),
    }
    if p.ea_vs_size_slope_kj_mol_per_100nm is not None:
        result["ea_vs_size_slope_kj_mol_per_100nm"] = p.ea_vs_size_slope_kj_mol_per_100nm
        result["ea_vs_size_correlation"] = p.ea_vs_size_correlation
    return result


def summary(a: Analysis) -> dict[str, Any]:
    """summary.json: counts, the thermometry, the populations, the timings (NaN -> null)."""
    rec = a.recording
    e = a.events
    result: dict[str, Any] = {
        "input": str(rec.source),
        "frames": rec.frames,
        "frame_shape": list(rec.shape),
        "frame_period_s": rec.frame_period_s,
        "exposure_s": rec.exposure_s,
        "particles": len(a.detections),
        "usable_particles": int(a.detections.usable.sum()),
        "cycles": len(a.cycles),
        "skip_cycles": a.skip_cycles,
        "thermal_response": [list(r) for r in a.response] if a.response else None,
        "thermometry": a.thermometry,
        "inert_particles": [int(i) for i in np.flatnonzero(a.inert)] if a.inert is not None else [],
        "series": a.series,
        "events": a.event_count,
        "censored": int((~np.isfinite(e.nucleation_s)).sum()),
        "events_in_fits": a.events_in_fits,
        "median_step": a.median_step,
        "median_return_s": a.median_return_s,
        "population": {str(s): population_dict(a.populations[s]) for s in a.series},
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


# -- reading back what the GUI shows -----------------------------------------------------


@dataclass(frozen=True)
class ParticleResults:
    """particles.csv as read back: one array per column (NaN where empty or absent)."""

    particle_id: NDArray[np.int64]
    x: FloatArray
    y: FloatArray
    size_nm: FloatArray
    ea_kj_mol: FloatArray
    ea_stderr_kj_mol: FloatArray
    ln_prefactor: FloatArray


@dataclass(frozen=True)
class EventResults:
    """events.csv as read back: one row per particle and cycle (NaN: censored)."""

    particle_id: NDArray[np.int64]
    temperature_K: FloatArray
    nucleation_s: FloatArray


def _number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _columns(path: Path, kind: type, required: tuple[str, ...]) -> dict[str, NDArray[Any]]:
    """The columns of `kind`'s fields from the CSV at `path`."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{path} lacks the column(s) {', '.join(missing)}")
        rows = list(reader)
    columns: dict[str, NDArray[Any]] = {}
    for column in fields(kind):
        values = np.array([_number(r.get(column.name)) for r in rows], dtype=np.float64)
        if column.name == "particle_id":
            if not np.isfinite(values).all():
                raise InputError(f"{path}: particle_id must be a number in every row")
            columns[column.name] = values.astype(np.int64)
        else:
            columns[column.name] = values
    return columns


def read_results(folder: Path) -> tuple[ParticleResults, EventResults]:
    """The particles and events an analysis wrote into `folder`; InputError naming what
    is missing."""
    particles, events = folder / ANALYSIS_PARTICLES, folder / ANALYSIS_EVENTS
    if not particles.is_file() or not events.is_file():
        raise InputError(
            f"{folder} has no {ANALYSIS_PARTICLES} and {ANALYSIS_EVENTS}: "
            "run `tjump analyze` on it first"
        )
    return (
        ParticleResults(**_columns(particles, ParticleResults, ("particle_id", "ea_kj_mol"))),
        EventResults(
            **_columns(events, EventResults, ("particle_id", "temperature_K", "nucleation_s"))
        ),
    )
