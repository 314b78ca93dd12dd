"""Faults between the computer and the generator, over a real socket through pyvisa-py:
reset, closed, cable pulled, late answer, garbled answer, wrong instrument, an instrument
left armed by a crashed run, an error queued after a command. Each gives one named fault
(instrument, command, what to do); after each, a new session leaves the instrument's own
output off at 0 V (read from the simulated instrument, not through the driver)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sim_bench import Bench
from tjump.devices.faults import (
    ConnectionLost,
    InstrumentError,
    NoAnswer,
    UnknownAnswer,
    VisaTimeout,
    WrongInstrument,
)
from tjump.devices.rigol import RigolDG1000Z
from tjump.errors import DeviceError


@pytest.fixture
def bench() -> Iterator[Bench]:
    bench = Bench()
    yield bench
    bench.close()


def heating(bench: Bench) -> RigolDG1000Z:
    """A session driving 1.2 V with the output on."""
    gen = bench.driver()
    gen.set_dc(1.2)
    gen.set_output(True)
    assert bench.model.output_V() == (1.2, True)
    return gen


def new_session_leaves_it_off(bench: Bench) -> None:
    bench.driver().close()
    bench.assert_off()


def test_a_reset_connection_is_named_and_the_next_command_reconnects(bench: Bench) -> None:
    gen = heating(bench)
    bench.server.reset_connections()  # the instrument rebooted its LAN stack
    lost = r"connection lost to TCPIP0::127\.0\.0\.1::\d+::SOCKET \(ConnectionResetError"
    with pytest.raises(ConnectionLost, match=lost + r".*\[:OUTP1 OFF;:SYST:ERR\?\].*reconnects"):
        gen.set_output(False)
    gen.set_output(False)  # a new connection, checked with *CLS;*OPC?
    assert bench.model.output_V() == (1.2, False)
    assert bench.server.connections_accepted == 2
    gen.close()
    new_session_leaves_it_off(bench)


def test_a_connection_closed_by_the_instrument_is_named(bench: Bench) -> None:
    gen = heating(bench)
    bench.server.close_connections()
    with pytest.raises(ConnectionLost, match=r"SOCKET closed it \[:SOUR1:APPL:DC DEF,DEF,0;"):
        gen.set_dc(0.0)
    gen.set_dc(0.0)
    gen.set_output(False)
    bench.assert_off()
    gen.close()
    new_session_leaves_it_off(bench)


def test_a_pulled_cable_is_a_timeout_and_nothing_is_safe_until_it_answers(bench: Bench) -> None:
    gen = heating(bench)
    bench.server.faults.pulled = True  # the socket stays open, nothing gets through
    with pytest.raises(VisaTimeout, match=r"no answer within 200 ms \[:OUTP1 OFF;:SYST:ERR\?\]"):
        gen.set_output(False)
    with pytest.raises(VisaTimeout, match=r"resynchronising before :OUTP1\?"):
        gen.output_enabled()  # never a guess
    assert bench.model.output_V() == (1.2, True)  # the instrument never heard: still on
    bench.server.faults.pulled = False  # plugged back in
    gen.close()
    new_session_leaves_it_off(bench)


def test_a_late_answer_is_never_read_as_the_next_querys(bench: Bench) -> None:
    gen = heating(bench)
    bench.server.faults.late_answers, bench.server.faults.late_s = 1, 0.4
    with pytest.raises(VisaTimeout, match=r"\[:SOUR1:FUNC\?\]"):
        gen.dc_level()  # "DC" comes 0.4 s late, after the 0.2 s timeout
    # the late "DC" must not be taken as the answer to :OUTP1? (it would read as not ON)
    assert gen.output_enabled() is True
    assert gen.dc_level() == 1.2
    gen.close()
    new_session_leaves_it_off(bench)


def test_a_garbled_answer_is_unknown_never_safe(bench: Bench) -> None:
    gen = heating(bench)
    gen.set_dc(0.0)
    gen.set_output(False)
    bench.server.faults.garbled_answers = 1  # the "OFF" of :OUTP1? arrives as noise
    with pytest.raises(UnknownAnswer, match=r"none of the documented ON, OFF: state unknown "
                       r"\[:OUTP1\?\]"):  # fmt: skip
        gen.output_enabled()
    assert gen.output_enabled() is False  # resynchronised, then read in a documented form
    gen.close()
    new_session_leaves_it_off(bench)


def test_an_answer_that_is_not_text_is_unknown(bench: Bench) -> None:
    gen = heating(bench)
    bench.server.faults.binary_answers = 1
    with pytest.raises(UnknownAnswer, match=r"answered bytes that are not text: state unknown"):
        gen.output_enabled()
    assert gen.output_enabled() is True
    gen.close()
    new_session_leaves_it_off(bench)


@pytest.mark.parametrize(
    "idn",
    [
        "KEYSIGHT TECHNOLOGIES,33510B,MY1234,4.00",  # another maker's generator
        "Rigol Technologies,DG4162,DG4E123,00.01.10",  # a Rigol of another series
        "Rigol Technologies,DG1022,DG1D1,00.02.00",  # the older DG1000 (not Z)
    ],
)
def test_a_wrong_instrument_is_refused_before_anything_is_sent(idn: str) -> None:
    bench = Bench(idn=idn)
    try:
        with pytest.raises(WrongInstrument, match=f"is '{idn}', expected Rigol Technologies "
                           "DG1022Z or DG1032Z or DG1062Z.*correct it"):  # fmt: skip
            bench.driver()
        assert bench.server.log == ["*IDN?"]
        assert not any(on for _, on in bench.outputs)
    finally:
        bench.close()


def test_an_instrument_left_armed_by_a_crashed_run_is_taken_over_safely(bench: Bench) -> None:
    m = bench.model
    for message in (  # what a run that died mid-cool leaves: an armed burst, output on
        ":SOUR1:APPL:PULS 0.5,1.2,0.6,0", ":SOUR1:FUNC:PULS:WIDT 1.9", ":SOUR1:BURS:MODE TRIG",
        ":SOUR1:BURS:TRIG:SOUR EXT", ":SOUR1:BURS:IDLE BOTTOM", ":SOUR1:BURS ON", ":OUTP1 ON",
    ):  # fmt: skip
        m.handle(message)
    m.errors.push((-222, "Data out of range"))  # and an error nobody read
    assert m.channels[1].burst and m.output_V() == (0.0, True)
    bench.driver().close()
    bench.assert_off()
    assert m.external_trigger() is False  # a stray trigger now starts nothing
    assert m.output_V() == (0.0, False)
    assert bench.server.log[1].startswith("*CLS;:OUTP1 OFF;")  # output off before anything


def test_an_error_queued_after_a_command_is_named_with_the_command(bench: Bench) -> None:
    gen = heating(bench)

    def inject(message: str) -> None:
        if message.startswith(":SOUR1:APPL:DC DEF,DEF,1.5"):
            bench.model.errors.push((-313, "Calibration memory lost"))

    bench.server.faults.on_message = inject
    with pytest.raises(InstrumentError, match=r'instrument reported -313,"Calibration memory '
                       r'lost" \[:SOUR1:APPL:DC DEF,DEF,1\.5\].*check the rig file'):  # fmt: skip
        gen.set_dc(1.5)
    gen.set_dc(0.0)
    gen.set_output(False)
    gen.close()
    new_session_leaves_it_off(bench)


def test_an_instrument_that_never_answers_is_named(bench: Bench) -> None:
    bench.server.faults.pulled = True
    with pytest.raises(NoAnswer, match=r"opened but does not answer \[\*IDN\?\].*power-cycle"):
        bench.driver()
    assert not any(on for _, on in bench.outputs)


def test_nothing_listening_is_named() -> None:
    bench = Bench()
    bench.close()
    with pytest.raises(ConnectionLost, match=r"cannot connect to .*ConnectionRefusedError"):
        bench.driver()


def test_every_fault_is_a_device_error_with_a_hint(bench: Bench) -> None:
    gen = heating(bench)
    bench.server.reset_connections()
    with pytest.raises(DeviceError) as fault:
        gen.output_enabled()
    assert fault.value.hint and fault.value.device.startswith("generator (Rigol DG1000Z at")
    gen.close()
