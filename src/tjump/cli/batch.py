"""`tjump analyze RUN RUN ...`: many runs on a Dask cluster, one progress bar, one summary."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tjump.analysis.batch import BatchOptions, RunOutcome, run_batch
from tjump.analysis.batch_summary import write_batch_summary
from tjump.cli.console import console
from tjump.errors import InputError
from tjump.storage.layout import BATCH_INDEX

# Dask starts its workers with MALLOC_TRIM_THRESHOLD_=65536, which turns off glibc's
# adaptive mmap threshold: then every array over 128 kB is a fresh mmap whose pages fault in
# one by one: 23x the page faults of one run analysed alone and a third more processor
# time. A run's task frees all it allocated when it ends, so the workers keep glibc's
# defaults, as one process analysing runs one after another does. Each worker's profiler
# samples its thread's stack every 10 ms for the dashboard, which this cluster does not
# serve: about a tenth of a run's processor time (scripts/bench_batch.py --dask-defaults).
WORKER_CONFIG = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.worker.profile.enabled": False,
}


def local_cluster(workers: int | None) -> Any:
    """A local cluster of worker processes, one a core, each one thread (the analysis is
    NumPy and Python, holding the GIL in places) with one BLAS thread (Dask's default),
    with `WORKER_CONFIG`."""
    import dask
    from distributed import LocalCluster

    with dask.config.set(WORKER_CONFIG):  # read as the workers' nannies are made
        return LocalCluster(
            n_workers=workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )


def _client(scheduler: str | None, workers: int | None) -> Any:
    """A client of the scheduler at `scheduler`, else of a new `local_cluster`."""
    from distributed import Client

    if scheduler:
        try:
            return Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as e:
            raise InputError(f"--scheduler {scheduler}: no Dask scheduler answers ({e})") from e
    return Client(local_cluster(workers))


def analyze_many(
    sources: list[Path],
    output: Path,
    options: BatchOptions,
    scheduler: str | None,
    workers: int | None,
) -> None:
    """Analyse `sources` in parallel into output/<name> and summarise them; exit code 1
    if any run failed (each failure is named), 0 otherwise."""
    if output.exists() and not output.is_dir():
        raise InputError(f"output {output} exists and is not a folder")
    columns = (
        TextColumn("analysing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("runs"),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    failed: list[RunOutcome] = []
    client = _client(scheduler, workers)
    try:
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("", total=len(sources))

            def done(outcome: RunOutcome) -> None:
                if not outcome.ok:
                    failed.append(outcome)
                    console.print(f"[bold red]failed:[/] {outcome.source}: {outcome.error}")
                bar.update(task, advance=1, description=Path(outcome.source).name)

            outcomes = run_batch(sources, output, options, client, done)
    finally:
        cluster = client.cluster
        client.close()
        if cluster is not None and not scheduler:
            cluster.close()
    counts = write_batch_summary(outcomes, output, figures=options.figures)
    typer.echo(
        f"{counts['ok']} of {len(outcomes)} runs analysed"
        + (f", {counts['failed']} failed" if counts["failed"] else "")
        + f" -> {output / BATCH_INDEX}"
    )
    if failed:
        raise typer.Exit(1)
