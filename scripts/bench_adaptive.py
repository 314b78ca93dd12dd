"""Closed loop against fixed: the published series on the simulated rig, run as published
(configs/protocols/paper.yaml: every heat 50 s, 20 cycles per temperature) and as the
shipped adaptive example (configs/protocols/paper-adaptive.yaml), side by side on the same
samples (same seeds, same truth, same analysis): experiment time, and the relative error of
the activation energies `tjump analyze` finds, against the simulator's truth.

    python scripts/bench_adaptive.py [--seeds 1,2,3] [--jobs 2] [--size 96]
        [--adaptive configs/protocols/paper-adaptive.yaml] [--fixed configs/protocols/paper.yaml]
        [--workdir DIR] [--keep] [--results FILE]
    python scripts/bench_adaptive.py --pool FILE   # the figures over every seed in FILE

Each seed is one sample: its fixed and adaptive runs go one after the other in the same
worker (so they share the machine's load), `--jobs` seeds at a time. A median over one
sample's 18 particles moves by a point or two from seed to seed, so the figures that count
are over all seeds: the median over every particle of every seed, and the per-seed spread.

Goal (issue 13): at least 30 % less experiment time, median Ea error no worse. The field
is cropped to `--size` px (sim-small's 18 particles and 2 references) to keep a run's
100,000 frames cheap; runs are deleted after scoring unless --keep.

`--results FILE` appends each run's scores (per particle) to FILE as JSON lines, so seeds
benchmarked one call at a time (or one protocol at a time, `--only`) can be pooled
afterwards with `--pool FILE`. The pooled
comparison pairs each particle's error under the two protocols (same sample, same truth):
the median of the paired differences, the Wilcoxon signed-rank test on them, and the
seed-to-seed spread of the fixed protocol's own median for scale.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from tjump.analysis.kinetics import fit_arrhenius
from tjump.analysis.pipeline import analyze_recording
from tjump.analysis.truth import load_truth, true_nucleation
from tjump.sequencer import open_run, plan_run
from tjump.sim.rig import install

ROOT = Path(__file__).resolve().parent.parent
FIXED = ROOT / "configs" / "protocols" / "paper.yaml"
ADAPTIVE = ROOT / "configs" / "protocols" / "paper-adaptive.yaml"
MATCH_PX = 1.5


def rig_file(folder: Path, seed: int, size: int) -> Path:
    """sim-small's sample (18 particles, 2 references) on a `size` x `size` field."""
    text = (ROOT / "configs" / "rigs" / "sim-small.yaml").read_text()
    text = text.replace("../calibrations/", f"{ROOT / 'configs' / 'calibrations'}/")
    text = text.replace("  seed: 1", f"  seed: {seed}")
    text = text.replace("width: 256", f"width: {size}").replace("height: 256", f"height: {size}")
    path = folder / f"rig-{seed}.yaml"
    path.write_text(text)
    return path


def load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def ea_errors(out: Path) -> dict[str, Any]:
    """Analyse a run: per-particle relative Ea errors (analysis, and a fit of the true
    nucleation times on the same cycles), and each temperature's cycles and mean hold."""
    analysis = analyze_recording(out)
    truth = load_truth(out / "sim-truth")
    d = analysis.detections
    dist = np.hypot(d.x[:, None] - truth.x[None, :], d.y[:, None] - truth.y[None, :])
    true_t = true_nucleation(truth, analysis)
    chosen = analysis.cycles_at(1)
    temps = np.array([analysis.cycles[j].temperature_K for j in chosen])
    holds = np.array([analysis.cycles[j].hold_s for j in chosen])
    start = analysis.start_K[chosen] if analysis.start_K is not None else None
    errors, errors_true, particles = [], [], []
    for p in np.flatnonzero(~truth.is_reference):
        i = int(dist[:, p].argmin())
        if dist[i, p] > MATCH_PX:
            continue
        fitted = analysis.fits[1][i].ea_kj_mol
        on_true = fit_arrhenius(
            temps, true_t[p, chosen], holds, None, analysis.response, start, analysis.ambient_K
        ).ea_kj_mol
        if np.isfinite(fitted) and np.isfinite(on_true):
            errors.append(abs(fitted - truth.ea_kj_mol[p]) / truth.ea_kj_mol[p])
            errors_true.append(abs(on_true - truth.ea_kj_mol[p]) / truth.ea_kj_mol[p])
            particles.append(int(p))
    response = [[round(w, 4), round(tau, 3)] for w, tau in analysis.response or ()]
    per_t: dict[float, list[float]] = defaultdict(list)
    for t, h in zip(temps, holds, strict=True):
        per_t[round(float(t), 1)].append(float(h))
    return {
        "errors": errors,
        "errors_true": errors_true,
        "particles": particles,
        "thermometer": analysis.thermometry.get("used", "?"),
        "response": response,
        "per_temperature": {t: (len(h), float(np.mean(h))) for t, h in sorted(per_t.items())},
    }


