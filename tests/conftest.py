"""Shared fixtures: small simulated rigs and protocols written to a temporary folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tjump.sim.rig import install

install()  # the tests' rigs are simulated: let load_rig and build_rig read them


@pytest.fixture(autouse=True)
def _simulator_renders_here() -> None:
    """Each test with the in-process renderer, even after a test ran `tjump.cli.main`
    (whose simulator renders the camera in a process of its own)."""
    install()


os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parent.parent
CALIBRATION = ROOT / "configs" / "calibrations" / "heater-sim.csv"


def rig_yaml(
    width: int = 96,
    height: int = 96,
    particles: int = 8,
    references: int = 2,
    seed: int = 7,
    max_temperature_K: float = 480.0,
) -> str:
    return f"""
name: test-rig
kind: simulated
ambient_K: 293.0
calibration: {CALIBRATION}
limits:
  max_temperature_K: {max_temperature_K}
  max_drive_V: 1.8
  max_current_A: 0.08
  max_time_above: {{temperature_K: 400.0, seconds: 300.0}}
camera: {{exposure_ms: 50.0, max_frame_rate_hz: 200.0, pixel_size_um: 0.37}}
daq: {{sample_rate_hz: 200.0}}
simulation:
  seed: {seed}
  sample: {{particles: {particles}, references: {references}}}
  sensor: {{width: {width}, height: {height}}}
"""


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write `text` to `name` in the test's temporary folder."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def tiny_rig(write_file: Callable[[str, str], Path]) -> Path:
    """A 96 x 96 simulated rig with 8 particles and 2 references."""
    return write_file("rig.yaml", rig_yaml())


def series_protocol(
    temperatures: str = "[384.9]",
    cycles: int = 2,
    heat_s: float = 12,
    cool_s: float = 6,
    baseline_s: float = 3,
    fps: float = 10,
) -> str:
    return f"""
name: test
frame_rate_hz: {fps}
steps:
  - kind: baseline
    duration_s: {baseline_s}
  - kind: series
    temperatures_K: {temperatures}
    cycles: {cycles}
    heat_s: {heat_s}
    cool_s: {cool_s}
"""
