"""The SCPI source-meter driver: against the pyvisa-sim file of hardware_sims/ (as a lab
could try it), and as the supply of a simulated rig whose film it drives."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tjump.cli import app
from tjump.devices.faults import DriverLimitError, InstrumentError, VisaTimeout
from tjump.devices.sourcemeter import ScpiSourceMeter
from tjump.errors import DeviceError
from tjump.rig import Rig, build_rig, load_rig

from conftest import ROOT, rig_yaml

WriteFile = Callable[[str, str], Path]
GPIB = "GPIB0::24::INSTR"
METER_RIG = f"""
devices:
  generator: null
  supply: {{driver: scpi-source-meter, resource: '{GPIB}', visa_library: simulated}}
"""


@pytest.fixture
def pyvisa_sim_file(tmp_path: Path) -> str:
    """A private copy: pyvisa-sim keeps state per file path within a process."""
    copy = tmp_path / "keithley-2400.yaml"
    shutil.copy(ROOT / "hardware_sims" / "keithley-2400.yaml", copy)
    return f"{copy}@sim"


def test_driver_on_the_pyvisa_sim_file(pyvisa_sim_file: str) -> None:
    meter = ScpiSourceMeter(GPIB, pyvisa_sim_file, max_voltage_V=1.8, compliance_A=0.08)
    assert meter.identity().startswith("KEITHLEY INSTRUMENTS INC. MODEL 2400 (serial 4000001")
    assert meter.describe() == "0 V, compliance 0.08 A, output OFF"
    meter.set_voltage(1.25)
    meter.set_output(True)
    assert (meter.voltage(), meter.output_enabled()) == (1.25, True)
    assert meter.current() == pytest.approx(0.012345)
    with pytest.raises(DriverLimitError, match=r"2 V is outside 0..1.8 V; not sent"):
        meter.set_voltage(2.0)
    assert meter.voltage() == 1.25
    meter.close()


def test_an_instrument_error_is_named(pyvisa_sim_file: str) -> None:
    meter = ScpiSourceMeter(GPIB, pyvisa_sim_file, max_voltage_V=30.0)
    with pytest.raises(InstrumentError, match=r'-113,"Undefined header" \[:SOUR:VOLT:LEV 25\]'):
        meter.set_voltage(25.0)  # within the rig's limit, beyond the instrument's 21 V
    meter.close()


@pytest.fixture
def meter_rig(write_file: WriteFile) -> Rig:
    path = write_file("rig.yaml", rig_yaml(width=48, height=48, particles=4) + METER_RIG)
    return build_rig(load_rig(path))


def test_the_source_meter_drives_the_simulated_film(meter_rig: Rig) -> None:
    with meter_rig as rig:
        assert rig.world is not None
        volts = rig.heater.set_temperature(384.9)
        assert rig.world.drive_V() == pytest.approx(volts, abs=1e-5)
        rig.clock.run_to(20.0)
        assert rig.world.temperature() == pytest.approx(384.9, abs=3.0)
        supply = rig.heater.supply
        assert isinstance(supply, ScpiSourceMeter)
        resistance = float(rig.world.thermal.resistance(rig.world.temperature()))
        assert supply.current() == pytest.approx(volts / resistance, rel=1e-4)
        with pytest.raises(DeviceError, match="cannot bound a heat step in hardware"):
            rig.heater.arm_heat_pulse(384.9, 5.0)
        assert rig.world.drive_V() == pytest.approx(volts, abs=1e-5)  # refused: unchanged
        rig.heater.make_safe()
        assert supply.current() == 0.0
        assert rig.world.drive_V() == 0.0


def test_a_source_meter_fault_leaves_the_film_unpowered(meter_rig: Rig) -> None:
    with meter_rig as rig:
        assert rig.world is not None and rig.visa is not None
        rig.heater.set_temperature(380.0)
        rig.visa.instrument(GPIB).answers_to_drop = 1
        with pytest.raises(VisaTimeout, match=r"source meter .* \[:SYST:ERR\?\]"):
            rig.heater.set_temperature(384.9)
        assert rig.world.drive_V() == 0.0 and not rig.world.generator_on


def test_devices_check_on_a_source_meter_rig(write_file: WriteFile) -> None:
    path = write_file("rig.yaml", rig_yaml(width=48, height=48, particles=4) + METER_RIG)
    result = CliRunner().invoke(
        app, ["devices", "check", "--rig", str(path)], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    assert "MODEL 2400" in result.output and "compliance 0.08 A, output OFF" in result.output
