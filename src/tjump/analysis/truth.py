"""Scoring an analysis against a simulated run's truth (`sim-truth/` in the run directory).

Used by the accuracy tests and scripts/analysis_accuracy.py. Detections are matched to the
simulator's particles by position (nearest within `match_px`; drift is < 1 px per hour);
a cycle's true nucleation time is its LS -> HS time minus the cycle's jump time, censored
when it falls after the hold."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tjump.analysis.kinetics import fit_arrhenius
from tjump.analysis.model import Analysis
from tjump.storage.layout import TRUTH_PARTICLES, TRUTH_TRANSITIONS

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Truth:
    x: FloatArray
    y: FloatArray
    is_reference: NDArray[np.bool_]
    size_nm: FloatArray
    peak_fraction: FloatArray
    ea_kj_mol: FloatArray
    ablated_ea_kj_mol: FloatArray
    ablation_fraction: FloatArray
    switch_particle: NDArray[np.int64]
    switch_time_s: FloatArray


def load_truth(directory: Path) -> Truth:
    with (directory / TRUTH_PARTICLES).open(newline="") as f:
        rows = list(csv.DictReader(f))
    with (directory / TRUTH_TRANSITIONS).open(newline="") as f:
        switches = [r for r in csv.DictReader(f) if r["direction"] == "LS->HS"]

    def col(name: str) -> FloatArray:
        return np.array([float(r[name]) if r[name] != "nan" else np.nan for r in rows])

    return Truth(
        col("x"),
        col("y"),
        np.array([r["kind"] == "reference" for r in rows]),
        col("size_nm"),
        col("peak_fraction"),
        col("ea_kj_mol"),
        col("ablated_ea_kj_mol"),
        col("ablation_fraction"),
        np.array([int(r["particle_id"]) for r in switches], dtype=np.int64),
        np.array([float(r["time_s"]) for r in switches]),
    )


def true_nucleation(truth: Truth, analysis: Analysis) -> FloatArray:
    """(truth particles, cycles): the true waiting time of each cycle, NaN if censored."""
    n = len(truth.x)
    out = np.full((n, len(analysis.cycles)), np.nan)
    for j, c in enumerate(analysis.cycles):
        end = c.jump_s + c.hold_s
        sel = (truth.switch_time_s >= c.jump_s) & (truth.switch_time_s < end)
        for p, t in zip(truth.switch_particle[sel], truth.switch_time_s[sel], strict=True):
            if np.isnan(out[p, j]):
                out[p, j] = t - c.jump_s
    return out


def score(analysis: Analysis, truth: Truth, match_px: float = 1.5) -> dict[str, Any]:
    """Detection, event and Ea accuracy figures (see issue 5 for the targets)."""
    d = analysis.detections
    dist = np.hypot(d.x[:, None] - truth.x[None, :], d.y[:, None] - truth.y[None, :])
    nearest = dist.argmin(axis=1)
    matched = dist[np.arange(len(d)), nearest] <= match_px
    found = np.zeros(len(truth.x), dtype=bool)
    found[nearest[matched]] = True
    det_of = np.full(len(truth.x), -1)
    det_of[nearest[matched]] = np.flatnonzero(matched)
    real = np.isin(np.arange(len(d)), np.flatnonzero(matched))

    true_t = true_nucleation(truth, analysis)
    seen = analysis.events.nucleation_s
    pairs = [(p, det_of[p]) for p in range(len(truth.x)) if det_of[p] >= 0]
    tp = fn = fp = 0
    errors: list[float] = []
    period = analysis.recording.frame_period_s
    for p, i in pairs:
        t_true, t_seen = true_t[p], seen[i]
        both = np.isfinite(t_true) & np.isfinite(t_seen)
        tp += int(both.sum())
        fn += int((np.isfinite(t_true) & ~np.isfinite(t_seen)).sum())
        fp += int((~np.isfinite(t_true) & np.isfinite(t_seen)).sum())
        errors += list(np.abs(t_seen[both] - t_true[both]))
    fp += int(np.isfinite(seen[~real]).sum())  # events on something that is no particle
    err = np.asarray(errors)

    ea_rel: dict[str, Any] = {}
    for s in analysis.series:
        chosen = analysis.cycles_at(s)
        temps = np.array([analysis.cycles[j].temperature_K for j in chosen])
        holds = np.array([analysis.cycles[j].hold_s for j in chosen])
        # after ablation the simulator moves Ea towards the ablated value by the fraction
        # of ablation reached
        a = truth.ablation_fraction
        ablated = (1 - a) * truth.ea_kj_mol + a * truth.ablated_ea_kj_mol
        truth_ea = truth.ea_kj_mol if s == 1 else ablated
        rel_a, rel_t = [], []
        for p, i in pairs:
            if truth.is_reference[p]:
                continue
            fa = analysis.fits[s][i]
            start = analysis.start_K[chosen] if analysis.start_K is not None else None
            ft = fit_arrhenius(
                temps,
                true_t[p, chosen],
                holds,
                None,
                analysis.response,
                start,
                analysis.ambient_K,
            )
            if np.isfinite(fa.ea_kj_mol) and np.isfinite(ft.ea_kj_mol):
                rel_a.append(abs(fa.ea_kj_mol - truth_ea[p]) / truth_ea[p])
                rel_t.append(abs(ft.ea_kj_mol - truth_ea[p]) / truth_ea[p])
        ea_rel[str(s)] = {
            "particles": len(rel_a),
            "median_rel_error_analysis": float(np.median(rel_a)) if rel_a else None,
            "median_rel_error_true_times": float(np.median(rel_t)) if rel_t else None,
        }
    return {
        "particles_true": len(truth.x),
        "particles_found_fraction": float(found.mean()),
        "false_detections": int((~matched).sum()),
        "events_true": tp + fn,
        "events_found_fraction": tp / max(tp + fn, 1),
        "events_precision": tp / max(tp + fp, 1),
        "false_events": fp,
        "median_time_error_s": float(np.median(err)) if len(err) else None,
        "median_time_error_frames": float(np.median(err) / period) if len(err) else None,
        "p95_time_error_frames": float(np.percentile(err, 95) / period) if len(err) else None,
        "ea": ea_rel,
    }
