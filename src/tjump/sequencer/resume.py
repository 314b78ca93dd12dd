"""Resuming an interrupted run in its own directory, at the next whole cycle."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

from tjump.errors import InputError
from tjump.protocol import Schedule
from tjump.protocol.schedule import SegmentKind
from tjump.rig import build_rig
from tjump.sequencer.closed_loop import ClosedLoop
from tjump.sequencer.events import RunResult
from tjump.sequencer.history import live_history, read_live_particles
from tjump.sequencer.launch import make_runner
from tjump.sequencer.plan import plan_run
from tjump.sequencer.runner import SEGMENT_FINISHED, SEGMENT_SKIPPED, Runner
from tjump.sequencer.states import FinishReason
from tjump.storage import RunDirectory
from tjump.storage.layout import FRAMES_CSV, RUN_PROTOCOL, RUN_RIG
from tjump.storage.repair import mark_segments, repair
from tjump.storage.scan import Row, read_table
from tjump.storage.verify import read_manifest, require_consistent
from tjump.storage.writer import RunWriter

_HEATINGS = (SegmentKind.HEAT, SegmentKind.ABLATION)  # each followed by its cooling


def unfinished_segments(run: RunDirectory, schedule: Schedule, rows: list[Row]) -> list[int]:
    """Segments not done: never logged as finished (or skipped, by an adaptive series that
    had its cycles), or whose last frame is not on disk (a power cut can lose frames the
    log saw written). The last frame is the one the log names; a log from before it named
    one has the schedule's last frame of the segment (a segment ended early by the closed
    loop logs its own)."""
    taken = {r["frame"] for r in rows if not r.get("missing")}
    placed = {r.get("schedule_frame", r["frame"]) for r in rows if not r.get("missing")}
    finished, checked = set(), set()
    for event in run.log():
        kind, segment = event.get("event"), event.get("segment")
        if kind == SEGMENT_SKIPPED:  # no frames to look for
            finished.add(segment)
            checked.add(segment)
        elif kind == SEGMENT_FINISHED:
            last = event.get("last_frame")
            if last is None:
                finished.add(segment)
            elif last < 0 or last in taken:
                finished.add(segment)
                checked.add(segment)
    return [
        seg.index
        for seg in schedule.segments
        if seg.index not in finished
        or (seg.index not in checked and seg.frames and seg.end_frame - 1 not in placed)
    ]


def resume_point(run: RunDirectory, schedule: Schedule, rows: list[Row] | None = None) -> int:
    """Index of the segment to resume at: the first not done that is not the cooling half
    of a cycle (the next whole cycle), or -1 if nothing is left."""
    if rows is None:
        rows = read_table(run.path / FRAMES_CSV).rows
    undone = set(unfinished_segments(run, schedule, rows))
    for seg in schedule.segments:
        if seg.index in undone and seg.kind is not SegmentKind.COOL:
            return seg.index
    return -1


def _cut_short(schedule: Schedule, undone: list[int], start: int) -> set[int]:
    """Segments whose frames so far belong to a cycle not finished: those done again from
    `start` on, and a cooling skipped with the heating before it."""
    cut = {i for i in undone if i < start} | {s.index for s in schedule.segments[start:]}
    kinds = {s.index: s.kind for s in schedule.segments}
    for i in list(cut):
        if kinds.get(i) is SegmentKind.COOL and kinds.get(i - 1) in _HEATINGS:
            cut.add(i - 1)
    return cut


@dataclass(frozen=True)
class ResumeResult:
    """How a resumed session ended, with the whole run's totals and the repair before it."""

    session: RunResult
    run_frames: int  # readable frames of the whole run now
    run_frames_planned: int  # frames of the whole schedule
    interrupted_frames: int  # frames of cycles cut short and redone (kept, marked)
    repairs: list[str]


