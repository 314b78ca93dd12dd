"""Writing an analysis into a folder: its tables, traces, figures, report and summary.

The files go into a temporary sibling that is renamed into place at the end, so an
interrupted or failed write never leaves a half-written result."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from tjump.analysis.model import Analysis
from tjump.analysis.tables import (
    common_mode_rows,
    ensemble_rows,
    event_rows,
    particle_rows,
    summary,
    temperature_rows,
    write_csv,
)
from tjump.errors import InputError
from tjump.storage.layout import (
    ANALYSIS_COMMON_MODE,
    ANALYSIS_ENSEMBLE,
    ANALYSIS_EVENTS,
    ANALYSIS_PARTICLES,
    ANALYSIS_SUMMARY,
    ANALYSIS_TEMPERATURES,
    ANALYSIS_TRACES,
)


def write_analysis(a: Analysis, output: Path, figures: bool = True) -> Path:
    """Write every output into `output` (created; a previous analysis there is replaced)."""
    if output.exists():
        if not output.is_dir():
            raise InputError(f"output {output} exists and is not a folder")
        if any(output.iterdir()) and not (output / ANALYSIS_SUMMARY).is_file():
            raise InputError(
                f"output folder {output} already holds files that are not an analysis; "
                "choose another"
            )
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    try:
        write_csv(staging / ANALYSIS_PARTICLES, particle_rows(a))
        write_csv(staging / ANALYSIS_EVENTS, event_rows(a))
        write_csv(staging / ANALYSIS_TEMPERATURES, temperature_rows(a))
        write_csv(staging / ANALYSIS_ENSEMBLE, ensemble_rows(a))
        write_csv(staging / ANALYSIS_COMMON_MODE, common_mode_rows(a))
        np.savez_compressed(
            staging / ANALYSIS_TRACES,
            intensity=a.traces.intensity.astype(np.float32),
            time_s=a.recording.time_s,
            common_mode=a.common,
            x=a.traces.x,
            y=a.traces.y,
            block_start=a.traces.block_start,
        )
        clock = time.perf_counter()
        if figures:
            from tjump.analysis.report import write_report  # matplotlib: only when drawing

            write_report(a, staging)
        a.timings["report_s"] = time.perf_counter() - clock
        (staging / ANALYSIS_SUMMARY).write_text(json.dumps(summary(a), indent=2), encoding="utf-8")
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
