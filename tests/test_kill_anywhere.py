"""Kill a run anywhere: SIGKILL, SIGTERM, SIGINT, or a power cut that leaves every file
cut at a random byte; it resumes to a run that verify, analyze and export accept, with
every frame readable after the stop still there with its pixels, time and temperature.
(scripts/bench_kill_anywhere.py does the same at 100 moments.)"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tjump.sequencer import plan_run

from conftest import ROOT


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    scripts = str(ROOT / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)  # the fork server imports the script's child function
    spec = importlib.util.spec_from_file_location(
        "bench_kill_anywhere", ROOT / "scripts" / "bench_kill_anywhere.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_kill_anywhere"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("kind", "fraction"),
    [("SIGKILL", 0.1), ("SIGTERM", 0.45), ("SIGINT", 0.7), ("power cut", 0.9)],
)
def test_a_run_stopped_anywhere_resumes_whole(
    bench: ModuleType, tmp_path: Path, kind: str, fraction: float
) -> None:
    protocol, rig = bench.small_inputs(tmp_path, pixels=96, quick=True)
    total = plan_run(protocol, rig).schedule.total_frames
    trial = bench.run_trial(tmp_path, protocol, rig, kind, round(fraction * total), seed=3)
    assert trial.ok, trial.problem
    # the schedule ran to its end; or it had, by the moment the stop took effect (its
    # closed loop can end the run there: about 1 trial in 10 on a loaded machine)
    assert trial.status == "complete" or trial.finished_before
    if kind != "power cut":
        assert trial.frames_before >= round(fraction * total)
