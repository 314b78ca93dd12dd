"""A closed-loop run interrupted and resumed: the resumed session keeps its live rules
(on the particles the first session found), counts the cycles done before towards an
adaptive series, and neither redoes the heats that ended early nor the cycles a series
had already left out."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tjump.protocol.schedule import SegmentKind
from tjump.sequencer import FinishReason, RunPlan, open_run, plan_run, resume_run
from tjump.sequencer.closed_loop import ClosedLoop
from tjump.sequencer.history import live_history, read_live_particles
from tjump.sequencer.resume import open_resume
from tjump.sequencer.runner import Runner
from tjump.sim.rig import build_sim_rig
from tjump.storage import RunDirectory
from tjump.storage.bursts import read_bursts
from tjump.storage.decisions import DECISIONS_CSV
from tjump.storage.layout import FRAMES_CSV, LIVE_PARTICLES, LIVE_TRACES, FrameRecord
from tjump.storage.scan import read_table

from conftest import rig_yaml, series_protocol

WriteFile = Callable[[str, str], Path]
ADAPTIVE = (
    "    adaptive_hold: {end_when_switched: 0.8, min_hold_s: 3}\n"
    "    adaptive_cycles: {target_relative_precision: 0.25, min_cycles: 2, "
    "waiting_time_shape: 8}\n"
)


def plan_of(write_file: WriteFile, protocol: str) -> RunPlan:
    """`protocol` on a simulated rig of 10 particles and 2 references."""
    rig_file = write_file("rig.yaml", rig_yaml(particles=10, references=2))
    return plan_run(write_file("p.yaml", protocol), rig_file)


def abort_at_segment(runner: Runner, index: int) -> None:
    def on_frame(image: object, record: FrameRecord) -> None:
        if record.segment == index:
            runner.abort()

    runner.events.frame_acquired.connect(on_frame)


def test_a_resumed_adaptive_run_takes_up_its_rules_where_they_were(
    write_file: WriteFile, tmp_path: Path
) -> None:
    burst = "burst: {trigger: any, pre_s: 1.0, post_s: 0.04}\n"
    protocol = series_protocol("[384.9, 386.0]", cycles=6, heat_s=15, cool_s=5) + ADAPTIVE + burst
    plan = plan_of(write_file, protocol)
    heats = [s for s in plan.schedule.segments if s.kind is SegmentKind.HEAT]
    second = [s for s in heats if s.setpoint_K == 386.0]
    out = tmp_path / "run"
    with build_sim_rig(plan.rig) as rig:
        runner = open_run(plan, out, rig=rig)
        abort_at_segment(runner, second[1].index + 1)  # in the 2nd temperature's 2nd cool
        assert runner.run().status is FinishReason.ABORTED

    assert resume_run(out).status is FinishReason.COMPLETE
    rows = RunDirectory(out).frames_table()
    taken = Counter((int(r["session"]), int(r["segment"])) for r in rows if r["interrupted"] == "0")
    before = {seg for session, seg in taken if session == 0}
    after = {seg for session, seg in taken if session == 1}
    assert before and after and not before & after  # nothing done before is done again
    (restored,) = [e for e in RunDirectory(out).log() if e["event"] == "closed_loop_restored"]
    assert restored["heats"] == sum(s.index in before for s in heats)
    assert restored["series_ended"] == 1 and restored["frames_measured_again"] == 0
    with (out / DECISIONS_CSV).open(newline="") as f:
        decisions = list(csv.DictReader(f))
    ended = {int(d["segment"]): d["reason"] for d in decisions if d["decision"] == "series_ended"}
    # the first temperature ended its series before the interruption; the heats it left
    # out were left out for good
    first_end = min(ended)
    assert first_end in before | {s.index for s in heats if s.setpoint_K == 384.9}
    left_out = [s.index for s in heats if s.setpoint_K == 384.9 and s.index >= first_end]
    assert not {i for _, i in taken} & {*left_out, *(i + 1 for i in left_out)}
    # the resumed session's holds still end on the particles switching
    resumed_holds = [
        d for d in decisions if d["decision"] == "hold_ended" and int(d["segment"]) in after
    ]
    assert resumed_holds and any(d["reason"].startswith("switched") for d in resumed_holds)
    # and nucleations still fire the fast camera
    resumed_at = min(float(r["time_s"]) for r in rows if r["session"] == "1")
    bursts = [b for b in read_bursts(out) if b.trigger_time_s >= resumed_at]
    assert bursts
    # the second temperature's series counts the cycle done before the interruption
    done_before = [s.index for s in second if s.index in before]
    assert len(done_before) == 1
    end = max(ended)
    done_after = [s.index for s in second if s.index in after and s.index < end]
    reason = ended[end]
    cycles = len(done_before) + len(done_after)
    assert f"after {cycles} cycles" in reason or f"most cycles ({cycles})" in reason, reason


def test_live_rows_a_crash_lost_are_measured_again_from_the_frames(
    write_file: WriteFile, tmp_path: Path
) -> None:
    """Live traces reach the disk in blocks; the rows a crash lost come back from the
    pages, measured with the same apertures, to the written precision (0.1 count)."""
    plan = plan_of(write_file, series_protocol(cycles=3, heat_s=8, cool_s=4))
    out = tmp_path / "run"
    with build_sim_rig(plan.rig) as rig:
        runner = open_run(plan, out, rig=rig)
        abort_at_segment(runner, 5)  # in the third heat
        runner.run()
    rows = read_table(out / FRAMES_CSV).rows
    pages = {page.frame: page for page in RunDirectory(out).pages()}
    particles = read_live_particles(out)
    assert particles is not None
    whole = live_history(out, particles, rows, pages)
    assert whole is not None and len(whole.records) == len(rows)  # aborted: none cut yet
    traces = out / LIVE_TRACES
    lines = traces.read_text().splitlines(keepends=True)
    lines[40] = "59,12.5,abc\n"  # a damaged line: measured again too
    traces.write_text("".join(lines[:-150]))  # the last block and a half never written
    again = live_history(out, particles, rows, pages)
    assert again is not None
    assert [r.frame for r in again.records] == [r.frame for r in whole.records]
    assert whole.measured_again == 0 and again.measured_again == 151
    np.testing.assert_allclose(again.rows, whole.rows, atol=0.051)
    np.testing.assert_array_equal(again.baseline, whole.baseline)


def test_the_suspender_counts_the_resumes_of_earlier_sessions(
    write_file: WriteFile, tmp_path: Path
) -> None:
    """`max_resumes` holds for the whole run: a resumed session starts with the resumes
    the suspender already made."""
    suspend = (
        "suspend: {band_K: 5, current_jump_fraction: 0.05, max_resumes: 2, resume_after_s: 1}\n"
    )
    protocol = series_protocol(cycles=3, heat_s=8, cool_s=5) + suspend
    plan = plan_of(write_file, protocol)
    out = tmp_path / "run"
    with build_sim_rig(plan.rig) as rig:
        runner = open_run(plan, out, rig=rig)
        fault_at = plan.schedule.segments[1].first_frame + 30  # 3 s into the first heat
        injected = [False]

        def on_frame(_image: object, record: FrameRecord) -> None:
            if record.schedule_frame == fault_at and not injected[0]:
                injected[0] = True
                rig.faults.current_factor = 0.8  # the film's resistance seems to jump
            if record.segment == 3:
                runner.abort()

        runner.events.frame_acquired.connect(on_frame)
        runner.events.state_changed.connect(
            lambda state: setattr(rig.faults, "current_factor", 1.0) if state == "paused" else None
        )
        assert runner.run().status is FinishReason.ABORTED
    with (out / DECISIONS_CSV).open(newline="") as f:
        kinds = [d["decision"] for d in csv.DictReader(f)]
    assert kinds == ["suspended", "resumed"]
    session = open_resume(out)
    loop = session.runner.policy
    assert isinstance(loop, ClosedLoop) and loop.suspender is not None
    assert loop.suspender.resumes == 1
    session.runner.abort()  # nothing started; the rig is let go
    session.runner.run()


def test_a_run_stopped_before_finding_its_particles_finds_them_when_resumed(
    write_file: WriteFile, tmp_path: Path
) -> None:
    protocol = series_protocol(cycles=2, heat_s=15, cool_s=5) + ADAPTIVE
    plan = plan_of(write_file, protocol)
    out = tmp_path / "run"
    with build_sim_rig(plan.rig) as rig:
        runner = open_run(plan, out, rig=rig)

        def stop_early(_image: object, record: FrameRecord) -> None:
            if record.frame == 10:  # the particles are found in the first 20 frames
                runner.abort()

        runner.events.frame_acquired.connect(stop_early)
        runner.run()
    assert not (out / LIVE_PARTICLES).exists()
    assert resume_run(out).status is FinishReason.COMPLETE
    assert (out / LIVE_PARTICLES).is_file()
    with (out / DECISIONS_CSV).open(newline="") as f:
        holds = [d["reason"] for d in csv.DictReader(f) if d["decision"] == "hold_ended"]
    assert any(reason.startswith("switched") for reason in holds)
