"""The temperature-band suspender's decisions: what makes it suspend, when it resumes and
when the run aborts instead."""

from __future__ import annotations

import math

from tjump.sequencer.suspender import (
    HeaterReading,
    Suspender,
    SuspendReason,
    Verdict,
)


def reading(
    t: float,
    film_K: float = 380.0,
    expected_K: float = 380.0,
    current_A: float = 0.05,
    drive_V: float = 1.2,
    since_s: float = 5.0,
) -> HeaterReading:
    return HeaterReading(t, drive_V, current_A, film_K, expected_K, since_s)


def suspender(max_resumes: int = 2) -> Suspender:
    return Suspender(band_K=5.0, current_jump_fraction=0.1, max_resumes=max_resumes, settle_s=1.0)


def test_a_steady_heater_is_left_alone() -> None:
    s = suspender()
    for k in range(50):
        assert s.watch(reading(k * 0.1, film_K=380.0 + 0.5 * math.sin(k))) is None


def test_leaving_the_band_suspends_with_the_reason() -> None:
    s = suspender()
    assert s.watch(reading(1.0, film_K=384.0)) is None
    found = s.watch(reading(1.1, film_K=386.5))
    assert found is not None and found.reason is SuspendReason.BAND
    assert "+6.5 K" in str(found) and "386.5 K" in str(found)


def test_the_band_follows_the_expected_lagging_temperature() -> None:
    s = suspender()
    # 2 s after a jump the film is still 10 K below the setpoint, as its model expects
    assert s.watch(reading(2.0, film_K=370.0, expected_K=371.0, since_s=2.0)) is None
    # no step response known: no band to compare with, the current is still watched
    assert s.watch(reading(2.1, film_K=370.0, expected_K=float("nan"), since_s=2.1)) is None


def test_a_current_jump_at_a_steady_drive_suspends() -> None:
    s = suspender()
    assert s.watch(reading(5.0, current_A=0.050)) is None
    found = s.watch(reading(5.1, current_A=0.040))
    assert found is not None and found.reason is SuspendReason.CURRENT_JUMP
    assert "-20%" in str(found)


def test_a_drive_change_or_the_settling_film_is_no_jump() -> None:
    s = suspender()
    assert s.watch(reading(5.0, current_A=0.05, drive_V=1.2)) is None
    assert s.watch(reading(5.1, current_A=0.03, drive_V=0.8, since_s=0.0)) is None
    assert s.watch(reading(5.2, current_A=0.02, drive_V=0.8, since_s=0.1)) is None
    assert s.watch(reading(6.2, current_A=0.03, drive_V=0.8, since_s=1.1)) is None


def test_an_open_film_suspends_once_settled() -> None:
    s = suspender()
    assert s.watch(reading(0.5, film_K=math.nan, current_A=0.0, since_s=0.5)) is None
    found = s.watch(reading(1.5, film_K=math.nan, current_A=0.0, since_s=1.5))
    assert found is not None and found.reason is SuspendReason.UNREADABLE


def test_the_drive_off_is_never_a_suspension() -> None:
    s = suspender()
    assert s.watch(reading(3.0, film_K=math.nan, current_A=0.0, drive_V=0.0)) is None


def test_resumes_a_stated_number_of_times_then_aborts() -> None:
    s = suspender(max_resumes=2)
    cause = s.watch(reading(1.0, film_K=400.0))
    assert cause is not None
    verdicts = [s.after(cause, repeatable=True, idle_current_A=0.0) for _ in range(3)]
    assert [v.verdict for v in verdicts] == [Verdict.RESUME, Verdict.RESUME, Verdict.ABORT]
    assert "already resumed 2 of at most 2 times" in verdicts[2].reason
    assert "film temperature out of band" in verdicts[2].reason


def test_an_ablation_never_resumes() -> None:
    s = suspender(max_resumes=5)
    cause = s.watch(reading(1.0, film_K=500.0, expected_K=473.0))
    assert cause is not None
    after = s.after(cause, repeatable=False, idle_current_A=0.0)
    assert after.verdict is Verdict.ABORT and "cannot be repeated" in after.reason
    assert s.resumes == 0


def test_current_at_zero_volts_aborts() -> None:
    s = suspender(max_resumes=5)
    cause = s.watch(reading(1.0, film_K=400.0))
    assert cause is not None
    after = s.after(cause, repeatable=True, idle_current_A=0.02)
    assert after.verdict is Verdict.ABORT and "still flows at 0 V" in after.reason
