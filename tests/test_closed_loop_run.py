"""Closed-loop runs on the simulated rig: adaptive holds and series, the band suspender
under injected heater faults, and fast-camera bursts fired by live nucleations."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from tjump.analysis.batch import BatchOptions, analyze_with
from tjump.analysis.growth import GROWTH_CSV
from tjump.protocol.schedule import Segment, SegmentKind
from tjump.sequencer import FinishReason, RunPlan, open_run, plan_run
from tjump.sequencer.closed_loop import ClosedLoop
from tjump.sequencer.decisions import DecisionKind, LiveDecision
from tjump.sequencer.runner import Decision, PolicyAbort, Runner
from tjump.sim.rig import SimRig, build_sim_rig
from tjump.storage import RunDirectory
from tjump.storage.decisions import DECISIONS_CSV
from tjump.storage.layout import FrameRecord

from conftest import rig_yaml, series_protocol

WriteFile = Callable[[str, str], Path]
SUSPEND = "suspend: {band_K: 5, current_jump_fraction: 0.05, max_resumes: 2, resume_after_s: 1}\n"


def make_plan(write_file: WriteFile, protocol: str) -> RunPlan:
    rig = write_file("rig.yaml", rig_yaml(particles=10, references=2))
    return plan_run(write_file("p.yaml", protocol), rig)


@pytest.fixture
def rig(write_file: WriteFile) -> Iterator[SimRig]:
    plan = make_plan(write_file, series_protocol())
    with build_sim_rig(plan.rig) as rig:
        yield rig


def decisions_on_disk(run: Path) -> list[dict[str, str]]:
    with (run / DECISIONS_CSV).open(newline="") as f:
        return list(csv.DictReader(f))


def frames_by_segment(run: Path, interrupted: bool = False) -> Counter[int]:
    rows = RunDirectory(run).frames_table()
    return Counter(int(r["segment"]) for r in rows if bool(int(r["interrupted"])) == interrupted)


def test_adaptive_holds_end_early_and_the_analysis_censors_there(
    write_file: WriteFile, rig: SimRig, tmp_path: Path
) -> None:
    adaptive = "    adaptive_hold: {end_when_switched: 0.8, min_hold_s: 3}\n"
    protocol = series_protocol("[377.7, 384.9]", cycles=3, heat_s=20, cool_s=6) + adaptive
    plan = make_plan(write_file, protocol)
    out = tmp_path / "run"
    result = open_run(plan, out, rig=rig).run()
    assert result.status is FinishReason.COMPLETE
    heats = [s for s in plan.schedule.segments if s.kind is SegmentKind.HEAT]
    frames = frames_by_segment(out)
    held = [frames[s.index] / s.frame_rate_hz for s in heats]
    assert all(3.0 <= h <= 20.0 for h in held)
    assert sum(held) < 0.8 * 20.0 * len(heats)  # most heats ended early
    assert result.frames < plan.schedule.total_frames
    # one reason per heat, on disk and in the log
    reasons = [d for d in decisions_on_disk(out) if d["decision"] == "hold_ended"]
    assert [int(d["segment"]) for d in reasons] == [s.index for s in heats]
    for d, h in zip(reasons, held, strict=True):
        assert d["reason"].startswith("longest" if h >= 20.0 else "switched")
    logged = [e for e in RunDirectory(out).log() if e["event"] == "decision"]
    assert len(logged) == len(reasons)
    # the analysis takes each cycle's own hold: a particle not switched is censored there
    a = analyze_with(out, tmp_path / "analysis", BatchOptions(figures=False))
    assert [round(c.hold_s, 6) for c in a.cycles] == pytest.approx(held, abs=1e-6)
    events = a.events.nucleation_s
    holds = np.array([c.hold_s for c in a.cycles])
    assert np.all(np.isnan(events) | (events <= holds[None, :] + 1e-9))


def test_adaptive_series_stops_once_precise(
    write_file: WriteFile, rig: SimRig, tmp_path: Path
) -> None:
    adaptive = (
        "    adaptive_cycles: {target_relative_precision: 0.25, min_cycles: 2, "
        "waiting_time_shape: 8}\n"
    )
    plan = make_plan(write_file, series_protocol(cycles=8, heat_s=15, cool_s=5) + adaptive)
    out = tmp_path / "run"
    result = open_run(plan, out, rig=rig).run()
    assert result.status is FinishReason.COMPLETE
    ran = {int(r["segment"]) for r in RunDirectory(out).frames_table()}
    heats = [s for s in plan.schedule.segments if s.kind is SegmentKind.HEAT]
    done = [s for s in heats if s.index in ran]
    assert 2 <= len(done) < 8
    ended = [d for d in decisions_on_disk(out) if d["decision"] == "series_ended"]
    assert len(ended) == 1 and "precision reached" in ended[0]["reason"]
    assert int(ended[0]["segment"]) == heats[len(done)].index  # the first heat left out
    # each heat done kept its cooling; none of the skipped ones left a frame
    assert all(s.index + 1 in ran for s in done)


def test_scaled_by_leverage_the_centre_of_a_series_stops_first(
    write_file: WriteFile, rig: SimRig, tmp_path: Path
) -> None:
    """Aimed at Ea, the centre temperature (in 1/T) of three needs 4x less precision: it
    stops at its fewest cycles, while the outer two go on to their most."""
    adaptive = (
        "    adaptive_cycles: {target_relative_precision: 0.1, min_cycles: 2, "
        "waiting_time_shape: 8, scale_by_leverage: true}\n"
    )
    temperatures = "[381.0, 384.9, 389.0]"
    protocol = series_protocol(temperatures, cycles=4, heat_s=10, cool_s=3) + adaptive
    plan = make_plan(write_file, protocol)
    out = tmp_path / "run"
    result = open_run(plan, out, rig=rig).run()
    assert result.status is FinishReason.COMPLETE
    # the skipped cycles take no time: the clock does not run through them
    assert result.experiment_s == pytest.approx(result.frames / 10.0, abs=0.2)
    ran = {int(r["segment"]) for r in RunDirectory(out).frames_table()}
    heats = Counter(
        round(s.setpoint_K, 1)
        for s in plan.schedule.segments
        if s.kind is SegmentKind.HEAT and s.index in ran
    )
    assert heats == {381.0: 4, 384.9: 2, 389.0: 4}
    ended = [d["reason"] for d in decisions_on_disk(out) if d["decision"] == "series_ended"]
    assert len(ended) == 1  # the outer two ran all their cycles: nothing to decide
    assert "precision reached after 2 cycles" in ended[0] and "known to 40%" in ended[0]


def watch_heater_after(
    runner_policy: ClosedLoop, rig: SimRig, events: object
) -> tuple[list[LiveDecision], list[tuple[float, bool]]]:
    """Decisions as they come, and the generator's real output at the first frame after
    each suspension (what an abort must reach by then: 0 V, output off)."""
    decided: list[LiveDecision] = []
    after: list[tuple[float, bool]] = []
    waiting = [False]

    def on_decision(decision: LiveDecision) -> None:
        decided.append(decision)
        if decision.kind is DecisionKind.SUSPENDED:
            waiting[0] = True

    def on_frame(_image: np.ndarray, _record: FrameRecord) -> None:
        if waiting[0]:
            waiting[0] = False
            after.append(rig.generator_output())

    runner_policy.decided.connect(on_decision)
    events.frame_acquired.connect(on_frame)  # type: ignore[attr-defined]
    return decided, after


def inject_at(rig: SimRig, events: object, schedule_frame: int, factor: float) -> None:
    """From frame `schedule_frame` on (first time only), the DAQ reads the film's current
    times `factor`: to the suspender, the film's resistance jumps."""
    done = [False]

    def on_frame(_image: np.ndarray, record: FrameRecord) -> None:
        if record.schedule_frame == schedule_frame and not done[0]:
            done[0] = True
            rig.faults.current_factor = factor

    events.frame_acquired.connect(on_frame)  # type: ignore[attr-defined]


