"""Figures (PNG, matplotlib's Agg backend) and a one-page HTML report of an analysis.
Drawing only: every value comes from the `Analysis` model."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from numpy.typing import NDArray
from scipy import stats

from tjump.analysis.kinetics import R_KJ
from tjump.analysis.model import Analysis, TemperatureStats
from tjump.analysis.tables import summary
from tjump.storage.layout import ANALYSIS_FIGURES_DIR, ANALYSIS_REPORT

FloatArray = NDArray[np.float64]


def _save(fig: Figure, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def _examples(a: Analysis, count: int = 4) -> list[int]:
    """Usable particles with the most events, for the example plots."""
    n_events = np.isfinite(a.events.nucleation_s).sum(axis=1)
    order = np.argsort(-n_events * a.detections.usable)
    return [int(i) for i in order[:count] if n_events[i] > 0]


def _stats(a: Analysis, particle: int, series: int, temperature_K: float) -> TemperatureStats:
    return next(
        t
        for t in a.per_temperature
        if (t.particle, t.series, t.temperature_K) == (particle, series, temperature_K)
    )


def fig_detections(a: Analysis, path: Path) -> str:
    rec = a.recording
    first = a.cycles[0].first
    image = rec.mean_image(max(first - 20, 0), min(first, 20))
    fig, ax = plt.subplots(figsize=(6, 6 * image.shape[0] / image.shape[1] + 0.3))
    lo, hi = np.percentile(image, [1, 99.8])
    ax.imshow(image, cmap="gray", vmin=lo, vmax=hi)
    d = a.detections
    ax.scatter(d.x[d.usable], d.y[d.usable], s=80, facecolors="none", edgecolors="lime")
    ax.scatter(d.x[~d.usable], d.y[~d.usable], s=80, facecolors="none", edgecolors="red")
    for i in range(len(d)):
        ax.annotate(str(i), (d.x[i] + 3, d.y[i] - 3), color="yellow", fontsize=7)
    ax.set_title(f"{len(d)} particles (red: flagged near an edge or a neighbour)")
    return _save(fig, path)


def fig_traces(a: Analysis, path: Path) -> str:
    examples = _examples(a)
    rec = a.recording
    corrected = a.traces.intensity / a.common[:, None]
    temps = sorted({(c.series, c.temperature_K) for c in a.cycles})
    fig, axes = plt.subplots(
        len(examples) + 1, 1, figsize=(9, 1.8 * (len(examples) + 1)), sharex=True, squeeze=False
    )
    # one cycle per temperature, laid side by side in time since the jump
    for row, i in enumerate(examples):
        ax = axes[row, 0]
        offset = 0.0
        for s, temp in temps:
            js = a.cycles_at(s, temp, used_only=False)
            j = next((j for j in js if math.isfinite(a.events.nucleation_s[i, j])), js[0])
            c = a.cycles[j]
            sl = slice(c.pre_first, c.end)
            t = rec.time_s[sl] - c.jump_s
            ax.plot(t + offset, corrected[sl, i] / a.events.level[i, j], lw=0.7)
            if math.isfinite(a.events.nucleation_s[i, j]):
                ax.axvline(a.events.nucleation_s[i, j] + offset, color="k", ls=":", lw=0.8)
            ax.text(offset, 1.04, f"{temp:.1f} K", fontsize=7)
            offset += float(t[-1]) + 5.0
        ax.set_ylabel(f"#{i}")
        ax.set_ylim(0.75, 1.1)
    ax = axes[-1, 0]
    offset = 0.0
    for s, temp in temps:
        js = a.cycles_at(s, temp, used_only=False)
        c = a.cycles[js[0]]
        sl = slice(c.pre_first, c.end)
        t = rec.time_s[sl] - c.jump_s
        ax.plot(t + offset, a.common[sl], color="gray", lw=0.8)
        offset += float(t[-1]) + 5.0
    ax.set_ylabel("common\nmode")
    ax.set_xlabel("time since the jump, one cycle per temperature side by side (s)")
    axes[0, 0].set_title("Traces / common mode / level before the jump; dotted: nucleation")
    return _save(fig, path)


def fig_histograms(a: Analysis, path: Path) -> str:
    keys = sorted({(c.series, c.temperature_K) for c in a.cycles})
    cols = min(len(keys), 5)
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.4 * rows), squeeze=False)
    examples = _examples(a, 1)
    usable = a.detections.usable
    for k, (s, temp) in enumerate(keys):
        ax = axes[k // cols, k % cols]
        chosen = a.cycles_at(s, temp)
        if not chosen:
            ax.set_visible(False)
            continue
        hold = a.hold_s(chosen)
        pooled = a.events.nucleation_s[usable][:, chosen].ravel()
        pooled = pooled[np.isfinite(pooled)]
        bins = np.linspace(0, hold, 26)
        ax.hist(pooled, bins=bins, color="lightgray", density=True, label="all particles")
        if examples:
            i = examples[0]
            own = a.events.nucleation_s[i, chosen]
            ax.hist(own[np.isfinite(own)], bins=bins, histtype="step", density=True, color="C0")
            fit = a.fits[s][i]
            if math.isfinite(fit.ea_kj_mol):
                mean = _stats(a, i, s, temp).fit_mean_nucleation_s
                t = np.linspace(0, hold, 200)
                pdf = stats.gamma.pdf(t, fit.shape, scale=mean / fit.shape)
                ax.plot(t, pdf, color="C0", lw=1, label=f"#{i} fit")
        ax.set_title(f"{temp:.1f} K" + (f" (series {s})" if s > 1 else ""), fontsize=9)
        ax.set_xlabel("nucleation time (s)", fontsize=8)
    for k in range(len(keys), rows * cols):
        axes[k // cols, k % cols].set_visible(False)
    axes[0, 0].legend(fontsize=7)
    return _save(fig, path)


def fig_arrhenius(a: Analysis, path: Path) -> str:
    fig, axes = plt.subplots(1, len(a.series), figsize=(5 * len(a.series), 4), squeeze=False)
    for col, s in enumerate(a.series):
        ax = axes[0, col]
        temps = a.temperatures(s)
        for n, i in enumerate(_examples(a, 6)):
            fit = a.fits[s][i]
            pts = [_stats(a, i, s, temp).ml_mean_nucleation_s for temp in temps]
            inv = 1000.0 / np.array(temps)
            ax.plot(inv, -np.log(pts), "o", color=f"C{n}", ms=4)
            if math.isfinite(fit.ea_kj_mol):
                line = fit.ln_prefactor - fit.ea_kj_mol / (R_KJ * np.array(temps))
                ax.plot(
                    inv,
                    line,
                    "-",
                    color=f"C{n}",
                    lw=1,
                    label=f"#{i}: {fit.ea_kj_mol:.0f} ± {fit.ea_stderr_kj_mol:.0f} kJ/mol",
                )
        ax.set_xlabel("1000 / T (1/K)")
        ax.set_ylabel("ln(1 / mean nucleation time / s)")
        ax.set_title(f"Arrhenius, series {s}")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return _save(fig, path)


def fig_population(a: Analysis, path: Path) -> str:
    two = len(a.series) > 1
    fig, axes = plt.subplots(1, 3 if two else 2, figsize=(15 if two else 10, 4))
    usable = a.detections.usable
    for s in a.series:
        ea = np.array([f.ea_kj_mol for f in a.fits[s]])
        ok = usable & np.isfinite(ea)
        axes[0].hist(ea[ok], bins=15, alpha=0.6, label=f"series {s} (n={ok.sum()})")
        x = a.size_nm if a.size_nm is not None else a.initial_intensity
        se = np.array([f.ea_stderr_kj_mol for f in a.fits[s]])
        axes[1].errorbar(x[ok], ea[ok], yerr=se[ok], fmt="o", ms=4, label=f"series {s}")
    axes[0].set_xlabel("Ea (kJ/mol)")
    axes[0].set_ylabel("particles")
    axes[0].legend(fontsize=8)
    axes[0].set_title("Activation energies")
    axes[1].set_xlabel("size (nm)" if a.size_nm is not None else "initial intensity (ADU)")
    axes[1].set_ylabel("Ea (kJ/mol)")
    axes[1].set_title("Ea vs size" if a.size_nm is not None else "Ea vs intensity")
    axes[1].legend(fontsize=8)
    if two:
        before = np.array([f.ea_kj_mol for f in a.fits[a.series[0]]])
        after = np.array([f.ea_kj_mol for f in a.fits[a.series[1]]])
        ok = usable & np.isfinite(before) & np.isfinite(after)
        axes[2].plot(before[ok], after[ok], "o", ms=4)
        for i in np.flatnonzero(ok):
            axes[2].annotate(str(i), (before[i], after[i]), fontsize=6)
        axes[2].set_xlabel(f"Ea series {a.series[0]} (kJ/mol)")
        axes[2].set_ylabel(f"Ea series {a.series[1]} (kJ/mol)")
        axes[2].set_title("The same particles before and after ablation")
    return _save(fig, path)


def fig_ensemble(a: Analysis, path: Path) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for n, k in enumerate(a.ensemble):
        label = f"{k.temperature_K:.1f} K" + (f" s{k.series}" if k.series > 1 else "")
        axes[0].plot(k.grid_s, k.mean_intensity, color=f"C{n % 10}", lw=1, label=label)
        axes[1].plot(k.grid_s, 1.0 - k.remaining, color=f"C{n % 10}", lw=1, label=label)
        if k.avrami_switched is not None:
            axes[1].plot(
                k.grid_s, k.avrami_switched.curve(k.grid_s), color=f"C{n % 10}", ls=":", lw=1
            )
    examples = _examples(a, 1)
    if examples and a.ensemble:
        i = examples[0]
        k = a.ensemble[0]
        j = a.cycles_at(k.series, k.temperature_K, used_only=False)[0]
        c = a.cycles[j]
        y = a.traces.intensity[c.first : c.first + len(k.grid_s), i]
        y = y / a.common[c.first : c.first + len(y)] / a.events.level[i, j]
        axes[0].plot(k.grid_s[: len(y)], y, color="k", lw=0.6, alpha=0.6, label=f"#{i} alone")
    axes[0].set_title("Ensemble average of traces (single particle in black)")
    axes[0].set_xlabel("time since the jump (s)")
    axes[0].set_ylabel("intensity / level before the jump")
    axes[0].legend(fontsize=7)
    axes[1].set_title("Switched fraction of particle-cycles; dotted: JMAK fit")
    axes[1].set_xlabel("time since the jump (s)")
    axes[1].legend(fontsize=7)
    return _save(fig, path)


def fig_common_mode(a: Analysis, path: Path) -> str:
    rec = a.recording
    fig, ax = plt.subplots(figsize=(10, 3))
    ax.plot(rec.time_s, a.common, lw=0.5, color="C0")
    ax.set_ylabel("common mode", color="C0")
    ax.set_xlabel("time (s)")
    twin = ax.twinx()
    twin.plot(rec.time_s, rec.temperature_K, lw=0.5, color="C3")
    twin.set_ylabel("setpoint (K)", color="C3")
    ax.set_title("Common-mode dimming (focal drift: a substrate thermometer)")
    return _save(fig, path)


def _table(rows: list[list[str]], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(a: Analysis, folder: Path) -> list[str]:
    """Write the figures and report.html into `folder`; returns the figure file names."""
    figures = folder / ANALYSIS_FIGURES_DIR
    figures.mkdir(exist_ok=True)
    names = [
        fig_detections(a, figures / "detections.png"),
        fig_traces(a, figures / "traces.png"),
        fig_histograms(a, figures / "histograms.png"),
        fig_arrhenius(a, figures / "arrhenius.png"),
        fig_population(a, figures / "ea_population.png"),
        fig_ensemble(a, figures / "ensemble.png"),
        fig_common_mode(a, figures / "common_mode.png"),
    ]
    s: dict[str, Any] = summary(a)
    facts = [
        ["input", str(s["input"])],
        ["frames", f"{s['frames']} of {s['frame_shape'][1]} x {s['frame_shape'][0]}"],
        ["particles (usable)", f"{s['particles']} ({s['usable_particles']})"],
        ["cycles (skipped per temperature)", f"{s['cycles']} ({s['skip_cycles']})"],
        ["events / censored", f"{s['events']} / {s['censored']}"],
    ]
    for series, pop in s["population"].items():
        if pop.get("particles_with_ea"):
            facts.append(
                [
                    f"Ea series {series}",
                    f"mean {pop['ea_mean_kj_mol']:.0f}, median {pop['ea_median_kj_mol']:.0f}, "
                    f"sd {pop['ea_sd_kj_mol'] or 0:.0f} kJ/mol over {pop['particles_with_ea']}"
                    f" particles; outliers (>= 2x mean): {pop['outliers_ea_at_least_twice_mean']}",
                ]
            )
    for series, fo in s["first_order_arrhenius"].items():
        if fo["ea_kj_mol"] is not None:
            facts.append([f"first-order ensemble Ea, series {series}", f"{fo['ea_kj_mol']:.0f}"])
    per_particle = []
    for i in range(len(a.detections)):
        f = a.fits[a.series[0]][i]
        per_particle.append(
            [
                str(i),
                f"{a.detections.x[i]:.1f}, {a.detections.y[i]:.1f}",
                f"{a.initial_intensity[i]:.0f}",
                f"{a.size_nm[i]:.0f}"
                if a.size_nm is not None and np.isfinite(a.size_nm[i])
                else "",
                f"{f.ea_kj_mol:.0f} ± {f.ea_stderr_kj_mol:.0f}"
                if math.isfinite(f.ea_kj_mol)
                else "",
                f"{f.n_events}/{f.n_events + f.n_censored}",
                f.status,
            ]
        )
    images = "".join(f'<p><img src="{ANALYSIS_FIGURES_DIR}/{n}" alt="{n}"></p>' for n in names)
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>tjump analysis</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:2px 6px}}
img{{max-width:100%}}</style></head><body>
<h1>Single-particle nucleation kinetics</h1>
{_table(facts, ["", ""])}
<p>Waiting times: Gamma (shape m, mean 1/k(T)), k = A exp(-Ea/RT), censored at the hold,
fitted jointly over temperatures by maximum likelihood; errors from the Hessian. Temperatures
are heater setpoints.</p>
{images}
<h2>Particles</h2>
{
        _table(
            per_particle,
            ["id", "x, y (px)", "intensity (ADU)", "size (nm)", "Ea (kJ/mol)", "events", "fit"],
        )
    }
</body></html>
"""
    (folder / ANALYSIS_REPORT).write_text(page, encoding="utf-8")
    return names
