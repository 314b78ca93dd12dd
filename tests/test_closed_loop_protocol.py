"""The closed-loop fields of a protocol: adaptive holds and series, the suspender and the
fast-camera burst. Checked before anything runs; old protocol files read as before."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tjump.cli import app
from tjump.errors import InputError
from tjump.protocol import load_protocol
from tjump.sequencer import plan_run

from conftest import ROOT, rig_yaml, series_protocol

WriteFile = Callable[[str, str], Path]

ADAPTIVE = """
    adaptive_hold: {end_when_switched: 0.9, min_hold_s: 4}
    adaptive_cool: {film_within: 0.05, min_cool_s: 2}
    adaptive_cycles: {target_relative_precision: 0.2, min_cycles: 2}
suspend: {band_K: 8, current_jump_fraction: 0.1, max_resumes: 2}
burst: {trigger: any, pre_s: 0.5, post_s: 0.05}
"""


def problem(write_file: WriteFile, text: str) -> str:
    with pytest.raises(InputError) as info:
        load_protocol(write_file("p.yaml", text))
    return str(info.value)


def test_closed_loop_fields_are_read(write_file: WriteFile) -> None:
    protocol = load_protocol(write_file("p.yaml", series_protocol(cycles=5) + ADAPTIVE))
    series = protocol.steps[1]
    assert series.kind == "series"
    assert series.adaptive_hold is not None and series.adaptive_hold.end_when_switched == 0.9
    assert series.adaptive_cycles is not None and series.adaptive_cycles.min_cycles == 2
    assert series.adaptive_cool is not None and series.adaptive_cool.film_within == 0.05
    assert protocol.suspend is not None and protocol.suspend.max_resumes == 2
    assert protocol.burst is not None and protocol.burst.trigger == "any"


def test_shipped_protocols_still_read_without_the_new_fields() -> None:
    for name in ("demo", "paper", "paper-ablation"):
        protocol = load_protocol(ROOT / f"configs/protocols/{name}.yaml")
        assert protocol.suspend is None and protocol.burst is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("min_hold_s: 4", "min_hold_s: 40"), "min_hold_s 40 s is longer than heat_s 12 s"),
        (("end_when_switched: 0.9", "end_when_switched: 1.5"), "end_when_switched"),
        (("end_when_switched: 0.9", "end_when_switched: 0"), "end_when_switched"),
        (("min_cycles: 2", "min_cycles: 9"), "min_cycles 9 is more than cycles 5"),
        (("target_relative_precision: 0.2", "target_relative_precision: 1.2"), "precision"),
        (("band_K: 8", "band_K: -1"), "suspend.band_K"),
        (("max_resumes: 2", "max_resumes: -3"), "suspend.max_resumes"),
        (("current_jump_fraction: 0.1", "current_jump_fraction: 0"), "current_jump_fraction"),
        (("trigger: any", "trigger: some"), "burst.trigger"),
        (("pre_s: 0.5", "pre_s: 60"), "burst.pre_s"),
        (("post_s: 0.05", "post_s: 0"), "burst.post_s"),
        (("min_hold_s: 4}", "min_hold_s: 4, max: 3}"), "max"),
        (("min_cool_s: 2", "min_cool_s: 9"), "min_cool_s 9 s is longer than cool_s 6 s"),
        (("film_within: 0.05", "film_within: 0"), "adaptive_cool.film_within"),
        (("film_within: 0.05", "film_within: 0.8"), "adaptive_cool.film_within"),
        (("min_cool_s: 2", "min_cool_s: -1"), "adaptive_cool.min_cool_s"),
    ],
)
def test_bad_closed_loop_fields_are_named(
    write_file: WriteFile, change: tuple[str, str], expected: str
) -> None:
    text = (series_protocol(cycles=5) + ADAPTIVE).replace(*change)
    assert expected in problem(write_file, text)


def test_run_check_names_a_bad_field_and_plans_for_the_longest(write_file: WriteFile) -> None:
    rig = write_file("rig.yaml", rig_yaml())
    good = write_file("good.yaml", series_protocol(cycles=5) + ADAPTIVE)
    bad = write_file("bad.yaml", (series_protocol(cycles=5) + ADAPTIVE).replace("0.9", "2"))
    check = ["run", "--check", "--rig", str(rig)]
    # `tjump` prints an InputError as one message and exits with its code, 2
    refused = CliRunner().invoke(app, [*check, str(bad)])
    assert isinstance(refused.exception, InputError), refused.output
    assert refused.exception.exit_code == 2
    assert "steps.1.series.adaptive_hold.end_when_switched" in str(refused.exception)
    ok = CliRunner().invoke(app, [*check, str(good)])
    assert ok.exit_code == 0, ok.output
    assert "5 cycles each: 90 s" in ok.output  # planned at the longest holds and most cycles


def test_a_lab_rig_without_a_fast_camera_or_film_model_is_refused(write_file: WriteFile) -> None:
    protocol = write_file("p.yaml", series_protocol(cycles=5) + ADAPTIVE)
    with pytest.raises(InputError) as info:
        plan_run(protocol, ROOT / "configs" / "rigs" / "lab.yaml")
    assert "burst: rig 'lab' has no fast camera" in str(info.value)
    assert "suspend: rig 'lab' does not know its film's R(T) and step response" in str(info.value)
    assert "adaptive_cool: rig 'lab' does not know its film's step response" in str(info.value)