def faulted_run(
    plan: RunPlan, out: Path, rig: SimRig, schedule_frame: int
) -> tuple[Runner, list[LiveDecision], list[tuple[float, bool]]]:
    """A closed-loop runner for `plan`, not started, whose film current reads 80 % from
    `schedule_frame` on; its decisions and the heater output after each suspension."""
    runner = open_run(plan, out, rig=rig)
    assert isinstance(runner.policy, ClosedLoop)
    decided, after = watch_heater_after(runner.policy, rig, runner.events)
    inject_at(rig, runner.events, schedule_frame, 0.8)
    return runner, decided, after


def test_a_transient_heater_fault_suspends_and_the_cycle_is_done_again(
    write_file: WriteFile, rig: SimRig, tmp_path: Path
) -> None:
    plan = make_plan(write_file, series_protocol(cycles=2, heat_s=8, cool_s=5) + SUSPEND)
    out = tmp_path / "run"
    runner, decided, after = faulted_run(plan, out, rig, 30 + 30)  # 3 s into the first heat
    # the fault is gone once the run has paused: the conditions are back
    runner.events.state_changed.connect(
        lambda state: setattr(rig.faults, "current_factor", 1.0) if state == "paused" else None
    )
    result = runner.run()
    assert result.status is FinishReason.COMPLETE
    kinds = [d.kind for d in decided]
    assert kinds == [DecisionKind.SUSPENDED, DecisionKind.RESUMED]
    assert after == [(0.0, False)]  # safe by the next frame, as an abort would be
    # the cut heat is kept, marked; the cycle was done again in full
    heat = plan.schedule.segments[1]
    assert frames_by_segment(out, interrupted=True)[heat.index] > 0
    assert frames_by_segment(out)[heat.index] == heat.frames
    assert frames_by_segment(out)[heat.index + 1] == plan.schedule.segments[2].frames
    log = RunDirectory(out).log()
    safe = [e for e in log if e["event"] == "heater_safe" and e.get("reason") == "suspension"]
    assert len(safe) == 1
    assert [e["decision"] for e in log if e["event"] == "decision"] == ["suspended", "resumed"]


