"""An interrupted run (aborted, or killed outright) resumes at the next whole cycle in its
own directory: nothing taken before is lost, the gap is recorded, the run completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest

from tjump.sequencer import Runner, open_run, plan_run, resume_run, run_plan
from tjump.sim.rig import build_sim_rig
from tjump.storage import RunDirectory

from conftest import rig_yaml, series_protocol

WriteFile = Callable[[str, str], Path]


def test_aborted_run_resumes_at_the_next_whole_cycle(write_file: WriteFile) -> None:
    rig_file = write_file("rig.yaml", rig_yaml(width=64, height=64, particles=4, references=1))
    protocol = write_file("p.yaml", series_protocol(cycles=3, heat_s=4, cool_s=2, baseline_s=1))
    plan = plan_run(protocol, rig_file)
    out = protocol.parent / "out"
    cool_of_cycle_2 = plan.schedule.segments[4]
    assert (cool_of_cycle_2.kind, cool_of_cycle_2.cycle) == ("cool", 2)

    def abort_in_second_cool(seq: Runner) -> None:
        def on_frame(image: object, record: object) -> None:
            if getattr(record, "segment", -1) == cool_of_cycle_2.index:
                seq.abort()

        seq.events.frame_acquired.connect(on_frame)

    with build_sim_rig(plan.rig) as rig:
        runner = open_run(plan, out, rig=rig)
        abort_in_second_cool(runner)
        first = runner.run()
    assert first.status == "aborted"
    frames_before = RunDirectory(out).frame_count()

    second = resume_run(out)
    assert second.status == "complete"
    run = RunDirectory(out)
    rows = run.frames_table()
    assert run.frame_count() == len(rows)
    segments = [int(r["segment"]) for r in rows]
    # the interrupted cool is not repeated; the run goes on with cycle 3's heat
    assert segments[frames_before - 1] == cool_of_cycle_2.index
    assert segments[frames_before] == cool_of_cycle_2.index + 1
    assert sorted(set(segments)) == list(range(len(plan.schedule.segments)))
    times = [float(r["time_s"]) for r in rows]
    assert all(b > a for a, b in pairwise(times))  # one timeline
    # one number per frame, in the order taken; the cut cycle kept and marked
    assert [int(r["frame"]) for r in rows] == list(range(len(rows)))
    cut = {int(r["segment"]) for r in rows if r["interrupted"] == "1"}
    assert cut == {cool_of_cycle_2.index - 1, cool_of_cycle_2.index}
    assert {r["session"] for r in rows if r["interrupted"] == "1"} == {"0"}
    assert sum(r["session"] == "1" for r in rows) == second.session_frames
    manifest = run.manifest()
    assert manifest["status"] == "complete"
    assert manifest["sessions"][0]["at_segment"] == cool_of_cycle_2.index + 1
    assert any(e["event"] == "run_resumed" for e in run.log())


def test_resuming_a_complete_run_is_refused(write_file: WriteFile) -> None:
    rig_file = write_file("rig.yaml", rig_yaml(width=48, height=48, particles=2, references=1))
    protocol = write_file("p.yaml", series_protocol(cycles=1, heat_s=1, cool_s=1, baseline_s=1))
    run_plan(plan_run(protocol, rig_file), protocol.parent / "out")
    done = subprocess.run(
        [sys.executable, "-m", "tjump", "resume", str(protocol.parent / "out")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "already complete" in done.stderr
    assert "Traceback" not in done.stderr


def _start_run(tmp: Path, rig: Path, protocol: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tjump",
            "run",
            str(protocol),
            "--rig",
            str(rig),
            "-o",
            str(tmp / "out"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_frames(out: Path, n: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        table = out / "frames.csv"
        if table.exists() and table.read_text().count("\n") > n:
            return
        time.sleep(0.05)
    pytest.fail("the run did not get going")


@pytest.fixture
def long_run(write_file: WriteFile) -> tuple[Path, Path, Path]:
    """A 64 x 64 rig and 20 cycles of 50 s / 50 s: about 10 s of wall time."""
    rig = write_file("rig.yaml", rig_yaml(width=64, height=64, particles=4, references=1))
    protocol = write_file("p.yaml", series_protocol(cycles=20, heat_s=50, cool_s=50))
    return protocol.parent, rig, protocol


def test_sigterm_aborts_with_the_heater_safe_and_frames_kept(
    long_run: tuple[Path, Path, Path],
) -> None:
    tmp, rig, protocol = long_run
    proc = _start_run(tmp, rig, protocol)
    _wait_for_frames(tmp / "out", 500, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    run = RunDirectory(tmp / "out")
    assert run.manifest()["status"] == "aborted"
    events = [e["event"] for e in run.log()]
    assert "heater_safe" in events  # verified by reading the generator back
    assert run.frame_count() == len(run.frames_table()) >= 500
    assert "Traceback" not in err


def test_sigkill_leaves_readable_frames_and_resume_completes(
    long_run: tuple[Path, Path, Path],
) -> None:
    tmp, rig, protocol = long_run
    proc = _start_run(tmp, rig, protocol)
    _wait_for_frames(tmp / "out", 1500, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    run = RunDirectory(tmp / "out")
    assert run.manifest()["status"] == "running"  # what a crash leaves
    rows_before = len(run.frames_table())
    pages_before = run.frame_count()  # every page written before the kill reads back
    assert pages_before >= 1500 and abs(pages_before - rows_before) <= 1
    first_frames = run.read_frames_range(0, 10)
    assert first_frames.shape == (10, 64, 64)

    done = subprocess.run(
        [sys.executable, "-m", "tjump", "resume", str(tmp / "out")],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,  # the rest of 20 cycles, on a busy machine
    )
    assert done.returncode == 0, done.stderr
    run = RunDirectory(tmp / "out")
    assert run.manifest()["status"] == "complete"
    assert run.frame_count() >= len(run.frames_table()) > rows_before
    resumed = [e for e in run.log() if e["event"] == "run_resumed"]
    assert len(resumed) == 1 and resumed[0]["gap_s"] >= 0
