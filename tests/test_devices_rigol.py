"""The Rigol DG1000Z driver against the instrument model served on a loopback socket and
reached through pyvisa-py: exact SCPI, limits, readback, named faults, and the heater left
at 0 V with the output off."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sim_bench import Bench
from tjump.devices.faults import (
    DriverLimitError,
    InstrumentError,
    ReadbackMismatch,
    ResourceNotFound,
    VisaTimeout,
)
from tjump.devices.rigol import RigolDG1000Z
from tjump.errors import LimitError
from tjump.rig import load_rig
from tjump.sim.rig import SimRig, build_sim_rig
from tjump.sim.server import ScpiSocketServer

from conftest import rig_yaml

WriteFile = Callable[[str, str], Path]
FAST_TIMEOUT = "devices:\n  generator: {timeout_ms: 300}\n"


@pytest.fixture
def bench() -> Iterator[Bench]:
    bench = Bench()
    yield bench
    bench.close()


@pytest.fixture
def rig(write_file: WriteFile) -> Iterator[SimRig]:
    with build_sim_rig(
        load_rig(write_file("rig.yaml", rig_yaml(width=48, height=48) + FAST_TIMEOUT))
    ) as rig:
        yield rig


def generator(rig: SimRig) -> ScpiSocketServer:
    return rig.instrument("generator")


def assert_safe(rig: SimRig) -> None:
    """What the simulated world receives: 0 V with the output off."""
    assert rig.generator_output() == (0.0, False)


def test_connect_checks_identity_then_output_off_and_highz(bench: Bench) -> None:
    assert bench.model.channels[1].load_ohm == 50.0  # power-on default: twice into HighZ
    gen = bench.driver()
    assert bench.server.log == [
        "*IDN?",
        "*CLS;:OUTP1 OFF;:SOUR1:APPL:DC DEF,DEF,0;:OUTP1:IMP INF;:SYST:ERR?",
        ":OUTP1?", ":SOUR1:BURS?", ":OUTP1:IMP?", ":SOUR1:FUNC?", ":SOUR1:VOLT:OFFS?",
    ]  # fmt: skip
    assert bench.model.channels[1].load_ohm is None
    assert gen.identity() == "Rigol Technologies DG1062Z (serial DG1ZA000000001, firmware 00.01.14)"
    assert gen.session.no_delay  # Nagle off on pyvisa-py's socket
    gen.set_dc(1.25)
    gen.set_output(True)
    assert bench.model.output_V() == (1.25, True)  # HighZ: the setting is what comes out
    assert gen.describe() == "DC 1.25 V, output ON, load HighZ"
    gen.close()


def test_heat_cool_cycle_sends_exactly_this_scpi_and_ends_off(rig: SimRig) -> None:
    inst = generator(rig)
    inst.log.clear()
    drive = rig.heater.set_temperature(384.9)
    volts, on = rig.generator_output()
    assert on and volts == pytest.approx(drive, abs=1e-5)
    rig.heater.set_temperature(293.0)
    rig.heater.make_safe()
    level = f"{drive:.7g}"
    assert inst.log == [
        f":SOUR1:APPL:DC DEF,DEF,{level};:SYST:ERR?", ":SOUR1:VOLT:OFFS?",
        ":OUTP1 ON;:SYST:ERR?", ":OUTP1?",
        ":SOUR1:APPL:DC DEF,DEF,0;:SYST:ERR?", ":SOUR1:VOLT:OFFS?",
        ":OUTP1 ON;:SYST:ERR?", ":OUTP1?",
        ":SOUR1:APPL:DC DEF,DEF,0;:SYST:ERR?", ":SOUR1:VOLT:OFFS?",
        ":OUTP1 OFF;:SYST:ERR?", ":OUTP1?",
        ":SOUR1:FUNC?", ":SOUR1:VOLT:OFFS?", ":OUTP1?",
    ]  # fmt: skip
    assert_safe(rig)


def test_the_heater_physics_follows_the_simulated_generator(rig: SimRig) -> None:
    rig.heater.set_temperature(384.9)
    rig.clock.run_to(30.0)
    assert rig.film_temperature_K() == pytest.approx(384.9, abs=3.0)
    rig.heater.make_safe()
    rig.clock.run_to(80.0)
    assert rig.film_temperature_K() < 300.0


def test_the_model_speaks_short_and_long_forms_in_any_case(bench: Bench) -> None:
    m = bench.model
    assert m.handle(":source1:apply:dc def,def,1.5") is None
    assert m.handle(":SOURce1:VOLTage:OFFSet?") == "1.500000E+00"
    assert m.handle("sour1:func?") == "DC"
    assert m.handle(":OUTPut1:STATe ON;:outp1?") == "ON"
    assert m.handle(":SOUR1:APPL?") == '"DC,DEF,DEF,1.500000E+00"'
    assert m.handle(":SYSTem:ERRor?") == '0,"No error"'
    assert m.handle(":SOUR1:APPL:DC DEF,DEF,12") is None  # beyond 10 V into HighZ? 50 ohm: 5 V
    assert m.handle(":BOGUS 1") is None
    assert m.handle(":SYST:ERR?") == '-222,"Data out of range"'
    assert m.handle(":SYST:ERR?") == '-113,"Undefined header"'
    assert m.handle(":SYST:ERR?") == '0,"No error"'
    assert m.handle(":SOUR1:VOLT:OFFS?") == "1.500000E+00"  # the refused value changed nothing
    assert m.handle(":OUTP1:IMP INF;:OUTP1:IMP?") == "9.900000E+37"  # guide p. 2-56
    assert m.handle(":SOUR1:FUNC PULS;:SOUR1:FUNC?") == "PULSE"


def test_driver_refuses_a_level_beyond_the_rig_limit_before_sending(rig: SimRig) -> None:
    inst = generator(rig)
    inst.log.clear()
    supply = rig.heater.supply
    with pytest.raises(DriverLimitError, match=r"beyond the generator's limit of \+-1.8 V"):
        supply.set_voltage(2.0)  # the amplifier's gain is 1: the rig's 1.8 V is the limit
    assert inst.log == []
    with pytest.raises(LimitError, match="max_temperature_K"):
        rig.heater.set_temperature(500.0)
    assert inst.log == []
    assert_safe(rig)


def test_wrong_resource_is_named() -> None:
    with pytest.raises(ResourceNotFound, match=r"open not-a-resource.*::5555::SOCKET"):
        RigolDG1000Z("not-a-resource", "@py")


def test_idn_maker_is_compared_in_any_case() -> None:
    bench = Bench(idn="RIGOL TECHNOLOGIES,DG1022Z,DG1ZA2,00.01.12")
    bench.driver().close()
    bench.close()


def test_an_error_in_the_queue_stops_the_step_and_leaves_the_heater_safe(rig: SimRig) -> None:
    inst = generator(rig)
    rig.heater.set_temperature(380.0)
    assert rig.generator_output()[1]
    inst.model.errors.push((-314, "Save/recall memory lost"))  # type: ignore[attr-defined]
    with pytest.raises(InstrumentError, match=r'-314,"Save/recall memory lost" \[:SOUR1:APPL:DC'):
        rig.heater.set_temperature(384.9)
    assert_safe(rig)
    assert rig.heater.is_safe()


def test_a_visa_timeout_stops_the_step_and_leaves_the_heater_safe(rig: SimRig) -> None:
    inst = generator(rig)
    rig.heater.set_temperature(380.0)
    inst.faults.late_answers, inst.faults.late_s = 1, 0.5  # past the 0.3 s timeout
    with pytest.raises(VisaTimeout, match=r"no answer within 300 ms \[:SOUR1:APPL:DC .*:SYST:ERR"):
        rig.heater.set_temperature(384.9)
    assert_safe(rig)


def test_a_setting_that_does_not_take_is_caught_by_readback(rig: SimRig) -> None:
    rig.heater.set_temperature(380.0)
    generator(rig).faults.ignored = (":SOUR1:APPL:DC",)  # accepted, not applied, no error
    with pytest.raises(ReadbackMismatch, match=r"reads 1\.\d+ after ':SOUR1:APPL:DC") as fault:
        rig.heater.set_temperature(384.9)
    assert "heater NOT confirmed safe" in "".join(fault.value.__notes__)
    assert not rig.generator_output()[1]  # the output still went off
    generator(rig).faults.ignored = ()
    rig.heater.make_safe()
    assert_safe(rig)


def test_a_bounded_heat_pulse_ends_in_the_instrument_on_time(rig: SimRig) -> None:
    volts = rig.heater.arm_heat_pulse(384.9, duration_s=2.0)
    assert rig.generator_output() == (0.0, True)  # armed, idling at 0 V
    rig.clock.run_to(1.0)
    rig.heater.fire_heat_pulse()  # a rising edge on the DAQ's generator trigger line
    assert rig.generator_output()[0] == pytest.approx(volts, abs=1e-5)
    generator(rig).faults.pulled = True  # the computer stops talking to the instrument
    rig.clock.run_to(2.995)
    assert rig.generator_output()[0] == pytest.approx(volts, abs=1e-5)
    rig.clock.run_to(10.0)
    assert rig.generator_output()[0] == 0.0  # ended by the instrument at 3.0 s
    heated = rig.film_temperature_K()
    assert heated < 384.9
    generator(rig).faults.pulled = False
    rig.heater.make_safe()
    assert_safe(rig)


def test_a_bounded_pulse_drives_the_world_for_exactly_its_width(rig: SimRig) -> None:
    rig.daq.start(10.0)
    rig.heater.arm_heat_pulse(384.9, duration_s=0.5)
    rig.clock.run_to(1.0)
    rig.heater.fire_heat_pulse()
    rig.clock.run_to(3.0)
    drive = rig.daq.read().data[:, 0]
    on = drive > 0.5
    assert on.sum() == 100  # 0.5 s at 200 samples/s, ended between two clock steps
    assert on.argmax() == 200  # from the trigger's tick (t = 1.0 s) on


def test_pulse_limits_are_checked_before_anything_is_sent(rig: SimRig) -> None:
    inst = generator(rig)
    inst.log.clear()
    with pytest.raises(LimitError, match="longer than the rig's max_time_above 300 s"):
        rig.heater.arm_heat_pulse(473.0, duration_s=400.0)
    with pytest.raises(LimitError, match="above ambient"):
        rig.heater.arm_heat_pulse(293.0, duration_s=4.0)
    assert inst.log == []


def test_the_pulse_is_programmed_with_this_scpi_in_eight_round_trips(rig: SimRig) -> None:
    inst = generator(rig)
    inst.log.clear()
    volts = rig.heater.arm_heat_pulse(384.9, duration_s=12.0)
    level = f"{volts:.7g}"
    half = f"{float(level) / 2:.7g}"
    freq = f"{1 / 12.12:.9g}"
    assert inst.log == [
        ";".join([
            ":OUTP1 OFF",
            f":SOUR1:APPL:PULS {freq},{level},{half},0",
            ":SOUR1:FUNC:PULS:WIDT 12",
            ":SOUR1:BURS:MODE TRIG",
            ":SOUR1:BURS:NCYC 1",
            ":SOUR1:BURS:TRIG:SOUR EXT",
            ":SOUR1:BURS:TRIG:SLOP POS",
            ":SOUR1:BURS:IDLE BOTTOM",
            ":SOUR1:BURS ON",
            ":SYST:ERR?",
        ]),
        ":SOUR1:BURS?", ":SOUR1:BURS:IDLE?", ":SOUR1:FUNC:PULS:WIDT?", ":SOUR1:VOLT?",
        ":SOUR1:VOLT:OFFS?",
        ":OUTP1 ON;:SYST:ERR?", ":OUTP1?",
    ]  # fmt: skip
    inst.log.clear()
    rig.heater.make_safe()  # back to DC, which has no burst: the pulse is disarmed
    assert inst.log[0] == ":SOUR1:APPL:DC DEF,DEF,0;:SYST:ERR?"
    assert not generator(rig).model.channels[1].burst  # type: ignore[attr-defined]
    assert_safe(rig)


def test_manual_trigger_fires_by_scpi(bench: Bench) -> None:
    gen = bench.driver(pulse_trigger="manual")
    gen.arm_pulse(1.0, 0.25)
    bench.clock.run_to(1.0)
    gen.fire_pulse()
    bench.clock.run_to(2.0)
    assert bench.outputs[-3:] == [(0.0, True), (1.0, True), (0.0, True)]
    assert bench.advanced == [1.25]  # the world runs hot up to the end, not to 2.0 s
    with pytest.raises(InstrumentError, match=r'-211,"Trigger ignored"'):
        gen.set_dc(0.0)
        gen.fire_pulse()  # no burst armed any more
    gen.close()


def test_a_watchdog_thread_can_make_it_safe_while_another_heats(rig: SimRig) -> None:
    errors: list[Exception] = []

    def repeat(action: Callable[[], object]) -> None:
        try:
            for _ in range(40):
                action()
        except Exception as e:
            errors.append(e)

    heating = threading.Thread(target=repeat, args=(lambda: rig.heater.set_temperature(380.0),))
    safing = threading.Thread(target=repeat, args=(rig.heater.make_safe,))
    heating.start()
    safing.start()
    heating.join()
    safing.join()
    assert errors == []  # no interleaved SCPI, no half-done step seen by the other thread
    rig.heater.make_safe()
    assert_safe(rig)
