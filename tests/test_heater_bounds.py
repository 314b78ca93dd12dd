"""Every heated step bounded in the instrument, the arm time checked against the 0 V phase
before it, per-train trigger / exposure / frame counts compared, and a software-timed
camera given its frame period. Whole runs on the simulated rig, its generator on a
loopback socket."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tjump.errors import InputError
from tjump.protocol.schedule import Segment
from tjump.sequencer import Runner, open_run, plan_run, run_plan
from tjump.sim.rig import build_sim_rig
from tjump.storage import RunDirectory

from conftest import rig_yaml, series_protocol

WriteFile = Callable[[str, str], Path]
HOLD = """
name: hold
frame_rate_hz: 10
steps:
  - {kind: baseline, duration_s: 1}
  - {kind: hold, temperature_K: 380.0, duration_s: 3}
  - {kind: hold, duration_s: 2}
"""


def small_rig(write_file: WriteFile, extra: str = "") -> Path:
    return write_file("rig.yaml", rig_yaml(width=48, height=48, particles=4, references=1) + extra)


def events(run: Path, name: str) -> list[dict[str, object]]:
    lines = (run / "log.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == name]


def test_a_hold_is_a_pulse_the_generator_ends_even_if_the_computer_dies(
    write_file: WriteFile,
) -> None:
    plan = plan_run(write_file("p.yaml", HOLD), small_rig(write_file))
    with build_sim_rig(plan.rig) as rig:
        server = rig.instrument("generator")
        seen: list[tuple[float, float]] = []

        def connect(seq: Runner) -> None:
            def pull_cable(segment: Segment) -> None:
                if segment.kind == "hold" and segment.setpoint_K > 300:
                    server.faults.pulled = True  # the computer is gone from here on
                    rig.clock.run_to(rig.clock.now() + 2.9)
                    seen.append((rig.clock.now(), rig.generator_output()[0]))
                    rig.clock.run_to(rig.clock.now() + 0.2)  # past the hold's 3 s
                    seen.append((rig.clock.now(), rig.generator_output()[0]))
                    seq.abort()

            seq.events.segment_started.connect(pull_cable)

        runner = open_run(plan, write_file("x", "").parent / "out", rig=rig)
        connect(runner)
        runner.run()
        server.faults.pulled = False
        (_, during), (_, after) = seen
        assert during == pytest.approx(rig.heater.drive_for(380.0), abs=1e-5)
        assert after == 0.0  # ended by the generator, nobody told it to
    started = events(write_file("y", "").parent / "out", "segment_started")
    assert [(e["kind"], e["bounded_by_instrument"]) for e in started] == [
        ("baseline", False),
        ("hold", True),
    ]


def test_a_whole_protocol_with_holds_runs_bounded(write_file: WriteFile) -> None:
    out = write_file("x", "").parent / "out"
    result = run_plan(plan_run(write_file("p.yaml", HOLD), small_rig(write_file)), out)
    assert result.status == "complete" and result.frames == 60
    kinds = [(e["kind"], e["bounded_by_instrument"]) for e in events(out, "segment_started")]
    assert kinds == [("baseline", False), ("hold", True), ("hold", False)]  # last at ambient


def test_check_refuses_a_cool_phase_shorter_than_the_arm_time(write_file: WriteFile) -> None:
    protocol = write_file("p.yaml", series_protocol(cycles=2, heat_s=2, cool_s=0.3))
    with pytest.raises(InputError, match=r"steps\.1\.cool_s: 0\.3 s at 0 V before the heat step is "
                       r"shorter than .* devices\.generator\.arm_time_s 0\.5 s"):  # fmt: skip
        plan_run(protocol, small_rig(write_file))
    fast = "devices:\n  generator: {arm_time_s: 0.1}\n"
    assert plan_run(protocol, small_rig(write_file, fast)).schedule.total_frames > 0


def test_each_pulse_train_counts_triggers_exposures_and_frames(write_file: WriteFile) -> None:
    protocol = write_file("p.yaml", series_protocol(cycles=2, heat_s=2, cool_s=1, baseline_s=1))
    out = write_file("x", "").parent / "out"
    result = run_plan(plan_run(protocol, small_rig(write_file)), out)
    counted = events(out, "pulse_train_counted")
    assert [(c["triggers"], c["exposures"], c["frames"]) for c in counted] == [(70, 70, 70)]
    assert result.frames == 70
    assert RunDirectory(out).manifest()["pulse_train_mismatches"] == 0


def test_on_a_real_time_clock_frames_exposed_after_a_train_ends_are_not_the_next_trains(
    write_file: WriteFile,
) -> None:
    """Triggers go on while a train's last frames are saved, so a few exposures come after
    its last segment's end and reach the computer late. They are counted with their own
    train (no false mismatch) and left out, so the next train's first frame is the first
    one it triggered, not one exposed before its segment began."""
    rig = small_rig(write_file).read_text().replace("200.0", "1000.0")  # DAQ rate, camera max
    steps = "".join(
        "  - {kind: baseline, duration_s: 0.5}\n  - {kind: wait, duration_s: 0.2}\n"
        for _ in range(4)
    )
    protocol = write_file(
        "p.yaml", f"name: trains\nframe_rate_hz: 200\nexposure_ms: 2.5\nsteps:\n{steps}"
    )
    plan = plan_run(protocol, write_file("rig.yaml", rig))
    out = write_file("x", "").parent / "out"
    with build_sim_rig(plan.rig) as sim:
        sim.clock.pace(1.0)  # time runs on by itself, as in the lab
        try:
            result = run_plan(plan, out, rig=sim)
        finally:
            sim.clock.stop()
    assert (result.status, result.frames, result.dropped_frames) == ("complete", 400, 0)
    counted = events(out, "pulse_train_counted")
    assert len(counted) == 4 and not events(out, "pulse_train_mismatch")
    assert all(c["triggers"] == c["exposures"] == c["frames"] for c in counted)
    assert all(int(c["triggers"]) == 100 + int(c["after_end"]) for c in counted)
    with (out / "frames.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    triggered_before = 0
    for train, c in enumerate(counted):
        first = rows[100 * train]
        assert int(first["camera_frame"]) == triggered_before  # its own first exposure
        triggered_before += int(c["triggers"])


def test_an_exposure_the_daq_did_not_count_is_recorded(write_file: WriteFile) -> None:
    protocol = write_file("p.yaml", series_protocol(cycles=2, heat_s=2, cool_s=1, baseline_s=1))
    plan = plan_run(protocol, small_rig(write_file))
    out = write_file("x", "").parent / "out"
    with build_sim_rig(plan.rig) as rig:
        rig.faults.exposure_line_cut_after = 40  # the exposure-out cable comes off
        result = run_plan(plan, out, rig=rig)
    assert result.status == "complete"
    [mismatch] = events(out, "pulse_train_mismatch")
    assert (mismatch["triggers"], mismatch["exposures"], mismatch["frames"]) == (70, 40, 70)
    assert RunDirectory(out).manifest()["pulse_train_mismatches"] == 1


def test_a_software_timed_camera_runs_at_the_protocols_frame_rate(write_file: WriteFile) -> None:
    software = "devices:\n  camera: {triggering: software}\n"
    protocol = write_file("p.yaml", series_protocol(cycles=1, heat_s=1, cool_s=1, fps=5))
    plan = plan_run(protocol, small_rig(write_file, software))
    with build_sim_rig(plan.rig) as rig:
        started: list[float] = []
        start = rig.camera.start

        def spy(n_frames: int) -> None:
            started.append(rig.camera.interval_ms)  # type: ignore[attr-defined]
            start(n_frames)

        rig.camera.start = spy  # type: ignore[method-assign]
        run_plan(plan, write_file("x", "").parent / "out", rig=rig)
    assert started == [200.0]  # 5 frames/s, not free-running at interval 0
