"""One validation of a rig file for every command; protocols that cannot run are refused by
--check, not mid-run; a disk that fills mid-run leaves a run that resumes."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tjump.cli import main
from tjump.errors import StorageError
from tjump.sequencer import default_output, plan_run, run_plan
from tjump.storage import RunDirectory
from tjump.storage import writer as writer_module
from tjump.storage.pages import PageWriter
from tjump.storage.verify import verify

from conftest import CALIBRATION, rig_yaml, series_protocol

WriteFile = Callable[[str, str], Path]


def cli(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    monkeypatch.setattr("sys.argv", ["tjump", *args])
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    captured = capsys.readouterr()
    return code, " ".join((captured.out + captured.err).split())


BASE = rig_yaml(width=96, height=96, particles=4, references=1)
RIG_CASES = {
    "sensor 1 x 1": (BASE.replace("width: 96, height: 96", "width: 1, height: 1"), "sensor"),
    "binning 3": (BASE + "devices: {camera: {binning: 3}}\n", "binning"),
    "ROI outside the sensor": (
        BASE + "devices: {camera: {roi: [80, 80, 32, 32]}}\n",
        "devices.camera.roi",
    ),
    "DAQ at 7 Hz": (BASE.replace("sample_rate_hz: 200.0", "sample_rate_hz: 7"), "sample_rate_hz"),
    "ambient above the maximum": (BASE.replace("ambient_K: 293.0", "ambient_K: 320"), "ambient_K"),
    "10,000 particles": (BASE.replace("particles: 4", "particles: 10000"), "particles"),
    "calibration is a folder": (BASE.replace(str(CALIBRATION), str(CALIBRATION.parent)), "folder"),
    "limits given twice": (
        BASE + "limits: {max_temperature_K: 480, max_drive_V: 1.8, max_current_A: 0.08, "
        "max_time_above: {temperature_K: 460, seconds: 900}}\n",
        "'limits' twice",
    ),
    "infinite current": (
        BASE.replace("max_current_A: 0.08", "max_current_A: .inf"),
        "max_current_A",
    ),
    "2**70 kelvin": (
        BASE.replace("max_temperature_K: 480.0", f"max_temperature_K: {2**70}"),
        "max_temperature_K",
    ),
}


@pytest.mark.parametrize("case", list(RIG_CASES))
def test_devices_check_and_run_check_refuse_the_same_rig_files_alike(
    case: str,
    write_file: WriteFile,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    text, field = RIG_CASES[case]
    if case == "ambient above the maximum":
        text = text.replace("max_temperature_K: 480.0", "max_temperature_K: 310")
    rig = write_file("rig.yaml", text)
    protocol = write_file("p.yaml", series_protocol(cycles=1, heat_s=1, cool_s=1, baseline_s=1))
    devices = cli(["devices", "check", "--rig", str(rig)], monkeypatch, capsys)
    check = cli(["run", str(protocol), "--rig", str(rig), "--check"], monkeypatch, capsys)
    assert devices[0] == check[0] == 2
    assert devices[1] == check[1]  # one validation, one message
    assert field in check[1]
    assert "Traceback" not in check[1]


def test_a_hold_beyond_the_first_limits_block_is_refused(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rig = write_file("rig.yaml", RIG_CASES["limits given twice"][0])
    protocol = write_file(
        "p.yaml", "name: hot\nsteps: [{kind: hold, temperature_K: 470, duration_s: 900}]\n"
    )
    code, text = cli(["run", str(protocol), "--rig", str(rig), "--check"], monkeypatch, capsys)
    assert code == 2
    assert "found the key 'limits' twice" in text


def test_one_frame_a_second_runs_to_the_end(tiny_rig: Path, write_file: WriteFile) -> None:
    protocol = write_file("p.yaml", series_protocol(cycles=1, heat_s=12, cool_s=6, fps=1))
    result = run_plan(plan_run(protocol, tiny_rig), tiny_rig.parent / "out")
    assert result.status == "complete"
    assert result.frames == 3 + 12 + 6


def test_a_run_never_leaves_runs(tiny_rig: Path, write_file: WriteFile) -> None:
    protocol = write_file("p.yaml", series_protocol().replace("name: test", "name: a.b (2)"))
    output = default_output(plan_run(protocol, tiny_rig))
    assert output.parent == Path("runs")


def test_a_full_disk_leaves_a_run_that_resumes(
    write_file: WriteFile,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The disk fills after 60 frames: the run fails with the manifest still 'running' and
    a torn page; once there is room, resume completes it and every tool accepts it."""
    rig = write_file("rig.yaml", rig_yaml(width=48, height=48, particles=3, references=1))
    protocol = write_file("p.yaml", series_protocol(cycles=3, heat_s=4, cool_s=2, baseline_s=2))
    out = rig.parent / "out"
    real_write = PageWriter.write
    calls = {"n": 0}

    def full_disk(self: PageWriter, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] > 60:
            os.write(self._fd, b"\0" * 300)  # a page begun, never finished
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, *args, **kwargs)

    real_atomic = writer_module.write_atomic

    def manifest_write(path: Path, text: str) -> None:
        if calls["n"] > 60:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_atomic(path, text)

    monkeypatch.setattr(PageWriter, "write", full_disk)
    monkeypatch.setattr(writer_module, "write_atomic", manifest_write)
    with pytest.raises(StorageError, match="No space left"):
        run_plan(plan_run(protocol, rig), out)
    assert RunDirectory(out).manifest()["status"] == "running"
    assert not verify(out).consistent
    monkeypatch.undo()  # room again

    code, text = cli(["resume", str(out)], monkeypatch, capsys)
    assert code == 0, text
    assert "repaired:" in text and "torn page" in text
    assert "in this session" in text and "whole run:" in text
    verdict = verify(out)
    assert verdict.consistent, verdict.problems
    assert verdict.manifest["status"] == "complete"
    assert sorted(verdict.pages)[:60] == list(range(60))  # the frames before the full disk
    code, text = cli(["export", str(out), "--ome-tiff"], monkeypatch, capsys)
    assert code == 0, text
    assert f"wrote {len(verdict.pages)} frames" in text