def run_and_score(protocol: Path, rig: Path, out: Path, keep: bool) -> dict[str, Any]:
    """Run `protocol`, analyse it, score the Ea against the truth."""
    before = load()
    t = time.perf_counter()
    result = open_run(plan_run(protocol, rig), out).run()
    simulated = time.perf_counter() - t
    t = time.perf_counter()
    scored = ea_errors(out)
    analysed = time.perf_counter() - t
    if not keep:
        shutil.rmtree(out)
    return {
        "status": str(result.status),
        "experiment_s": result.experiment_s,
        "frames": result.frames,
        "simulated_s": simulated,
        "analysed_s": analysed,
        "load": f"{before} -> {load()}",
    } | scored


def one_seed(
    seed: int,
    work: Path,
    protocols: list[tuple[str, Path]],
    size: int,
    keep: bool,
    results: Path | None,
) -> list[Any]:
    """The fixed and the adaptive run of one sample, one after the other (each appended
    to `results` as soon as it is scored)."""
    install()
    rig = rig_file(work, seed, size)
    rows = []
    for name, protocol in protocols:
        r = run_and_score(protocol, rig, work / f"run-{name}-{seed}", keep)
        if results is not None:
            with results.open("a") as f:
                f.write(json.dumps({"seed": seed, "name": name} | r) + "\n")
        print(
            f"[seed {seed}, {name}] {r['status']} {r['experiment_s']:.0f} s of experiment, "
            f"{r['frames']} frames, simulated in {r['simulated_s']:.0f} s + analysed in "
            f"{r['analysed_s']:.0f} s, load {r['load']}; median Ea error "
            f"{median(r['errors']):.4f} (true times {median(r['errors_true']):.4f}, "
            f"n={len(r['errors'])}); per temperature (cycles, mean hold s) "
            f"{r['per_temperature']}; film step response {r['thermometer']} {r['response']}",
            flush=True,
        )
        rows.append((seed, name, r))
    return rows


def median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--adaptive", type=Path, default=ADAPTIVE)
    parser.add_argument("--fixed", type=Path, default=FIXED)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--results", type=Path, default=None, help="append scores (JSON lines)")
    parser.add_argument("--pool", type=Path, default=None, help="only summarise this file")
    parser.add_argument("--only", choices=("fixed", "adaptive"), default=None)
    args = parser.parse_args()
    if args.pool is not None:
        rows = [json.loads(line) for line in args.pool.read_text().splitlines() if line]
        summarise([(r["seed"], r["name"], r) for r in rows])
        return
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tjump-adaptive-"))
    work.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"load average at start {load()} (2 cores); {args.jobs} seeds at a time", flush=True)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [
            pool.submit(
                one_seed,
                s,
                work,
                [
                    (name, path.resolve())
                    for name, path in (("fixed", args.fixed), ("adaptive", args.adaptive))
                    if args.only in (None, name)
                ],
                args.size,
                args.keep,
                args.results,
            )
            for s in seeds
        ]
        rows = [row for f in futures for row in f.result()]
    print(f"\nall runs in {time.perf_counter() - t0:.0f} s; load average at end {load()}")
    if args.only is None:
        summarise(rows)


