"""The live nucleation marks: a drop is found at its frame, common-mode drift is not one."""

from __future__ import annotations

import numpy as np
import pytest

from tjump.gui.nucleation import NucleationEvent, NucleationTracker
from tjump.storage.layout import FrameRecord

FPS = 10.0


def _record(frame: int, kind: str, segment: int, setpoint: float = 380.0) -> FrameRecord:
    return FrameRecord(
        frame=frame,
        time_s=frame / FPS,
        temperature_K=setpoint if kind == "heat" else 293.0,
        segment=segment,
        kind=kind,
        step=1,
        cycle=1 if kind == "heat" else 0,
        drive_V=0.0,
        current_A=0.0,
        daq_index=frame * 20,
        camera_frame=frame,
    )


def _feed(
    tracker: NucleationTracker, rows: np.ndarray, kinds: list[tuple[str, int]]
) -> tuple[list[float], list[NucleationEvent]]:
    references: list[float] = []
    events: list[NucleationEvent] = []
    for f, (row, (kind, segment)) in enumerate(zip(rows, kinds, strict=True)):
        reference, _, new = tracker.add(_record(f, kind, segment), row)
        references.append(reference)
        events.extend(new)
    return references, events


def test_a_drop_is_marked_at_its_first_frame_and_drift_is_divided_out() -> None:
    rng = np.random.default_rng(3)
    particles, frames = 12, 150
    level = rng.uniform(5e3, 4e4, particles)
    kinds = [("baseline", 0)] * 30 + [("heat", 1)] * 100 + [("cool", 2)] * 20
    drift = np.ones(frames)
    drift[30:130] = 1.0 - 0.04 * (1 - np.exp(-np.arange(100) / 20))  # focal drift, all dim 4 %
    rows = level[None, :] * drift[:, None] * (1 + rng.normal(0, 0.005, (frames, particles)))
    switch = {2: 57, 5: 31, 9: 120}  # particle: first frame of the drop (within the heat)
    for p, f in switch.items():
        rows[f:130, p] *= 0.85
    tracker = NucleationTracker(rows[:20].mean(axis=0), np.ones(particles, dtype=bool))
    references, events = _feed(tracker, rows, kinds)
    found = {e.particle: e for e in events}
    assert set(found) == set(switch)
    for p, f in switch.items():
        assert found[p].frame == f
        assert found[p].nucleation_s == pytest.approx((f - 30) / FPS)
        assert found[p].setpoint_K == 380.0 and found[p].cycle == 1
    assert references[100] == pytest.approx(drift[100], abs=0.01)


def test_a_new_heat_starts_afresh() -> None:
    particles = 4
    base = np.full(particles, 1e4)
    kinds = [("baseline", 0)] * 20 + [("heat", 1)] * 20 + [("cool", 2)] * 20 + [("heat", 3)] * 20
    rows = np.tile(base, (80, 1))
    rows[25:40, 1] *= 0.85  # switches in the first heat, recovers on cooling
    rows[70:80, 1] *= 0.85  # and again in the second
    tracker = NucleationTracker(base, np.ones(particles, dtype=bool))
    _, events = _feed(tracker, rows, kinds)
    assert [(e.particle, e.frame) for e in events] == [(1, 25), (1, 70)]
