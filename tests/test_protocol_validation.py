"""Bad protocols and rig files: one message naming the field and the limit, exit code 2,
and no device touched."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tjump.errors import InputError
from tjump.sequencer import plan_run

from conftest import ROOT, series_protocol

WriteFile = Callable[[str, str], Path]


def problem(write_file: WriteFile, rig: Path, text: str) -> str:
    with pytest.raises(InputError) as info:
        plan_run(write_file("p.yaml", text), rig)
    return str(info.value)


def test_shipped_protocols_fit_the_simulated_rig() -> None:
    for name in ("demo", "paper", "paper-ablation", "paper-adaptive"):
        plan = plan_run(ROOT / f"configs/protocols/{name}.yaml", ROOT / "configs/rigs/sim.yaml")
        assert plan.schedule.total_frames > 0
    paper = plan_run(ROOT / "configs/protocols/paper.yaml", ROOT / "configs/rigs/sim.yaml")
    assert paper.schedule.duration_s == 10 + 5 * 20 * 100
    assert paper.schedule.total_frames == paper.schedule.duration_s * 10


def test_missing_field(write_file: WriteFile, tiny_rig: Path) -> None:
    text = series_protocol().replace("    cycles: 2\n", "")
    assert "steps.1.series.cycles: required field is missing" in problem(write_file, tiny_rig, text)


def test_wrong_type(write_file: WriteFile, tiny_rig: Path) -> None:
    text = series_protocol().replace("cycles: 2", "cycles: two")
    assert "steps.1.series.cycles: Input should be a valid integer" in problem(
        write_file, tiny_rig, text
    )


def test_negative_hold(write_file: WriteFile, tiny_rig: Path) -> None:
    message = problem(write_file, tiny_rig, series_protocol(heat_s=-5))
    assert "steps.1.series.heat_s: Input should be greater than 0" in message


def test_unknown_key(write_file: WriteFile, tiny_rig: Path) -> None:
    text = series_protocol() + "colour: red\n"
    assert "colour: unknown field" in problem(write_file, tiny_rig, text)


def test_temperature_above_rig_limit(write_file: WriteFile, tiny_rig: Path) -> None:
    message = problem(write_file, tiny_rig, series_protocol(temperatures="[377.7, 520]"))
    assert "steps.1.temperatures_K.1: 520 K is above the rig's max_temperature_K 480 K" in message


def test_time_above_limit(write_file: WriteFile, tiny_rig: Path) -> None:
    message = problem(write_file, tiny_rig, series_protocol(temperatures="[420]", heat_s=400))
    assert "exceeds the rig's max_time_above 300 s" in message


def test_frame_rate_must_divide_the_daq_clock(write_file: WriteFile, tiny_rig: Path) -> None:
    message = problem(write_file, tiny_rig, series_protocol(fps=7))
    assert "frame_rate_hz: 7 Hz must divide the DAQ sample rate 200 Hz" in message


def test_missing_files(tmp_path: Path, tiny_rig: Path) -> None:
    with pytest.raises(InputError, match="protocol file not found"):
        plan_run(tmp_path / "nothing.yaml", tiny_rig)
    with pytest.raises(InputError, match="rig file not found"):
        plan_run(ROOT / "configs/protocols/demo.yaml", tmp_path / "nothing.yaml")


def test_bad_rig_field(write_file: WriteFile) -> None:
    rig = write_file("rig.yaml", "name: r\nkind: simulated\ncalibration: x.csv\n")
    with pytest.raises(InputError, match="limits: required field is missing"):
        plan_run(ROOT / "configs/protocols/demo.yaml", rig)


def test_cli_exits_2_with_one_message_and_touches_no_device(
    write_file: WriteFile, tiny_rig: Path
) -> None:
    bad = write_file("p.yaml", series_protocol(temperatures="[520]"))
    out = tmp = bad.parent / "run"
    done = subprocess.run(
        [sys.executable, "-m", "tjump", "run", str(bad), "--rig", str(tiny_rig), "-o", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "max_temperature_K 480 K" in done.stderr
    assert "Traceback" not in done.stderr
    assert not tmp.exists()  # nothing was started, so no run directory either
