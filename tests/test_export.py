"""A run exports to an OME-TIFF that ome-types reads with pixel size, times and
temperatures."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import ome_types
import pytest
import tifffile

from tjump.sequencer import Runner, open_run, plan_run, resume_run, run_plan
from tjump.storage import RunDirectory
from tjump.storage.export import export_ome_tiff

from conftest import rig_yaml, series_protocol

WriteFile = Callable[[str, str], Path]


def test_ome_tiff_carries_frames_and_metadata(write_file: WriteFile) -> None:
    rig_file = write_file("rig.yaml", rig_yaml(width=48, height=40, particles=3, references=1))
    protocol = write_file("p.yaml", series_protocol(cycles=1, heat_s=2, cool_s=1, baseline_s=1))
    out = protocol.parent / "run"
    run_plan(plan_run(protocol, rig_file), out)
    done = subprocess.run(
        [sys.executable, "-m", "tjump", "export", str(out), "--ome-tiff"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    target = protocol.parent / "run.ome.tif"
    run = RunDirectory(out)
    rows = run.frames_table()
    np.testing.assert_array_equal(tifffile.imread(target), run.read_frames())
    ome = ome_types.from_tiff(target)
    pixels = ome.images[0].pixels
    assert (pixels.size_t, pixels.size_y, pixels.size_x) == (len(rows), 40, 48)
    assert pixels.physical_size_x == pytest.approx(0.37)
    assert [p.delta_t for p in pixels.planes] == pytest.approx([float(r["time_s"]) for r in rows])
    maps = {
        m.namespace: {item.k: item.value for item in m.value.ms}
        for m in ome.structured_annotations.map_annotations
    }
    temps = maps["tjump/temperature_K"]
    assert [float(temps[r["frame"]]) for r in rows] == [float(r["temperature_K"]) for r in rows]
    assert maps["tjump/run"]["protocol"] == "test"


def test_a_resumed_run_exports_one_temperature_per_plane(write_file: WriteFile) -> None:
    rig_file = write_file("rig.yaml", rig_yaml(width=40, height=40, particles=2, references=1))
    protocol = write_file("p.yaml", series_protocol(cycles=2, heat_s=2, cool_s=1, baseline_s=1))
    out = protocol.parent / "run"
    plan = plan_run(protocol, rig_file)

    def abort_in_second_heat(seq: Runner) -> None:
        def on_frame(image: object, record: object) -> None:
            if getattr(record, "segment", -1) == 3:
                seq.abort()

        seq.events.frame_acquired.connect(on_frame)

    runner = open_run(plan, out)
    abort_in_second_heat(runner)
    assert runner.run().status == "aborted"
    assert resume_run(out).status == "complete"
    target = protocol.parent / "run.ome.tif"
    assert export_ome_tiff(RunDirectory(out), target) == RunDirectory(out).frame_count()
    ome = ome_types.from_tiff(target)
    maps = {
        m.namespace: {item.k: item.value for item in m.value.ms}
        for m in ome.structured_annotations.map_annotations
    }
    planes = ome.images[0].pixels.size_t
    assert len(maps["tjump/temperature_K"]) == len(maps["tjump/interrupted"]) == planes
    assert sum(v == "1" for v in maps["tjump/interrupted"].values()) > 0  # the redone heat


def test_export_needs_a_format(write_file: WriteFile) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tjump", "export", str(write_file("x", "")), "--output", "y"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "--ome-tiff" in done.stderr