def summarise(rows: list[Any]) -> None:
    """Per seed and pooled over the seeds: time saved, Ea errors, and the paired test."""
    seeds = sorted({seed for seed, _, _ in rows})
    print("\nseed  protocol  status    experiment  frames   Ea err median (true times)  n")
    for seed, name, r in rows:
        print(
            f"{seed:4d}  {name:8s}  {r['status']:8s}  {r['experiment_s']:8.0f} s  "
            f"{r['frames']:6d}   {median(r['errors']):.4f} ({median(r['errors_true']):.4f})"
            f"            {len(r['errors'])}   load {r['load']}"
        )
    print("\ncycles and mean hold per temperature:")
    for seed, name, r in rows:
        cells = ", ".join(
            f"{float(t):g} K {n} x {h:.1f} s" for t, (n, h) in r["per_temperature"].items()
        )
        print(f"  seed {seed} {name:8s}: {cells}")
    saved, spread, paired = [], [], []
    for seed in seeds:
        fixed = next(r for s, n, r in rows if s == seed and n == "fixed")
        adapt = next(r for s, n, r in rows if s == seed and n == "adaptive")
        saved.append(1.0 - adapt["experiment_s"] / fixed["experiment_s"])
        spread.append((median(fixed["errors"]), median(adapt["errors"])))
        by_particle = dict(zip(fixed.get("particles", []), fixed["errors"], strict=True))
        for p, e in zip(adapt.get("particles", []), adapt["errors"], strict=True):
            if p in by_particle:
                paired.append(e - by_particle[p])
        print(
            f"seed {seed}: adaptive takes {saved[-1]:.1%} less experiment time; median Ea "
            f"error {spread[-1][1]:.2%} adaptive against {spread[-1][0]:.2%} fixed "
            f"({spread[-1][1] - spread[-1][0]:+.2%})"
        )
    totals = {
        name: [e for _, n, r in rows if n == name for e in r["errors"]]
        for name in ("fixed", "adaptive")
    }
    on_true = {
        name: [e for _, n, r in rows if n == name for e in r["errors_true"]] for name in totals
    }
    time_total = {name: sum(r["experiment_s"] for _, n, r in rows if n == name) for name in totals}
    print(
        f"\nover {len(seeds)} seeds: adaptive "
        f"{1 - time_total['adaptive'] / time_total['fixed']:.1%} "
        f"less experiment time ({time_total['adaptive']:.0f} s against "
        f"{time_total['fixed']:.0f} s); median Ea error over all "
        f"{len(totals['adaptive'])} / {len(totals['fixed'])} particles: "
        f"{median(totals['adaptive']):.2%} adaptive, {median(totals['fixed']):.2%} fixed "
        f"(fit on true times {median(on_true['adaptive']):.2%}, "
        f"{median(on_true['fixed']):.2%}); per-seed medians fixed "
        f"{min(f for f, _ in spread):.2%}-{max(f for f, _ in spread):.2%}, adaptive "
        f"{min(a for _, a in spread):.2%}-{max(a for _, a in spread):.2%}"
    )
    differences = [a - f for f, a in spread]
    if len(seeds) > 1:
        print(
            f"per-seed difference of the medians (adaptive - fixed): mean "
            f"{np.mean(differences):+.2%}, sd {np.std(differences, ddof=1):.2%}; sd of the "
            f"fixed medians between seeds {np.std([f for f, _ in spread], ddof=1):.2%}"
        )
    if len(paired) >= 6:
        test = stats.wilcoxon(paired)
        print(
            f"paired by particle ({len(paired)} pairs): median difference "
            f"{np.median(paired):+.2%}, adaptive better for "
            f"{sum(d < 0 for d in paired)}, worse for {sum(d > 0 for d in paired)}; "
            f"Wilcoxon signed-rank p = {test.pvalue:.3f}"
        )


if __name__ == "__main__":
    main()