@dataclass(frozen=True)
class ResumeSession:
    """A resumed session ready to start: its runner, and what the repair before it did."""

    runner: Runner
    path: Path
    run_frames_planned: int
    repairs: list[str]

    def outcome(self, session: RunResult) -> ResumeResult:
        """The whole run's totals once the session has ended."""
        rows = read_table(self.path / FRAMES_CSV).rows
        interrupted = sum(1 for r in rows if r.get("interrupted"))
        return ResumeResult(
            session, session.frames, self.run_frames_planned, interrupted, self.repairs
        )


def resume_run(directory: Path | str) -> RunResult:
    """Continue an interrupted run in its own directory at the next whole cycle; the
    frames already taken stay, and the gap is recorded in the log and the manifest."""
    return resume_run_checked(directory).session


def resume_run_checked(directory: Path | str) -> ResumeResult:
    """`resume_run`, telling also what the repair before it did and the run's totals."""
    resumed = open_resume(directory)
    return resumed.outcome(resumed.runner.run())


def open_resume(directory: Path | str) -> ResumeSession:
    """Prepare to continue an interrupted run: its runner, not yet started.

    The run directory is first made consistent (`repair`: a torn page cut, a row a crash
    lost rebuilt from its page, the unfinished cycle marked interrupted), then new frames
    are numbered on from the highest number the run holds."""
    path = Path(directory)
    manifest = read_manifest(path)
    if manifest.get("status") == FinishReason.COMPLETE:
        raise InputError(f"run {path} is already complete; nothing to resume")
    repairs = repair(path)
    verdict = require_consistent(path, "resume")
    run = RunDirectory(path)
    manifest = run.manifest()
    plan = plan_run(run.path / RUN_PROTOCOL, run.path / RUN_RIG)
    rows = verdict.table.rows
    start = resume_point(run, plan.schedule, rows)
    if start >= 0:
        undone = unfinished_segments(run, plan.schedule, rows)
        marked = mark_segments(path, _cut_short(plan.schedule, undone, start))
        if marked:
            repairs.append(f"{FRAMES_CSV}: {marked} frames of cycles done again marked interrupted")
    if start < 0:
        raise InputError(
            f"run {run.path} has finished every step, though its status is "
            f"'{manifest.get('status')}'; nothing to resume (analyse or export it as it is)"
        )
    frames_done = len(verdict.pages)
    last_time = max((float(r["time_s"]) for r in rows), default=0.0)
    gap_s = max(0.0, time.time() - (run.path / FRAMES_CSV).stat().st_mtime)
    offset = last_time + 1.0 / plan.schedule.frame_rate_hz + gap_s
    schedule = plan.schedule.from_segment(start)
    sessions = [
        *manifest.get("sessions", []),
        {
            "resumed": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "at_segment": start,
            "time_offset_s": round(offset, 6),
            "gap_s": round(gap_s, 3),
            "frames_before": frames_done,
            "first_frame": verdict.next_frame,
        },
    ]
    rig = build_rig(plan.rig, manifest.get("seed"))
    try:
        writer = RunWriter(
            run.path,
            {**manifest, "frames": frames_done, "sessions": sessions},
            rig.daq.channels,
            rig.daq.sample_rate_hz,
            resume=True,
            next_frame=verdict.next_frame,
        )
        writer.log(
            "run_resumed",
            at_segment=start,
            time_s=offset,
            gap_s=gap_s,
            frames_before=frames_done,
            first_frame=verdict.next_frame,
        )
        found = read_live_particles(path)
        history = live_history(path, found, rows, verdict.pages) if found is not None else None
        runner = make_runner(
            rig,
            schedule,
            writer,
            time_offset_s=offset,
            # the first session's particles, or found now if it found none (ids must not
            # change within a run: none if their earlier traces are unreadable)
            online_traces=history is not None or found is None,
            particles=history.particles if history is not None else None,
            own_rig=True,
            protocol=plan.protocol,
        )
        if isinstance(runner.hooks, ClosedLoop) and history is not None:
            writer.log("closed_loop_restored", **runner.hooks.restore(history, plan.schedule))
    except BaseException:
        rig.close()
        raise
    return ResumeSession(runner, path, plan.schedule.total_frames, repairs)
