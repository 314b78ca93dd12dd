"""The closed loop: a run that reacts to what the particles and the heater do
(docs/closed-loop.md).

`ClosedLoop` is the runner's policy and one of its sinks. It follows the live traces with
the live nucleation detector and decides, frame by frame:

- an adaptive heat ends once the stated fraction of the tracked particles has switched
  (between its shortest and longest hold);
- an adaptive cool ends once every tracked particle is back in low spin and the film is
  back within the stated fraction of the jump (between its shortest and longest cool);
- an adaptive temperature stops once every particle's mean nucleation time is known to the
  stated precision (decided before each of its heats);
- the heater leaving its band, or its current jumping, suspends the run: the heater is made
  safe at once, the run pauses, and after the pause the interrupted cycle starts again, or
  the run aborts;
- a nucleation in the chosen particle (or any) fires the fast camera; the burst is saved.

Each decision goes to the run's log, to `decisions.csv` and to `decided` listeners.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import pairwise
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from psygnal import Signal

from tjump.analysis import Detections
from tjump.analysis.adaptive import (
    CoolEnd,
    HoldEnd,
    cool_end,
    hold_end,
    leverage_target,
    series_decision,
)
from tjump.analysis.live import LiveDetector
from tjump.devices.fastcamera import FastCamera, Roi
from tjump.devices.interfaces import Daq, DaqBlock, DaqChannel, DaqLine
from tjump.errors import InputError, TjumpError
from tjump.protocol.schedule import Schedule, Segment, SegmentKind
from tjump.protocol.schema import AdaptiveCool, Burst, Protocol, SeriesStep, series_steps
from tjump.rig.build import Rig
from tjump.sequencer.decisions import DecisionKind, LiveDecision
from tjump.sequencer.engine import Note, RigEngine
from tjump.sequencer.history import LiveHistory
from tjump.sequencer.runner import Decision
from tjump.sequencer.sinks import Ending, Sink
from tjump.sequencer.suspender import (
    ExpectedFilm,
    HeaterReading,
    Suspender,
    Suspension,
    Verdict,
)
from tjump.storage.bursts import BurstWriter
from tjump.storage.decisions import DecisionTable
from tjump.storage.layout import FrameRecord

FloatArray = NDArray[np.float64]
INERT_AFTER_HEATS = 3  # a particle never seen to switch in this many heats stops counting
BURST_ROI_PX = 17
BURST_TIMEOUT_S = 5.0
KEEP_RECORDS = 4096  # frame records waiting for their traces (the first wait for detection)


class SuspensionAbort(TjumpError):
    """A suspension the run cannot come back from (the heater is safe)."""


def series_step(protocol: Protocol, segment: Segment) -> SeriesStep | None:
    """The series step a heat or cool segment comes from (None for any other)."""
    if segment.kind not in (SegmentKind.HEAT, SegmentKind.COOL):
        return None
    node: object = protocol
    for part in segment.field.split("."):
        if isinstance(node, SeriesStep):
            break
        node = node[int(part)] if part.isdigit() else getattr(node, part, None)  # type: ignore[index]
    return node if isinstance(node, SeriesStep) else None


def uses_closed_loop(protocol: Protocol) -> bool:
    """Whether any closed-loop field is set (a plain protocol runs without the loop)."""

    adaptive = any(
        s.adaptive_hold or s.adaptive_cool or s.adaptive_cycles
        for s in series_steps(protocol.steps)
    )
    return protocol.suspend is not None or protocol.burst is not None or adaptive


@dataclass
class _Heat:
    """One heat of an adaptive series: each particle's nucleation time, and its hold."""

    key: str  # the temperature it belongs to (the field of its setpoint)
    waits: FloatArray
    hold_s: float = float("nan")


@dataclass
class _Temperature:
    heats: list[_Heat] = field(default_factory=list)
    stopped: bool = False