def test_a_lasting_fault_aborts_after_the_stated_resumes(
    write_file: WriteFile, rig: SimRig, tmp_path: Path
) -> None:
    plan = make_plan(write_file, series_protocol(cycles=2, heat_s=8, cool_s=5) + SUSPEND)
    out = tmp_path / "run"
    runner, decided, after = faulted_run(plan, out, rig, 30 + 30)
    with pytest.raises(PolicyAbort, match="already resumed 2 of at most 2 times"):
        runner.run()
    kinds = Counter(d.kind for d in decided)
    assert kinds == {DecisionKind.SUSPENDED: 3, DecisionKind.RESUMED: 2, DecisionKind.ABORTED: 1}
    assert after == [(0.0, False)] * 3
    assert rig.generator_output() == (0.0, False) and rig.heater.is_safe()
    manifest = RunDirectory(out).manifest()
    assert manifest["status"] == "failed" and "suspension" in manifest["message"]


def test_an_ablation_is_never_resumed(write_file: WriteFile, rig: SimRig, tmp_path: Path) -> None:
    protocol = (
        "name: ablate\nframe_rate_hz: 10\nsteps:\n  - kind: baseline\n    duration_s: 3\n"
        "  - kind: ablation\n    temperature_K: 473\n    duration_s: 10\n    cool_s: 5\n" + SUSPEND
    )
    plan = make_plan(write_file, protocol)
    runner, decided, after = faulted_run(plan, tmp_path / "run", rig, 30 + 40)
    with pytest.raises(PolicyAbort, match="cannot be repeated"):
        runner.run()
    assert [d.kind for d in decided] == [DecisionKind.SUSPENDED, DecisionKind.ABORTED]
    assert after == [(0.0, False)]
    assert rig.generator_output() == (0.0, False)


def test_bursts_fired_by_live_nucleations_give_growth_within_1_ms(
    write_file: WriteFile, tmp_path: Path
) -> None:
    burst = "burst: {trigger: any, pre_s: 1.0, post_s: 0.04}\n"
    plan = make_plan(write_file, series_protocol(cycles=6, heat_s=10, cool_s=4) + burst)
    out = tmp_path / "run"
    with build_sim_rig(plan.rig) as rig:
        result = open_run(plan, out, rig=rig).run()
        truth = rig.model.particles
    assert result.status is FinishReason.COMPLETE
    fired = [d for d in decisions_on_disk(out) if d["decision"] == "burst"]
    assert len(fired) >= 10
    a = analyze_with(out, tmp_path / "analysis", BatchOptions(figures=False))
    assert a is not None
    with (tmp_path / "analysis" / GROWTH_CSV).open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["status"] == "ok"]
    with (out / "live-particles.csv").open(newline="") as f:
        live = list(csv.DictReader(f))
    checked = 0
    for row in rows:
        spot = live[int(row["particle_id"])]
        x, y = float(spot["x"]), float(spot["y"])
        i = int(np.argmin(np.hypot(truth.x - x, truth.y - y)))
        if truth.size_nm[i] >= 200:
            assert abs(float(row["growth_ms"]) - truth.growth_s[i] * 1e3) < 1.0, (row, i)
            checked += 1
    assert checked >= 3


