"""One summary across many analysed runs: a table of runs linked to their reports, every
particle's Ea pooled, Ea against size per sample, and Ea before and after ablation."""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np

from tjump.analysis.batch import RunOutcome
from tjump.analysis.tables import write_csv
from tjump.storage.layout import (
    ANALYSIS_FIGURES_DIR,
    ANALYSIS_REPORT,
    BATCH_EA_ABLATION,
    BATCH_EA_VS_SIZE,
    BATCH_INDEX,
    BATCH_PARTICLES,
    BATCH_RUNS,
    BATCH_SAMPLES,
)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _link(outcome: RunOutcome, root: Path) -> str:
    """The run's report (or folder), relative to the summary."""
    folder = Path(outcome.output)
    report = folder / ANALYSIS_REPORT
    target = report if report.is_file() else folder
    try:
        return str(target.relative_to(root))
    except ValueError:
        return str(target)


def run_rows(outcomes: list[RunOutcome], root: Path) -> tuple[list[str], list[list[str]]]:
    series = sorted({s for o in outcomes for s in o.series}) or [1]
    header = ["run", "sample", "status", "frames", "particles", "usable", "events"]
    header += [f"ea_median_series{s}_kj_mol" for s in series]
    header += ["seconds", "results", "error"]
    rows = []
    for o in outcomes:
        rows.append(
            [
                o.source,
                o.sample,
                "ok" if o.ok else "failed",
                str(o.frames),
                str(o.particles),
                str(o.usable),
                str(o.events),
                *[_fmt(o.ea_median_kj_mol.get(s)) for s in series],
                f"{o.seconds:.1f}",
                _link(o, root) if o.ok else "",
                o.error,
            ]
        )
    return header, rows


def sample_rows(outcomes: list[RunOutcome]) -> tuple[list[str], list[list[str]]]:
    """Per sample and series: particles pooled over its runs, median Ea, Ea-size slope."""
    header = [
        "sample",
        "series",
        "runs",
        "particles",
        "ea_median_kj_mol",
        "ea_mean_kj_mol",
        "ea_sd_kj_mol",
        "ea_vs_size_slope_kj_mol_per_100nm",
    ]
    rows = []
    for sample in sorted({o.sample for o in outcomes if o.ok}):
        mine = [o for o in outcomes if o.ok and o.sample == sample]
        for series in sorted({p[0] for o in mine for p in o.particle_ea}):
            points = np.array([(p[2], p[3]) for o in mine for p in o.particle_ea if p[0] == series])
            ea = points[:, 1]
            sized = np.isfinite(points[:, 0])
            slope = (
                float(np.polyfit(points[sized, 0], ea[sized], 1)[0] * 100)
                if sized.sum() >= 3
                else math.nan
            )
            runs = sum(1 for o in mine if any(p[0] == series for p in o.particle_ea))
            rows.append(
                [
                    sample,
                    str(series),
                    str(runs),
                    str(len(ea)),
                    _fmt(float(np.median(ea))),
                    _fmt(float(np.mean(ea))),
                    _fmt(float(np.std(ea, ddof=1)) if len(ea) > 1 else math.nan),
                    _fmt(slope, 2),
                ]
            )
    return header, rows


def particle_rows(outcomes: list[RunOutcome]) -> tuple[list[str], list[list[str]]]:
    header = ["run", "sample", "series", "particle_id", "size_nm", "ea_kj_mol"]
    rows = [
        [o.source, o.sample, str(s), str(i), _fmt(size), _fmt(ea, 2)]
        for o in outcomes
        if o.ok
        for s, i, size, ea in o.particle_ea
    ]
    return header, rows


def _figures(outcomes: list[RunOutcome], folder: Path) -> list[str]:
    """Ea against size per sample (one colour each; series after ablation hollow) and the
    pooled Ea before and after ablation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(exist_ok=True)
    made = []
    ok = [o for o in outcomes if o.ok]
    samples = sorted({o.sample for o in ok})
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, sample in enumerate(samples):
        colour = f"C{k % 10}"
        for series in (1, 2):
            pts = [
                (p[2], p[3])
                for o in ok
                if o.sample == sample
                for p in o.particle_ea
                if p[0] == series
            ]
            if not pts or not any(math.isfinite(x) for x, _ in pts):
                continue
            x, y = np.array(pts).T
            face = colour if series == 1 else "none"
            label = sample if series == 1 else f"{sample}, after ablation"
            ax.scatter(x, y, s=12, facecolors=face, edgecolors=colour, label=label)
    if ax.collections:
        ax.set_xlabel("size (nm)")
        ax.set_ylabel("Ea (kJ/mol)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / BATCH_EA_VS_SIZE, dpi=110)
        made.append(f"{ANALYSIS_FIGURES_DIR}/{BATCH_EA_VS_SIZE}")
    plt.close(fig)
    before = [p[3] for o in ok for p in o.particle_ea if p[0] == 1]
    after = [p[3] for o in ok for p in o.particle_ea if p[0] == 2]
    if before:
        fig, ax = plt.subplots(figsize=(6, 4))
        bins = np.linspace(0, max(before + after) * 1.05, 40).tolist()
        ax.hist(before, bins=bins, alpha=0.6, label=f"before ablation ({len(before)})")
        if after:
            ax.hist(after, bins=bins, alpha=0.6, label=f"after ablation ({len(after)})")
        ax.set_xlabel("Ea (kJ/mol)")
        ax.set_ylabel("particles, all runs")
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / BATCH_EA_ABLATION, dpi=110)
        made.append(f"{ANALYSIS_FIGURES_DIR}/{BATCH_EA_ABLATION}")
        plt.close(fig)
    return made


def _html_table(table: tuple[list[str], list[list[str]]], link_column: str = "") -> str:
    header, rows = table
    k = header.index(link_column) if link_column in header else -1
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for j, value in enumerate(row):
            text = html.escape(value)
            if j == k and value:
                text = f'<a href="{text}">{text}</a>'
            cells.append(f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def write_batch_summary(
    outcomes: list[RunOutcome], output: Path, figures: bool = True
) -> dict[str, int]:
    """runs.csv, particles.csv, samples.csv, figures/ and index.html in `output`; returns
    the counts of runs that succeeded and failed."""
    output.mkdir(parents=True, exist_ok=True)
    runs = run_rows(outcomes, output)
    samples = sample_rows(outcomes)
    write_csv(output / BATCH_RUNS, runs)
    write_csv(output / BATCH_PARTICLES, particle_rows(outcomes))
    write_csv(output / BATCH_SAMPLES, samples)
    images = _figures(outcomes, output / ANALYSIS_FIGURES_DIR) if figures else []
    ok = sum(o.ok for o in outcomes)
    page = [
        "<!doctype html><meta charset='utf-8'><title>tjump: many runs</title>",
        "<style>td,th{padding:2px 8px;text-align:left}</style>",
        f"<h1>{ok} of {len(outcomes)} runs analysed</h1>",
        "<h2>Samples</h2>",
        _html_table(samples),
        *[f'<p><img src="{src}"></p>' for src in images],
        "<h2>Runs</h2>",
        _html_table(runs, "results"),
    ]
    (output / BATCH_INDEX).write_text("\n".join(page), encoding="utf-8")
    return {"ok": ok, "failed": len(outcomes) - ok}