class ClosedLoop(Sink):
    """The runner's policy and sink for a protocol with closed-loop fields."""

    decided = Signal(LiveDecision)

    def __init__(
        self,
        protocol: Protocol,
        schedule: Schedule,
        ambient_K: float,
        step_response: Sequence[tuple[float, float]] | None,
        current_column: int,
        now: Callable[[], float],
        table: DecisionTable,
        fast_camera: FastCamera | None = None,
        bursts: BurstWriter | None = None,
        shape: tuple[int, int] = (0, 0),
        trigger_line: Callable[[], None] | None = None,
    ) -> None:
        self.protocol = protocol
        self._series = {s.index: series_step(protocol, s) for s in schedule.segments}
        self._setpoints = {s.index: s.setpoint_K for s in schedule.segments}
        self._cool_seen = ""  # what the cool in progress waits for (for its reason)
        self._now = now
        self._table = table
        rule = protocol.suspend
        self.suspender = (
            Suspender(rule.band_K, rule.current_jump_fraction, rule.max_resumes, rule.settle_s)
            if rule is not None
            else None
        )
        self._expected = ExpectedFilm(step_response, ambient_K) if step_response else None
        self._ambient_K = ambient_K
        self._current_column = current_column
        self._idle_current_A = 0.0
        self.detector: LiveDetector | None = None
        self._usable: NDArray[np.bool_] | None = None
        self._xy: tuple[FloatArray, FloatArray] | None = None
        self._records: dict[int, FrameRecord] = {}  # frames whose traces are to come
        self._ever_switched: NDArray[np.bool_] | None = None
        self._heats_done = 0
        self._starts: dict[int, float] = {}  # segment -> time of its first frame
        self._last: FrameRecord | None = None
        self._heat_rows: dict[int, _Heat] = {}
        self._temperatures: dict[str, _Temperature] = {}
        self._skipped: set[int] = set()
        self._ended: set[int] = set()  # heats whose hold has been ended
        self._suspension: Suspension | None = None
        self._suspended_segment: Segment | None = None
        self._paused_at: float | None = None  # when the pause of a suspension began
        self._redo: int | None = None
        self._attempt: list[int] = []  # frames of the cycle in progress
        self.interrupted_frames: list[int] = []
        self._notes: list[Note] = []
        self.decisions: list[LiveDecision] = []
        self._burst: Burst | None = protocol.burst
        self._camera = fast_camera if self._burst is not None else None
        self._bursts = bursts
        self._shape = shape
        self._trigger_line = trigger_line
        self._burst_due: tuple[float, float, int] | None = None  # (read at, trigger, particle)
        if self._camera is not None and self._burst is not None:
            self._camera.arm(self._burst.pre_s, self._burst.post_s)

    def restore(self, history: LiveHistory, whole: Schedule) -> dict[str, int]:
        """Take up a resumed run where its earlier sessions left off: their particles and
        whole cycles fed to the live detector, each adaptive heat's nucleation times and
        hold, and the temperatures whose series already ended (which stay ended); `whole`
        is the run's whole schedule (this session's starts later). Returns what was taken
        up, for the run's log."""
        particles = history.particles
        self._usable, self._xy = particles.usable, (particles.x, particles.y)
        self.detector = LiveDetector(history.baseline, particles.usable)
        self._ever_switched = np.zeros(len(particles), dtype=bool)
        segments = {s.index: s for s in whole.segments}
        first: dict[int, FrameRecord] = {}
        last: dict[int, FrameRecord] = {}
        for record, row in zip(history.records, history.rows, strict=True):
            segment = segments.get(record.segment)
            if segment is None:
                continue
            first.setdefault(segment.index, record)
            last[segment.index] = record
            step = series_step(self.protocol, segment)
            if segment.kind is SegmentKind.HEAT and step is not None:
                self._open_heat(segment, step)
            for event in self.detector.add_record(record, row).events:
                self._count_nucleation(event.particle, event.segment, event.nucleation_s)
        for index, record in first.items():
            segment = segments[index]
            if segment.kind is not SegmentKind.HEAT:
                continue
            self._heats_done += 1
            heat = self._heat_rows.get(index)
            if heat is not None:
                held = last[index].time_s + 1.0 / segment.frame_rate_hz - record.time_s
                self._keep_heat(heat, held)
        if self.suspender is not None:  # at most max_resumes in the whole run
            self.suspender.resumes = history.resumes
        for index in history.series_ended:
            if index in segments:
                self._temperatures.setdefault(segments[index].field, _Temperature()).stopped = True
        return {
            "heats": self._heats_done,
            "switched_particles": int(self._ever_switched.sum()),
            "series_ended": sum(t.stopped for t in self._temperatures.values()),
            "resumes": history.resumes,
            "frames_measured_again": history.measured_again,
        }

    # -- as a sink ---------------------------------------------------------------------

    def frame(self, image: NDArray[np.uint16], record: FrameRecord) -> None:
        """Remember the record until its traces are measured (at most `KEEP_RECORDS`)."""
        self._records[record.frame] = record
        if len(self._records) > KEEP_RECORDS:
            del self._records[next(iter(self._records))]

    def samples(self, block: DaqBlock) -> None:
        """The current last read (at 0 V during a pause: must be none)."""
        if len(block.data):
            self._idle_current_A = float(block.data[-1, self._current_column])

    def close(self, ending: Ending) -> None:
        self._table.close()

    # -- as the policy -----------------------------------------------------------------

    def notes(self) -> list[Note]:
        """Decisions not yet in the run's log (the runner takes them)."""
        notes, self._notes = self._notes, []
        return notes

    def on_traces(self, found: Detections | None, first_frame: int, rows: FloatArray) -> None:
        """Intensities of frames `first_frame`, ... (with the particles, the first time)."""
        if found is not None:
            self._usable = found.usable
            self._xy = (found.x, found.y)
        if self.detector is None:
            self.detector = LiveDetector(np.nanmean(rows, axis=0), self._usable)
            self._ever_switched = np.zeros(rows.shape[1], dtype=bool)
        for k, row in enumerate(rows):
            record = self._records.pop(first_frame + k, None)
            if record is None:
                continue
            for event in self.detector.add_record(record, row).events:
                self._on_nucleation(event.particle, event.segment, event.nucleation_s)

    def skip(self, segment: Segment) -> bool:
        """Before each segment: True to skip it (an adaptive temperature that has had its
        cycles skips its remaining heats and their cools)."""
        if segment.kind is SegmentKind.COOL:
            return segment.index - 1 in self._skipped
        step = self._series.get(segment.index)
        rule = step.adaptive_cycles if step is not None else None
        if step is None or rule is None or segment.kind is not SegmentKind.HEAT:
            return False
        temperature = self._temperatures.setdefault(segment.field, _Temperature())
        heats = [h for h in temperature.heats if math.isfinite(h.hold_s)]
        if not temperature.stopped and heats:
            decision = series_decision(
                np.column_stack([h.waits for h in heats]),
                np.array([h.hold_s for h in heats]),
                self._tracked(),
                leverage_target(
                    rule.target_relative_precision, step.temperatures_K, segment.setpoint_K
                )
                if rule.scale_by_leverage
                else rule.target_relative_precision,
                rule.waiting_time_shape,
                rule.min_cycles,
                step.cycles,
            )
            if decision.stop:
                temperature.stopped = True
                self._decide(DecisionKind.SERIES_ENDED, decision.reason, segment)
        if temperature.stopped:
            self._skipped.add(segment.index)
        return temperature.stopped

    def on_frame(self, segment: Segment, record: FrameRecord) -> Decision:
        """After each frame, its traces measured: go on, end the segment (an adaptive
        hold), or make the heater safe now and pause (a suspension)."""
        start = self._starts.setdefault(segment.index, record.time_s)
        expected = self._follow(record, 1.0 / segment.frame_rate_hz)
        self._last = record
        if self._suspension is not None:  # frames already exposed when it was decided
            self.interrupted_frames.append(record.frame)
            return Decision.CONTINUE
        self._attempt.append(record.frame)
        if self.suspender is not None:
            found = self.suspender.watch(
                HeaterReading(
                    record.time_s,
                    record.drive_V,
                    record.current_A,
                    record.film_temperature_K,
                    expected,
                    record.time_s - start,
                )
            )
            if found is not None:
                return self._suspend(found, segment)
        self._read_burst()
        step = self._series.get(segment.index)
        if segment.kind is SegmentKind.COOL and step is not None and step.adaptive_cool:
            return self._cool(segment, step, step.adaptive_cool, record, start, expected)
        if segment.kind is not SegmentKind.HEAT or step is None:
            return Decision.CONTINUE
        self._open_heat(segment, step)
        hold = step.adaptive_hold
        if hold is None or self.detector is None or segment.index in self._ended:
            return Decision.CONTINUE  # (ended: frames exposed before the cut took effect)
        elapsed = record.time_s + 1.0 / segment.frame_rate_hz - start
        tracked = self._tracked()
        switched = int((self.detector.switched & tracked).sum())
        end = hold_end(
            elapsed,
            switched,
            int(tracked.sum()),
            hold.end_when_switched,
            hold.min_hold_s,
            step.heat_s,
        )
        if end is not HoldEnd.SWITCHED:
            return Decision.CONTINUE
        self._ended.add(segment.index)
        self._decide(
            DecisionKind.HOLD_ENDED,
            f"{HoldEnd.SWITCHED}: {switched} of {int(tracked.sum())} tracked particles "
            f"switched (target {hold.end_when_switched:.0%}) after {elapsed:.1f} s",
            segment,
        )
        return Decision.END_SEGMENT

    def segment_ended(self, segment: Segment) -> None:
        """A segment is over, at its end or cut short."""
        start = self._starts.pop(segment.index, None)
        ended = segment.index in self._ended  # by a decision: its reason is logged
        self._ended.discard(segment.index)
        last = self._last
        heat = self._heat_rows.get(segment.index)
        if segment.kind is SegmentKind.HEAT:
            self._heats_done += 1
        step = self._series.get(segment.index)
        half_frame = 0.5 / segment.frame_rate_hz
        length = (
            last.time_s + 2 * half_frame - start
            if start is not None and last is not None
            else float("nan")
        )
        if heat is not None and start is not None and last is not None:
            self._keep_heat(heat, length)
            if step is not None and length >= step.heat_s - half_frame and not ended:
                self._decide(
                    DecisionKind.HOLD_ENDED,
                    f"{HoldEnd.LONGEST}: {step.heat_s:g} s without the switched fraction",
                    segment,
                )
        cool = segment.kind is SegmentKind.COOL and step is not None and step.adaptive_cool
        if cool and step is not None and length >= step.cool_s - half_frame and not ended:
            self._decide(
                DecisionKind.COOL_ENDED,
                f"{CoolEnd.LONGEST}: {step.cool_s:g} s, {self._cool_seen}",
                segment,
            )
        self._cool_seen = ""
        if segment.kind is not SegmentKind.HEAT and self._suspension is None:
            self._attempt.clear()  # a cycle (or a step) done: nothing to redo

    def redo_from(self) -> int | None:
        """After a suspension: the segment to start again from (once)."""
        redo, self._redo = self._redo, None
        return redo

    def while_paused(self) -> Decision:
        """During a pause: RESUME or ABORT once a suspension's pause is over; CONTINUE
        (keep waiting) otherwise, and for a pause the user asked for."""
        suspension, rule = self._suspension, self.protocol.suspend
        if suspension is None or self.suspender is None or rule is None:
            return Decision.CONTINUE
        segment = self._suspended_segment
        repeatable = segment is None or segment.kind is not SegmentKind.ABLATION
        if self._paused_at is None:
            self._paused_at = self._now()
        if repeatable and self._now() - self._paused_at < rule.resume_after_s:
            return Decision.CONTINUE
        self._paused_at = None
        after = self.suspender.after(suspension, repeatable, self._idle_current_A)
        self._suspension = None
        if after.verdict is Verdict.RESUME:
            self._decide(DecisionKind.RESUMED, after.reason, segment)
            return Decision.RESUME
        self._decide(DecisionKind.ABORTED, after.reason, segment)
        return Decision.ABORT

    def abort_message(self) -> str:
        """Why the last ABORT was decided."""
        last = next((d for d in reversed(self.decisions) if d.kind is DecisionKind.ABORTED), None)
        return f"suspension: {last.reason}" if last is not None else "suspension"

    # -- inside ------------------------------------------------------------------------

    def _open_heat(self, segment: Segment, step: SeriesStep) -> None:
        """An adaptive heat's row of nucleation times, made at its first frame."""
        adaptive = step.adaptive_cycles is not None or step.adaptive_hold is not None
        if adaptive and segment.index not in self._heat_rows:
            n = len(self._ever_switched) if self._ever_switched is not None else 0
            self._heat_rows[segment.index] = _Heat(segment.field, np.full(n, np.nan))

    def _keep_heat(self, heat: _Heat, hold_s: float) -> None:
        """A heat over after `hold_s`: one more for its temperature's series decision."""
        heat.hold_s = hold_s
        self._temperatures.setdefault(heat.key, _Temperature()).heats.append(heat)

    def _tracked(self) -> NDArray[np.bool_]:
        """The particles that count: usable, and (after a few heats) seen to switch."""
        if self.detector is None or self._ever_switched is None:
            return np.zeros(0, dtype=bool)
        tracked = self.detector.usable.copy()
        if self._heats_done >= INERT_AFTER_HEATS:
            tracked &= self._ever_switched
        return np.asarray(tracked)

    def _cool(
        self,
        segment: Segment,
        step: SeriesStep,
        rule: AdaptiveCool,
        record: FrameRecord,
        start: float,
        expected_K: float,
    ) -> Decision:
        """An adaptive cool: END_SEGMENT once the tracked particles are back in low spin
        and the film (expected from the step response; V/I too where it can be read) is
        within the rule's fraction of the jump; the heater is already at the cool's
        setpoint, and ending the segment makes it safe before the next heat."""
        if self.detector is None or segment.index in self._ended:
            return Decision.CONTINUE
        elapsed = record.time_s + 1.0 / segment.frame_rate_hz - start
        tracked = self._tracked()
        back = int((self.detector.back_at_level() & tracked).sum())
        above = expected_K - segment.setpoint_K
        if math.isfinite(record.film_temperature_K):
            above = max(above, record.film_temperature_K - segment.setpoint_K)
        jump = self._setpoints.get(segment.index - 1, segment.setpoint_K) - segment.setpoint_K
        band = rule.film_within * abs(jump)
        self._cool_seen = (
            f"{back} of {int(tracked.sum())} tracked particles back in low spin, film "
            f"{above:.1f} K above {segment.setpoint_K:g} K (band {band:.1f} K)"
        )
        end = cool_end(
            elapsed,
            back,
            int(tracked.sum()),
            above,
            jump,
            rule.film_within,
            rule.min_cool_s,
            step.cool_s,
        )
        if end is not CoolEnd.SETTLED:
            return Decision.CONTINUE
        self._ended.add(segment.index)
        self._decide(
            DecisionKind.COOL_ENDED, f"{end}: {self._cool_seen} after {elapsed:.1f} s", segment
        )
        return Decision.END_SEGMENT

    def _follow(self, record: FrameRecord, period_s: float) -> float:
        """The film's expected temperature at this frame (NaN without a step response):
        the setpoint of the frame before, and ambient over any gap (a pause, with the
        heater safe) or from a suspension on."""
        expected = self._expected
        if expected is None:
            return float("nan")
        last = self._last
        if last is None:
            return expected.advance(self._ambient_K, 0.0)
        dt = max(record.time_s - last.time_s, 0.0)
        if dt > 1.5 * period_s:
            expected.advance(self._ambient_K, dt - period_s)
            dt = period_s
        before = last.temperature_K if self._suspension is None else self._ambient_K
        return expected.advance(before, dt)

    def _on_nucleation(self, particle: int, segment: int, nucleation_s: float) -> None:
        self._count_nucleation(particle, segment, nucleation_s)
        burst = self._burst
        if (
            burst is None
            or self._camera is None
            or self._burst_due is not None
            or (burst.trigger != "any" and burst.trigger != particle)
            or (self._bursts is not None and self._bursts.count >= burst.max_bursts)
        ):
            return
        if self._trigger_line is not None:
            self._trigger_line()
        self._camera.trigger()
        fired = self._now()
        self._burst_due = (fired + burst.post_s, fired, particle)
        self._decide(
            DecisionKind.BURST,
            f"nucleation of particle {particle} ({nucleation_s:.2f} s after the jump)",
            None,
        )

    def _count_nucleation(self, particle: int, segment: int, nucleation_s: float) -> None:
        """What the adaptive rules keep of a nucleation: the particle switches, and its
        waiting time in this heat."""
        if self._ever_switched is not None:
            self._ever_switched[particle] = True
        heat = self._heat_rows.get(segment)
        if heat is not None and particle < len(heat.waits):
            heat.waits[particle] = nucleation_s

    def _read_burst(self) -> None:
        due = self._burst_due
        if due is None or self._camera is None or self._xy is None or self._now() < due[0]:
            return
        self._burst_due = None
        _, fired, particle = due
        x, y = (round(float(v[particle])) for v in self._xy)
        half = BURST_ROI_PX // 2
        rows, cols = self._shape
        x0 = min(max(x - half, 0), max(cols - BURST_ROI_PX, 0))
        y0 = min(max(y - half, 0), max(rows - BURST_ROI_PX, 0))
        burst = self._camera.read_burst(Roi(x0, y0, BURST_ROI_PX, BURST_ROI_PX), BURST_TIMEOUT_S)
        if self._bursts is not None:
            self._bursts.write(burst, particle, fired)

    def _suspend(self, suspension: Suspension, segment: Segment) -> Decision:
        self._suspension = suspension
        self._suspended_segment = segment
        cycle_heat = segment.index - 1 if segment.kind is SegmentKind.COOL else segment.index
        self._redo = cycle_heat
        self.interrupted_frames.extend(self._attempt)
        self._attempt = []
        self._heat_rows.pop(cycle_heat, None)
        self._decide(DecisionKind.SUSPENDED, str(suspension), segment)
        return Decision.SAFE_NOW

    def _decide(self, kind: DecisionKind, reason: str, segment: Segment | None) -> None:
        decision = LiveDecision(
            self._now(),
            kind,
            reason,
            segment.index if segment is not None else -1,
            segment.cycle if segment is not None else 0,
        )
        self.decisions.append(decision)
        self._table.add(decision.fields())
        self._notes.append(Note("decision", decision.fields()))
        try:
            self.decided.emit(decision)
        except Exception as e:  # a listener's fault must not change what the run does
            cause = e.__cause__ or e
            error = f"{type(cause).__name__}: {cause}"
            self._notes.append(Note("listener_error", {"error": error}, quiet=True))


