"""`tjump analyze RUN RUN ...` on Dask: every run analysed as alone, a failing run reported
without stopping the others, one summary across runs."""

from __future__ import annotations

import csv
import os
import shutil
import sys
from pathlib import Path

import pytest

from tjump.analysis import batch
from tjump.analysis.batch import BatchOptions, analyze_one, find_recordings, output_names
from tjump.analysis.batch_summary import write_batch_summary
from tjump.cli import main
from tjump.errors import InputError
from tjump.sequencer import plan_run, run_plan
from tjump.storage import RunDirectory
from tjump.storage.zarr_export import export_ome_zarr

from conftest import rig_yaml, series_protocol


def run_cli(*args: str) -> int:
    saved = sys.argv
    sys.argv = ["tjump", *args]
    try:
        main()
    except SystemExit as e:
        return int(e.code or 0)
    finally:
        sys.argv = saved
    return 0


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of recordings: two samples (seeds 3 and 4), sample 3 also as its OME-Zarr
    export, and a run whose frames.csv lost its last rows (cannot be analysed)."""
    folder = tmp_path_factory.mktemp("batch")
    (folder / "p.yaml").write_text(
        series_protocol("[381.0, 384.9]", cycles=2, heat_s=12, cool_s=6, baseline_s=4)
    )
    runs = folder / "runs"
    for seed in (3, 4):
        (folder / f"rig{seed}.yaml").write_text(
            rig_yaml(width=64, height=64, particles=8, references=1, seed=seed)
        )
        plan = plan_run(folder / "p.yaml", folder / f"rig{seed}.yaml")
        assert run_plan(plan, runs / f"seed{seed}", seed=seed).status == "complete"
    export_ome_zarr(RunDirectory(runs / "seed3"), runs / "seed3.ome.zarr")
    shutil.copytree(runs / "seed4", runs / "truncated")
    table = runs / "truncated" / "frames.csv"
    table.write_text("\n".join(table.read_text().splitlines()[:-20]) + "\n")
    return runs


def test_folder_of_runs_on_a_local_cluster(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = run_cli("analyze", str(runs), "-o", str(out), "--workers", "2", "--no-figures")
    assert code == 1  # one run failed
    err = capsys.readouterr()
    assert "3 of 4 runs analysed, 1 failed" in err.out
    table = {Path(r["run"]).name: r for r in _rows(out / "runs.csv")}
    assert [table[n]["status"] for n in sorted(table)] == ["ok", "ok", "ok", "failed"]
    reason = table["truncated"]["error"]  # the single-run message, named as it failed
    assert "truncated" in reason and " ".join(err.err.split()).count(" ".join(reason.split()))
    # the export is analysed exactly as its run directory
    assert (out / "seed3" / "particles.csv").read_text() == (
        out / "seed3-2" / "particles.csv"
    ).read_text()
    assert table["seed3"]["results"] == "seed3" and (out / "seed3" / "summary.json").is_file()
    samples = {r["sample"]: r for r in _rows(out / "samples.csv")}
    assert set(samples) == {"test-rig seed 3", "test-rig seed 4"}
    assert samples["test-rig seed 3"]["runs"] == "2"
    pooled = _rows(out / "particles.csv")
    per_run = sum(
        1
        for name in ("seed3", "seed3-2", "seed4")
        for r in _rows(out / name / "particles.csv")
        if r["usable"] == "1" and r["ea_kj_mol"]
    )
    assert len(pooled) == per_run > 0
    index = (out / "index.html").read_text()
    assert "3 of 4 runs analysed" in index and 'href="seed4"' in index


def test_existing_scheduler_is_used(runs: Path, tmp_path: Path) -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        out = tmp_path / "out"
        before = cluster.scheduler.transition_counter
        code = run_cli(
            "analyze",
            str(runs / "seed4"),
            str(runs / "seed3.ome.zarr"),
            "-o",
            str(out),
            "--scheduler",
            address,
            "--no-figures",
        )
        assert code == 0
        assert cluster.scheduler.transition_counter > before  # the work went through it
        assert len(cluster.workers) == 1  # and the cluster is left running
    assert [Path(r["run"]).name for r in _rows(out / "runs.csv")] == ["seed4", "seed3.ome.zarr"]


def test_a_crash_in_one_run_is_an_outcome_not_an_exception(
    runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(batch, "analyze_recording", broken)
    outcome = analyze_one(runs / "seed4", tmp_path / "x", BatchOptions())
    assert not outcome.ok and outcome.error.startswith("ZeroDivisionError: division by zero")
    assert not (tmp_path / "x").exists()


def test_summary_figures_and_unique_names(runs: Path, tmp_path: Path) -> None:
    outcomes = [
        analyze_one(runs / n, tmp_path / n, BatchOptions(figures=False)) for n in ("seed3",)
    ]
    counts = write_batch_summary(outcomes, tmp_path, figures=True)
    assert counts == {"ok": 1, "failed": 0}
    assert (tmp_path / "figures" / "ea_ablation.png").stat().st_size > 1000
    assert output_names([Path("a/run"), Path("b/run"), Path("c/run.ome.zarr")]) == [
        "run",
        "run-2",
        "run-3",
    ]


def test_a_path_that_is_no_recording_is_named(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty is neither a recording"):
        find_recordings([tmp_path / "empty"])
    assert run_cli("analyze", str(tmp_path / "empty"), "-o", str(tmp_path / "o")) == 2


def test_local_workers_keep_the_default_allocator_and_one_blas_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Dask's MALLOC_TRIM_THRESHOLD_ made each run fault in 23x the pages it does alone;
    its profiler sampled each worker's stack for a dashboard the local cluster has not."""
    import dask
    from distributed import Client

    from tjump.cli.batch import local_cluster

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with local_cluster(2) as cluster, Client(cluster) as client:
        names = ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
        seen = client.run(lambda: [os.environ.get(name) for name in names])
        profiling = client.run(lambda: dask.config.get("distributed.worker.profile.enabled"))
        threads = {w.nthreads for w in cluster.scheduler.workers.values()}
    assert list(seen.values()) == [[None, "1", "1"]] * 2 and threads == {1}
    assert list(profiling.values()) == [False, False]
