"""The Rigol DG1000Z driver against the instrument model behind a simulated VISA resource:
exact SCPI, limits, readback, named faults, and the heater left at 0 V with the output off."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tjump.clock import VirtualClock
from tjump.devices.faults import (
    DriverLimitError,
    InstrumentError,
    NoAnswer,
    ReadbackMismatch,
    ResourceNotFound,
    VisaTimeout,
    WrongInstrument,
)
from tjump.devices.rigol import RigolDG1000Z
from tjump.errors import LimitError
from tjump.rig import Rig, build_rig, load_rig
from tjump.sim.rigol import SimRigolDG1000Z
from tjump.sim.visa import SimInstrument, SimVisaLibrary

from conftest import rig_yaml

RESOURCE = "USB0::0x1AB1::0x0642::DG1ZA000000001::INSTR"
WriteFile = Callable[[str, str], Path]


class Bench:
    """A generator model on a simulated USB resource, and what reached its output."""

    def __init__(self, idn: str = "Rigol Technologies,DG1062Z,DG1ZA000000001,00.01.14"):
        self.clock = VirtualClock()
        self.model = SimRigolDG1000Z(self.clock, idn=idn)
        self.visa = SimVisaLibrary()
        self.instrument: SimInstrument = self.visa.add(RESOURCE, self.model)
        self.outputs: list[tuple[float, bool]] = []
        self.advanced: list[float] = []  # times the world was asked to integrate up to
        self.model.connect(lambda v, on: self.outputs.append((v, on)), self.advanced.append)

    def driver(self, **kwargs: object) -> RigolDG1000Z:
        return RigolDG1000Z(RESOURCE, self.visa, timeout_ms=50, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def rig(write_file: WriteFile) -> Iterator[Rig]:
    with build_rig(load_rig(write_file("rig.yaml", rig_yaml(width=48, height=48)))) as rig:
        yield rig


def generator(rig: Rig) -> SimInstrument:
    assert rig.visa is not None
    return rig.visa.instrument(rig.config.devices.generator.resource)


def assert_safe(rig: Rig) -> None:
    """What the simulated world receives: 0 V with the output off."""
    assert rig.world is not None
    assert rig.world.generator_volts == 0.0
    assert not rig.world.generator_on


def test_connect_checks_identity_then_output_off_and_highz() -> None:
    bench = Bench()
    assert bench.model.channels[1].load_ohm == 50.0  # power-on default: twice into HighZ
    gen = bench.driver()
    assert bench.instrument.log == [
        "*IDN?",
        "*CLS",
        ":OUTP1 OFF", ":SYST:ERR?", ":OUTP1?",
        ":OUTP1:IMP INF", ":SYST:ERR?", ":OUTP1:IMP?",
        ":SOUR1:APPL:DC DEF,DEF,0", ":SYST:ERR?", ":SOUR1:VOLT:OFFS?",
    ]  # fmt: skip
    assert bench.model.channels[1].load_ohm is None
    assert gen.identity() == "Rigol Technologies DG1062Z (serial DG1ZA000000001, firmware 00.01.14)"
    gen.set_dc(1.25)
    gen.set_output(True)
    assert bench.model.output_V() == (1.25, True)  # HighZ: the setting is what comes out
    gen.close()


def test_heat_cool_cycle_sends_exactly_this_scpi_and_ends_off(rig: Rig) -> None:
    inst = generator(rig)
    inst.log.clear()
    drive = rig.heater.set_temperature(384.9)
    assert rig.world is not None and rig.world.generator_on
    assert rig.world.generator_volts == pytest.approx(drive, abs=1e-5)
    rig.heater.set_temperature(293.0)
    rig.heater.make_safe()
    level = f"{drive:.6g}"
    assert inst.log == [
        f":SOUR1:APPL:DC DEF,DEF,{level}", ":SYST:ERR?", ":SOUR1:VOLT:OFFS?",
        ":OUTP1 ON", ":SYST:ERR?", ":OUTP1?",
        ":SOUR1:APPL:DC DEF,DEF,0", ":SYST:ERR?", ":SOUR1:VOLT:OFFS?",
        ":OUTP1 ON", ":SYST:ERR?", ":OUTP1?",
        ":SOUR1:APPL:DC DEF,DEF,0", ":SYST:ERR?", ":SOUR1:VOLT:OFFS?",
        ":OUTP1 OFF", ":SYST:ERR?", ":OUTP1?",
        ":SOUR1:FUNC?", ":SOUR1:VOLT:OFFS?", ":OUTP1?",
    ]  # fmt: skip
    assert_safe(rig)


def test_the_heater_physics_follows_the_simulated_generator(rig: Rig) -> None:
    assert rig.world is not None
    rig.heater.set_temperature(384.9)
    rig.clock.run_to(30.0)
    assert rig.world.temperature() == pytest.approx(384.9, abs=3.0)
    rig.heater.make_safe()
    rig.clock.run_to(80.0)
    assert rig.world.temperature() < 300.0


def test_the_model_speaks_short_and_long_forms_in_any_case() -> None:
    bench = Bench()
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


def test_driver_refuses_a_level_beyond_the_rig_limit_before_sending(rig: Rig) -> None:
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
    bench = Bench()
    with pytest.raises(ResourceNotFound, match=r"USB0::0x1AB1::0x0642::NOPE::INSTR.*resource name"):
        RigolDG1000Z("USB0::0x1AB1::0x0642::NOPE::INSTR", bench.visa)
    with pytest.raises(ResourceNotFound, match="open not-a-resource"):
        RigolDG1000Z("not-a-resource", bench.visa)


def test_an_instrument_that_does_not_answer_is_named() -> None:
    bench = Bench()
    bench.instrument.dead = True
    with pytest.raises(NoAnswer, match=r"does not answer \[\*IDN\?\].*power-cycle"):
        bench.driver()
    assert not any(on for _, on in bench.outputs)  # the output was never switched on


def test_wrong_idn_is_refused_before_anything_is_sent() -> None:
    bench = Bench(idn="KEYSIGHT TECHNOLOGIES,33510B,MY1234,4.00")
    with pytest.raises(WrongInstrument, match="is 'KEYSIGHT TECHNOLOGIES,33510B"):
        bench.driver()
    assert bench.instrument.log == ["*IDN?"]
    assert not any(on for _, on in bench.outputs)  # the output was never switched on


def test_idn_maker_is_compared_in_any_case() -> None:
    bench = Bench(idn="RIGOL TECHNOLOGIES,DG1022Z,DG1ZA2,00.01.12")
    bench.driver().close()


def test_an_error_in_the_queue_stops_the_step_and_leaves_the_heater_safe(rig: Rig) -> None:
    inst = generator(rig)
    rig.heater.set_temperature(380.0)
    assert rig.world is not None and rig.world.generator_on
    inst.model.errors.push((-314, "Save/recall memory lost"))  # type: ignore[attr-defined]
    with pytest.raises(InstrumentError, match=r'-314,"Save/recall memory lost" \[:SOUR1:APPL:DC'):
        rig.heater.set_temperature(384.9)
    assert_safe(rig)
    assert rig.heater.is_safe()


def test_a_visa_timeout_stops_the_step_and_leaves_the_heater_safe(rig: Rig) -> None:
    inst = generator(rig)
    rig.heater.set_temperature(380.0)
    inst.answers_to_drop = 1  # the next answer is lost on the way back
    with pytest.raises(VisaTimeout, match=r"no answer within .* \[:SYST:ERR\?\]"):
        rig.heater.set_temperature(384.9)
    assert_safe(rig)


def test_a_setting_that_does_not_take_is_caught_by_readback(rig: Rig) -> None:
    rig.heater.set_temperature(380.0)
    generator(rig).ignored = (":SOUR1:APPL:DC",)  # accepted, not applied, no error
    with pytest.raises(ReadbackMismatch, match=r"reads 1\.\d+ after ':SOUR1:APPL:DC") as fault:
        rig.heater.set_temperature(384.9)
    assert "heater NOT confirmed safe" in "".join(fault.value.__notes__)
    assert rig.world is not None and not rig.world.generator_on  # the output still went off
    generator(rig).ignored = ()
    rig.heater.make_safe()
    assert_safe(rig)


def test_a_bounded_heat_pulse_ends_in_the_instrument_on_time(rig: Rig) -> None:
    world = rig.world
    assert world is not None
    volts = rig.heater.arm_heat_pulse(384.9, duration_s=2.0)
    assert world.generator_on and world.generator_volts == 0.0  # armed, idling at 0 V
    rig.clock.run_to(1.0)
    rig.heater.fire_heat_pulse()  # a rising edge on the DAQ's generator trigger line
    assert world.generator_volts == pytest.approx(volts, abs=1e-5)
    generator(rig).dead = True  # the computer stops talking to the instrument
    rig.clock.run_to(2.995)
    assert world.generator_volts == pytest.approx(volts, abs=1e-5)
    rig.clock.run_to(10.0)
    assert world.generator_volts == 0.0  # ended by the instrument at 3.0 s
    heated = world.temperature()
    assert heated < 384.9
    generator(rig).dead = False
    rig.heater.make_safe()
    assert_safe(rig)


def test_a_bounded_pulse_drives_the_world_for_exactly_its_width(rig: Rig) -> None:
    world = rig.world
    assert world is not None
    rig.daq.start(10.0)
    rig.heater.arm_heat_pulse(384.9, duration_s=0.5)
    rig.clock.run_to(1.0)
    rig.heater.fire_heat_pulse()
    rig.clock.run_to(3.0)
    drive = rig.daq.read().data[:, 0]
    on = drive > 0.5
    assert on.sum() == 100  # 0.5 s at 200 samples/s, ended between two clock steps
    assert on.argmax() == 200  # from the trigger's tick (t = 1.0 s) on


def test_pulse_limits_are_checked_before_anything_is_sent(rig: Rig) -> None:
    inst = generator(rig)
    inst.log.clear()
    with pytest.raises(LimitError, match="longer than the rig's max_time_above 300 s"):
        rig.heater.arm_heat_pulse(473.0, duration_s=400.0)
    with pytest.raises(LimitError, match="above ambient"):
        rig.heater.arm_heat_pulse(293.0, duration_s=4.0)
    assert inst.log == []


def test_the_pulse_is_programmed_with_this_scpi(rig: Rig) -> None:
    inst = generator(rig)
    inst.log.clear()
    volts = rig.heater.arm_heat_pulse(384.9, duration_s=12.0)
    level = f"{volts:.6g}"
    half = f"{float(level) / 2:.7g}"
    freq = f"{1 / 12.12:.9g}"
    commands = [m for m in inst.log if m not in (":SYST:ERR?",)]
    assert commands == [
        ":OUTP1 OFF", ":OUTP1?",
        f":SOUR1:APPL:PULS {freq},{level},{half},0",
        ":SOUR1:FUNC:PULS:WIDT 12",
        ":SOUR1:BURS:MODE TRIG",
        ":SOUR1:BURS:NCYC 1",
        ":SOUR1:BURS:TRIG:SOUR EXT",
        ":SOUR1:BURS:TRIG:SLOP POS",
        ":SOUR1:BURS:IDLE BOTTOM", ":SOUR1:BURS:IDLE?",
        ":SOUR1:BURS ON", ":SOUR1:BURS?",
        ":SOUR1:FUNC:PULS:WIDT?",
        ":OUTP1 ON", ":OUTP1?",
    ]  # fmt: skip
    assert inst.log.count(":SYST:ERR?") == 10  # the error queue drained after every change
    inst.log.clear()
    rig.heater.make_safe()  # back to DC: the burst goes off first
    assert inst.log[:3] == [":SOUR1:BURS OFF", ":SYST:ERR?", ":SOUR1:BURS?"]
    assert_safe(rig)


def test_manual_trigger_fires_by_scpi() -> None:
    bench = Bench()
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


def test_a_watchdog_thread_can_make_it_safe_while_another_heats(rig: Rig) -> None:
    errors: list[Exception] = []

    def repeat(action: Callable[[], object]) -> None:
        try:
            for _ in range(150):
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