def redo_frames(protocol: Protocol, schedule: Schedule) -> int:
    """Frames a run may take beyond its schedule: each resume after a suspension does a
    cycle (a heat and its cool, at most) again."""
    if protocol.suspend is None:
        return 0
    segments = schedule.segments
    cycle = max((a.frames + b.frames for a, b in pairwise(segments)), default=segments[0].frames)
    return protocol.suspend.max_resumes * cycle


def build_closed_loop(
    protocol: Protocol, schedule: Schedule, rig: Rig, engine: RigEngine, run_dir: Path
) -> ClosedLoop:
    """The closed loop of `protocol` on `rig`: the film's step response and R(T) from the
    rig, the fast camera (if the protocol asks for bursts and the rig has one)."""
    config = rig.config
    response = [(c.weight, c.tau_s) for c in config.step_response or ()]
    camera = rig.fast_camera if protocol.burst is not None else None
    if protocol.burst is not None and camera is None:
        raise InputError(
            f"protocol '{protocol.name}' asks for bursts: rig '{config.name}' has no fast camera"
        )
    return ClosedLoop(
        protocol,
        schedule,
        config.ambient_K,
        response,
        rig.daq.channels.index(DaqChannel.CURRENT_A),
        engine.now,
        DecisionTable(run_dir),
        camera,
        BurstWriter(run_dir) if camera is not None else None,
        rig.camera.shape(),
        partial(pulse_line, rig.daq, DaqLine.FAST_CAMERA_TRIGGER),
    )


def pulse_line(daq: Daq, line: str) -> None:
    """A trigger edge on a DAQ digital line."""
    daq.set_digital(line, True)
    daq.set_digital(line, False)