def test_adaptive_cools_end_once_the_film_and_every_particle_are_back(
    write_file: WriteFile, rig: SimRig, tmp_path: Path
) -> None:
    """A cool ends once the particles are back in low spin and the film is within 5 % of
    the 91.9 K jump: long before its 40 s, with every particle that switched reverted
    (the simulator's own record), the real film within the band and the heater at 0 V,
    output off, at the next frame; the reason is on disk per cool."""
    adaptive = "    adaptive_cool: {film_within: 0.05, min_cool_s: 2}\n"
    protocol = series_protocol("[384.9]", cycles=3, heat_s=12, cool_s=40) + adaptive
    plan = make_plan(write_file, protocol)
    out = tmp_path / "run"
    runner = open_run(plan, out, rig=rig)
    assert isinstance(runner.policy, ClosedLoop)
    at_cut: list[tuple[float, tuple[float, bool]]] = []
    waiting = [False]

    def on_decision(decision: LiveDecision) -> None:
        waiting[0] = decision.kind is DecisionKind.COOL_ENDED

    def on_frame(_image: np.ndarray, _record: FrameRecord) -> None:
        if waiting[0]:
            waiting[0] = False
            at_cut.append((rig.film_temperature_K(), rig.generator_output()))

    runner.policy.decided.connect(on_decision)
    runner.events.frame_acquired.connect(on_frame)
    result = runner.run()
    assert result.status is FinishReason.COMPLETE
    cools = [s for s in plan.schedule.segments if s.kind is SegmentKind.COOL]
    frames = frames_by_segment(out)
    cooled = [frames[s.index] / s.frame_rate_hz for s in cools]
    assert all(2.0 <= c < 15.0 for c in cooled), cooled
    reasons = [d for d in decisions_on_disk(out) if d["decision"] == "cool_ended"]
    assert [int(d["segment"]) for d in reasons] == [s.index for s in cools]
    assert all(d["reason"].startswith("settled: ") for d in reasons)
    band = 0.05 * (384.9 - 293.0)
    assert len(at_cut) == len(cools)
    for film_K, output in at_cut:
        assert film_K - 293.0 <= band
        assert output == (0.0, False)
    # every particle that switched in a heat was back in low spin when its cool ended
    with (out / "sim-truth" / "transitions.csv").open(newline="") as f:
        moves = list(csv.DictReader(f))
    ends = [float(d["time_s"]) for d in reasons]
    for end in ends:
        high_spin: dict[str, bool] = {}
        for m in moves:
            if float(m["time_s"]) <= end:
                high_spin[m["particle_id"]] = m["direction"] == "LS->HS"
        assert not any(high_spin.values())
    up = [m for m in moves if m["direction"] == "LS->HS" and float(m["time_s"]) <= ends[-1]]
    assert len(up) >= 10  # particles did switch, and came back, before the cuts


@pytest.mark.parametrize("before_end", [1, 2])
def test_a_segment_ended_at_its_last_frames_leaves_the_next_one_its_frames(
    write_file: WriteFile,
    rig: SimRig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    before_end: int,
) -> None:
    """A hold (or a cool) that reaches its rule within the last frames of its segment,
    all of them already triggered: the next segment still gets a running pulse train
    (it used to wait for frames from triggers the cut had stopped, and fail)."""
    protocol = series_protocol("[384.9]", cycles=2, heat_s=5, cool_s=3) + (
        "    adaptive_hold: {end_when_switched: 1.0, min_hold_s: 5}\n"
    )
    plan = make_plan(write_file, protocol)
    out = tmp_path / "run"
    runner = open_run(plan, out, rig=rig)
    assert isinstance(runner.policy, ClosedLoop)
    heat = next(s for s in plan.schedule.segments if s.kind is SegmentKind.HEAT)
    decide = runner.policy.on_frame

    def late(segment: Segment, record: FrameRecord) -> Decision:
        decision = decide(segment, record)
        if segment.index == heat.index and record.schedule_frame == heat.end_frame - before_end:
            return Decision.END_SEGMENT
        return decision

    monkeypatch.setattr(runner.policy, "on_frame", late)
    result = runner.run()
    assert result.status is FinishReason.COMPLETE, result.message
    frames = frames_by_segment(out)
    assert frames[heat.index] >= heat.frames - before_end
    assert all(frames[s.index] == s.frames for s in plan.schedule.segments if s.index > heat.index)
