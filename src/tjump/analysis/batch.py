"""Many recordings analysed in parallel on a Dask cluster.

Each recording is one task: the whole single-run analysis (`analyze_recording` and
`write_analysis`) into its own folder, in a worker process. A task never raises: a bad or
failing recording comes back as a failed `RunOutcome` with its message, and the other runs go
on. What comes back to the client is small (counts and per-particle size and Ea), so the
summary across runs (`batch_summary`) needs no second pass over the runs' files.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tjump.analysis.growth import GROWTH_CSV, growth_from_run, write_growth_table
from tjump.analysis.model import Analysis
from tjump.analysis.output import write_analysis
from tjump.analysis.pipeline import analyze_recording
from tjump.analysis.sizing import load_size_calibration
from tjump.analysis.zarr_recording import is_ome_zarr
from tjump.errors import InputError, TjumpError
from tjump.storage.layout import FRAMES_CSV, GENERIC_FRAMES, MANIFEST, ZARR_JSON

Response = tuple[tuple[float, float], ...]


def is_recording(path: Path) -> bool:
    """A run directory, an OME-Zarr export, or a generic folder (frames.tif + frames.csv)."""
    if not path.is_dir():
        return False
    generic = (path / GENERIC_FRAMES).is_file() and (path / FRAMES_CSV).is_file()
    return (path / MANIFEST).is_file() or is_ome_zarr(path) or generic


def find_recordings(paths: list[Path]) -> list[Path]:
    """Each path that is a recording, else the recordings directly inside it (a folder of
    runs), in name order; InputError when a path is neither."""
    found: list[Path] = []
    for path in paths:
        if is_recording(path):
            found.append(path)
            continue
        inside = sorted(p for p in path.iterdir() if is_recording(p)) if path.is_dir() else []
        if not inside:
            raise InputError(
                f"{path} is neither a recording (run directory, OME-Zarr export, frames.tif + "
                "frames.csv) nor a folder of recordings"
            )
        found.extend(inside)
    return found


def output_names(sources: list[Path]) -> list[str]:
    """One folder name per recording, unique even when two runs share a name."""
    names: list[str] = []
    for source in sources:
        name = source.name.removesuffix(".zarr").removesuffix(".ome")
        candidate, k = name, 2
        while candidate in names:
            candidate, k = f"{name}-{k}", k + 1
        names.append(candidate)
    return names


@dataclass(frozen=True)
class BatchOptions:
    """The single-run options, applied to every run."""

    calibration: Path | None = None
    skip_cycles: int = 0
    ablation_K: float = 450.0
    response: Response | None = None  # forces this step response on every run
    thermometer: str = "auto"
    inert: Path | None = None
    figures: bool = True
    keep_interrupted: bool = False


@dataclass
class RunOutcome:
    """What one run's task returns: its result or why it failed."""

    source: str
    output: str
    ok: bool
    seconds: float
    error: str = ""
    sample: str = ""
    frames: int = 0
    particles: int = 0
    usable: int = 0
    events: int = 0
    series: list[int] = field(default_factory=list)
    ea_median_kj_mol: dict[int, float | None] = field(default_factory=dict)
    # per usable particle with an Ea: (series, particle id, size nm or nan, Ea kJ/mol)
    particle_ea: list[tuple[int, int, float, float]] = field(default_factory=list)


def sample_name(source: Path) -> str:
    """The sample a run filmed: the manifest's `sample` if recorded, else rig and seed for
    a simulated rig (the seed makes the sample), else the rig; a generic folder's name."""
    manifest: dict[str, Any] = {}
    if (source / MANIFEST).is_file():
        manifest = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    elif is_ome_zarr(source):
        meta = json.loads((source / ZARR_JSON).read_text(encoding="utf-8"))
        manifest = meta.get("attributes", {}).get("tjump", {}).get("manifest", {})
    if manifest.get("sample"):
        return str(manifest["sample"])
    if manifest.get("rig"):
        seed = f" seed {manifest['seed']}" if manifest.get("simulated") else ""
        return f"{manifest['rig']}{seed}"
    return source.name


def analyze_with(source: Path, output: Path, options: BatchOptions) -> Analysis:
    """Analyse one recording with `options` and write its tables (and figures) to
    `output`; raises `InputError` naming what is wrong with an input."""
    if options.inert is not None and not options.inert.is_file():
        raise InputError(f"--inert {options.inert}: file not found")
    calibration = load_size_calibration(options.calibration) if options.calibration else None
    a = analyze_recording(
        source,
        calibration,
        skip_cycles=options.skip_cycles,
        ablation_K=options.ablation_K,
        response=options.response,
        thermometer=options.thermometer,
        inert_file=options.inert,
        keep_interrupted=options.keep_interrupted,
    )
    write_analysis(a, output, figures=options.figures)
    growth = growth_from_run(source)  # the fast camera's bursts, where the run has some
    if growth:
        write_growth_table(growth, output / GROWTH_CSV)
    return a


def analyze_one(source: Path, output: Path, options: BatchOptions) -> RunOutcome:
    """The single-run analysis of `source` into `output`; never raises."""
    clock = time.perf_counter()
    outcome = RunOutcome(str(source), str(output), ok=False, seconds=0.0)
    try:
        outcome.sample = sample_name(source)
        a = analyze_with(source, output, options)
        outcome.frames, outcome.particles = a.recording.frames, len(a.detections)
        outcome.usable, outcome.events = int(a.detections.usable.sum()), a.event_count
        outcome.series = list(a.series)
        size = a.size_nm if a.size_nm is not None else np.full(len(a.detections), np.nan)
        for series in a.series:
            pop = a.populations[series]
            outcome.ea_median_kj_mol[series] = (
                pop.ea_median_kj_mol if pop.particles_with_ea else None
            )
            for i, fit in enumerate(a.fits[series]):
                if a.detections.usable[i] and np.isfinite(fit.ea_kj_mol):
                    outcome.particle_ea.append((series, i, float(size[i]), fit.ea_kj_mol))
        outcome.ok = True
    except TjumpError as e:
        outcome.error = str(e)
    except Exception as e:  # a bug or a crash in one run must not stop the others
        last = traceback.extract_tb(e.__traceback__)[-1]
        outcome.error = f"{type(e).__name__}: {e} (at {Path(last.filename).name}:{last.lineno})"
    outcome.seconds = time.perf_counter() - clock
    return outcome


def run_batch(
    sources: list[Path],
    output: Path,
    options: BatchOptions,
    client: Any,
    on_done: Callable[[RunOutcome], None] | None = None,
) -> list[RunOutcome]:
    """Analyse every source on the Dask `client` (a distributed.Client), each into
    output/<name>; outcomes in the order of `sources`. `on_done` is called as each run
    finishes. A worker that dies takes only its run with it (reported as failed)."""
    from distributed import as_completed

    targets = [output / name for name in output_names(sources)]
    futures = [
        client.submit(analyze_one, source, target, options, pure=False)
        for source, target in zip(sources, targets, strict=True)
    ]
    index = {future.key: k for k, future in enumerate(futures)}
    outcomes: list[RunOutcome | None] = [None] * len(sources)
    for future in as_completed(futures):
        k = index[future.key]
        try:
            outcome: RunOutcome = future.result()
        except Exception as e:  # the worker died (memory, signal): the task never returned
            outcome = RunOutcome(
                str(sources[k]), str(targets[k]), ok=False, seconds=0.0, error=f"worker: {e}"
            )
        outcomes[k] = outcome
        if on_done is not None:
            on_done(outcome)
    return [o for o in outcomes if o is not None]
