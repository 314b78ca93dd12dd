"""The SCPI source-meter driver: against the Keithley 2400 model served on a loopback
socket (as a lab's LAN-to-GPIB or LAN instrument), and as the supply of a simulated rig
whose film it drives."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tjump.cli import app
from tjump.devices.faults import DriverLimitError, InstrumentError, UnknownAnswer, VisaTimeout
from tjump.devices.sourcemeter import ScpiSourceMeter
from tjump.errors import DeviceError
from tjump.rig import load_rig
from tjump.sim.rig import SimRig, build_sim_rig
from tjump.sim.server import ScpiSocketServer
from tjump.sim.sourcemeter import SimKeithley2400

from conftest import rig_yaml

WriteFile = Callable[[str, str], Path]
METER_RIG = """
devices:
  generator: null
  supply: {driver: scpi-source-meter, resource: 'GPIB0::24::INSTR', visa_library: simulated,
           timeout_ms: 300}
"""


@pytest.fixture
def meter() -> Iterator[tuple[SimKeithley2400, ScpiSocketServer]]:
    model = SimKeithley2400(lambda volts: volts / 100.0)  # a 100 ohm film
    with ScpiSocketServer(model, lock=model.lock) as server:
        yield model, server


def test_driver_over_a_socket(meter: tuple[SimKeithley2400, ScpiSocketServer]) -> None:
    model, server = meter
    model.output, model.level_V = True, 0.7  # left on by someone else
    supply = ScpiSourceMeter(server.resource, "@py", max_voltage_V=1.8, compliance_A=0.08)
    assert (model.output, model.level_V) == (False, 0.0)  # taken over: off, 0 V
    assert supply.identity().startswith("KEITHLEY INSTRUMENTS INC. MODEL 2400 (serial 4000001")
    assert supply.describe() == "0 V, compliance 0.08 A, output OFF"
    supply.set_voltage(1.25)
    supply.set_output(True)
    assert (supply.voltage(), supply.output_enabled()) == (1.25, True)
    assert supply.current() == pytest.approx(0.0125)
    with pytest.raises(DriverLimitError, match=r"2 V is outside 0..1.8 V; not sent"):
        supply.set_voltage(2.0)
    assert model.level_V == 1.25
    supply.close()
    assert not model.output


def test_an_instrument_error_is_named(meter: tuple[SimKeithley2400, ScpiSocketServer]) -> None:
    _, server = meter
    supply = ScpiSourceMeter(server.resource, "@py", max_voltage_V=30.0)
    with pytest.raises(InstrumentError, match=r'-222,"Data out of range" \[:SOUR:VOLT:LEV 25\]'):
        supply.set_voltage(25.0)  # within the rig's limit, beyond the instrument's 21 V
    supply.close()


def test_a_garbled_output_state_is_unknown(meter: tuple[SimKeithley2400, ScpiSocketServer]) -> None:
    _, server = meter
    supply = ScpiSourceMeter(server.resource, "@py", timeout_ms=300)
    server.faults.garbled_answers = 1
    with pytest.raises(UnknownAnswer, match=r"none of the documented 1, 0: state unknown"):
        supply.output_enabled()
    assert supply.output_enabled() is False
    supply.close()


@pytest.fixture
def meter_rig(write_file: WriteFile) -> SimRig:
    path = write_file("rig.yaml", rig_yaml(width=48, height=48, particles=4) + METER_RIG)
    return build_sim_rig(load_rig(path))


def test_the_source_meter_drives_the_simulated_film(meter_rig: SimRig) -> None:
    with meter_rig as rig:
        volts = rig.heater.set_temperature(384.9)
        assert rig.film_drive_V() == pytest.approx(volts, abs=1e-5)
        rig.clock.run_to(20.0)
        assert rig.film_temperature_K() == pytest.approx(384.9, abs=3.0)
        supply = rig.heater.supply
        assert isinstance(supply, ScpiSourceMeter)
        assert supply.current() == pytest.approx(volts / rig.film_resistance_ohm(), rel=1e-4)
        with pytest.raises(DeviceError, match="cannot bound a heat step in hardware"):
            rig.heater.arm_heat_pulse(384.9, 5.0)
        assert rig.film_drive_V() == pytest.approx(volts, abs=1e-5)  # refused: unchanged
        rig.heater.make_safe()
        assert supply.current() == 0.0
        assert rig.film_drive_V() == 0.0


def test_a_source_meter_fault_leaves_the_film_unpowered(meter_rig: SimRig) -> None:
    with meter_rig as rig:
        rig.heater.set_temperature(380.0)
        faults = rig.instrument("supply").faults
        faults.late_answers, faults.late_s = 1, 0.5
        with pytest.raises(VisaTimeout, match=r"source meter .* \[:SOUR:VOLT:LEV .*:SYST:ERR\?\]"):
            rig.heater.set_temperature(384.9)
        assert rig.film_drive_V() == 0.0


def test_devices_check_on_a_source_meter_rig(write_file: WriteFile) -> None:
    path = write_file("rig.yaml", rig_yaml(width=48, height=48, particles=4) + METER_RIG)
    result = CliRunner().invoke(
        app, ["devices", "check", "--rig", str(path)], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    assert "MODEL 2400" in result.output and "compliance 0.08 A, output OFF" in result.output
    verified = r"supply: verified identity; output 0, voltage source at 0 V, compliance "
    assert re.search(
        verified + r"\(read back\); measured round trip [\d.]+ ms; make safe", result.output
    )
