"""Rig files name their devices; the simulated rig runs through the real drivers, its
instruments on loopback sockets reached through pyvisa-py, and a fault injected into a
simulated instrument mid-run leaves the heater at 0 V, output off."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tjump.cli import app
from tjump.clock import VirtualClock
from tjump.devices.faults import DaqOverflow, InstrumentError, VisaTimeout
from tjump.devices.interfaces import DaqBlock
from tjump.errors import InputError
from tjump.protocol.schedule import Segment
from tjump.rig import load_rig
from tjump.rig.simulator import provide_simulator
from tjump.sequencer import Runner, open_run, plan_run, run_plan
from tjump.sim.rig import build_sim_rig, install
from tjump.sim.rigol import SimRigolDG1000Z
from tjump.sim.server import ScpiSocketServer
from tjump.storage import RunDirectory

from conftest import ROOT, rig_yaml, series_protocol

WriteFile = Callable[[str, str], Path]
FAST_TIMEOUT = "devices:\n  generator: {timeout_ms: 300}\n"


def commands(log: list[str]) -> list[str]:
    """Every command of every message, `;`-joined ones split."""
    return [c for message in log for c in message.split(";")]


def small_rig(write_file: WriteFile, extra: str = "") -> Path:
    return write_file("rig.yaml", rig_yaml(width=48, height=48, particles=4, references=1) + extra)


def test_a_run_drives_the_heater_through_the_rigol_driver(write_file: WriteFile) -> None:
    protocol = write_file("p.yaml", series_protocol(cycles=2, heat_s=2, cool_s=1, baseline_s=1))
    plan = plan_run(protocol, small_rig(write_file))
    with build_sim_rig(plan.rig) as rig:
        assert rig.config.devices.generator.resource.startswith("TCPIP0::127.0.0.1::")
        log = rig.instrument("generator").log
        log.clear()
        result = run_plan(plan, protocol.parent / "out", rig=rig)
        assert rig.generator_output() == (0.0, False)
        sent = commands(log)  # what the run sent, before closing the rig adds its own
    assert result.status == "complete"
    # each heat is a pulse the generator ends by itself, armed while the film is at 0 V
    drive = f"{rig.heater.calibration.drive_for(384.9):.7g}"
    pulses = [m.split(",")[1] for m in sent if m.startswith(":SOUR1:APPL:PULS")]
    widths = [m for m in sent if m.startswith(":SOUR1:FUNC:PULS:WIDT ")]
    assert pulses == [drive, drive]
    assert widths == [":SOUR1:FUNC:PULS:WIDT 2"] * 2
    levels = [m.rsplit(",", 1)[1] for m in sent if m.startswith(":SOUR1:APPL:DC")]
    assert set(levels) == {"0"}  # between the pulses: 0 V
    assert sent[-6:] == [":OUTP1 OFF", ":SYST:ERR?", ":OUTP1?",
                         ":SOUR1:FUNC?", ":SOUR1:VOLT:OFFS?", ":OUTP1?"]  # fmt: skip
    with (protocol.parent / "out" / "frames.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "heat"]
    assert float(rows[-1]["drive_V"]) == pytest.approx(float(drive), abs=0.01)


@pytest.mark.parametrize("fault", ["error", "timeout"])
def test_a_fault_mid_run_leaves_the_heater_off(write_file: WriteFile, fault: str) -> None:
    protocol = write_file("p.yaml", series_protocol(cycles=2, heat_s=2, cool_s=1, baseline_s=1))
    plan = plan_run(protocol, small_rig(write_file, FAST_TIMEOUT))
    with build_sim_rig(plan.rig) as rig:
        instrument = rig.instrument("generator")

        def connect(seq: Runner) -> None:
            def inject(segment: Segment) -> None:
                if segment.kind == "cool" and fault == "error":
                    instrument.model.errors.push((-330, "Self-test failed"))  # type: ignore[attr-defined]
                elif segment.kind == "cool":
                    instrument.faults.late_answers, instrument.faults.late_s = 1, 0.5

            seq.events.segment_finished.connect(inject)

        expected = InstrumentError if fault == "error" else VisaTimeout
        with pytest.raises(expected, match="generator"):
            runner = open_run(plan, protocol.parent / "out", rig=rig)
            connect(runner)
            runner.run()
        assert rig.generator_output() == (0.0, False)
        assert rig.heater.is_safe()
    assert RunDirectory(protocol.parent / "out").manifest()["status"] == "failed"


def test_a_daq_overflow_mid_run_leaves_the_heater_off(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    protocol = write_file("p.yaml", series_protocol(cycles=2, heat_s=2, cool_s=1, baseline_s=1))
    plan = plan_run(protocol, small_rig(write_file))
    with build_sim_rig(plan.rig) as rig:
        read = rig.daq.read

        def overflowing() -> DaqBlock:
            if rig.generator_output()[1]:  # heating: the reader falls behind
                raise DaqOverflow(rig.daq.name, "DAQmx Read", "input buffer overflow")
            return read()

        monkeypatch.setattr(rig.daq, "read", overflowing)
        with pytest.raises(DaqOverflow, match=r"input buffer overflow \[DAQmx Read\]"):
            run_plan(plan, protocol.parent / "out", rig=rig)
        assert rig.generator_output() == (0.0, False)
    assert RunDirectory(protocol.parent / "out").manifest()["status"] == "failed"


def test_the_rig_files_name_real_drivers_over_simulated_instruments() -> None:
    for name in ("sim.yaml", "sim-small.yaml"):
        rig = load_rig(ROOT / "configs" / "rigs" / name)
        assert rig.devices.generator.driver == "rigol-dg1000z"
        assert rig.devices.generator.visa_library in ("simulated", "@py")
        assert rig.devices.supply.driver == "amplifier"
        assert rig.devices.camera.driver == "micro-manager"


def test_a_simulated_rig_serves_its_instruments_where_the_rig_file_says(
    write_file: WriteFile,
) -> None:
    extra = (
        "devices:\n  generator: {resource: 'TCPIP0::127.0.0.1::0::SOCKET', visa_library: '@py'}\n"
    )
    with build_sim_rig(load_rig(small_rig(write_file, extra))) as rig:
        port = rig.instrument("generator").port
        assert port > 0
        assert rig.config.devices.generator.resource == f"TCPIP0::127.0.0.1::{port}::SOCKET"
        assert rig.heater.is_safe()


def test_a_dry_run_drives_the_labs_generator_and_the_film_follows_it(
    write_file: WriteFile,
) -> None:
    """The lab's generator (here a DG1000Z model on another loopback address, with its own
    clock: nothing ties it to the simulated world) driven for real; the simulated film
    follows what the driver told it."""
    lab = SimRigolDG1000Z(VirtualClock())
    with ScpiSocketServer(lab, lock=lab.lock, host="127.0.0.2") as server:
        extra = f"devices:\n  generator: {{resource: '{server.resource}', visa_library: '@py'}}\n"
        protocol = write_file("p.yaml", series_protocol(cycles=1, heat_s=2, cool_s=1))
        plan = plan_run(protocol, small_rig(write_file, extra))
        with build_sim_rig(plan.rig) as rig:
            with pytest.raises(KeyError, match="no simulated generator"):
                rig.instrument("generator")  # the lab's, not served here
            volts = rig.heater.set_temperature(384.9)
            assert lab.output_V() == (pytest.approx(volts, abs=1e-6), True)  # for real
            assert rig.generator_output()[0] == pytest.approx(volts, abs=1e-6)  # followed
            rig.heater.make_safe()
            result = run_plan(plan, protocol.parent / "out", rig=rig)
        assert result.status == "complete"
        assert lab.output_V() == (0.0, False)
        assert any(m.startswith(":OUTP1 OFF;:SOUR1:APPL:PULS") for m in server.log)
    with (protocol.parent / "out" / "frames.csv").open() as f:
        heat = [float(r["drive_V"]) for r in csv.DictReader(f) if r["kind"] == "heat"]
    assert max(heat) == pytest.approx(volts, abs=0.01)  # the film saw the commanded pulse


def test_a_lab_rig_cannot_name_the_simulated_instruments(write_file: WriteFile) -> None:
    lab = (ROOT / "configs" / "rigs" / "lab.yaml").read_text()
    bad = re.sub(r"visa_library: .*", "visa_library: simulated", lab, count=1)
    path = write_file("lab.yaml", bad)
    with pytest.raises(InputError, match="visa_library 'simulated' is for a simulated rig only"):
        load_rig(path)


def test_one_amplifier_model_for_the_driver_and_the_simulated_film(
    write_file: WriteFile,
) -> None:
    """Gain 2: the driver sets the generator to half the drive, the simulated amplifier
    (the same model) puts the whole drive on the film, and the DAQ reads the film's."""
    extra = "devices:\n  supply: {gain: 2.0, current_limit_A: 0.2}\n"
    with build_sim_rig(load_rig(small_rig(write_file, extra))) as rig:
        rig.daq.start(10.0)
        volts = rig.heater.set_temperature(384.9)
        level, on = rig.generator_output()
        assert on and level == pytest.approx(volts / 2, abs=1e-6)
        assert rig.film_drive_V() == pytest.approx(volts, abs=1e-6)
        assert rig.heater.supply.voltage() == pytest.approx(volts, abs=1e-6)
        rig.clock.run_to(20.0)
        assert rig.film_temperature_K() == pytest.approx(384.9, abs=3.0)
        drive = rig.daq.read().data[-100:, 0]
        assert np.median(drive) == pytest.approx(volts, abs=0.01)
        rig.heater.make_safe()
        assert rig.generator_output() == (0.0, False) and rig.film_drive_V() == 0.0


def test_a_simulated_rig_file_no_longer_takes_a_second_amplifier(write_file: WriteFile) -> None:
    with pytest.raises(InputError, match=r"simulation.supply"):
        load_rig(small_rig(write_file, "  supply: {gain: 2.0}\n"))


def test_devices_check_lists_every_device_and_leaves_them_off(write_file: WriteFile) -> None:
    rig = str(small_rig(write_file))
    result = CliRunner().invoke(app, ["devices", "check", "--rig", rig], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for text in ("generator", "DG1062Z", "load HighZ", "supply", "daq", "camera", "heater",
                 "0 V, output off (read back)", "<= 480 K", "fast camera (simulated)",
                 "500 frames/s"):  # fmt: skip
        assert text in result.output
    verified = re.search(
        r"generator: verified identity; output OFF, DC 0 V, burst OFF, load HighZ \(read back\); "
        r"TCP_NODELAY on; measured round trip ([\d.]+) ms; arm ([\d.]+) ms \(8 round trips\); "
        r"make safe ([\d.]+) ms",
        result.output,
    )
    assert verified is not None, result.output
    round_trip, arm, safe = map(float, verified.groups())
    assert 0 < round_trip < arm and safe > 0  # measured, over the socket


def test_devices_check_fails_on_a_problem(write_file: WriteFile) -> None:
    extra = "devices:\n  camera: {bit_depth: 12}\n"
    result = CliRunner().invoke(
        app, ["devices", "check", "--rig", str(small_rig(write_file, extra))]
    )
    assert result.exit_code == 1
    assert "images are 16-bit, the rig file expects 12" in result.output


def test_devices_check_on_a_bad_rig_file_is_one_message(write_file: WriteFile) -> None:
    bad = small_rig(write_file, "devices:\n  generator: {channel: 3}\n")
    done = subprocess.run(
        [sys.executable, "-m", "tjump", "devices", "check", "--rig", str(bad)],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "devices.generator.channel" in done.stderr
    assert "Traceback" not in done.stderr


def _lab_software_missing() -> bool:
    """True on a machine without NI-DAQmx, USB access for pyvisa-py and Micro-Manager
    (like CI)."""
    from tjump.devices.nidaq import nidaqmx

    try:
        import usb  # type: ignore[import-not-found]  # noqa: F401

        return False
    except ImportError:
        pass
    try:
        nidaqmx.system.System.local().driver_version  # noqa: B018
        return False
    except Exception:
        return True


@pytest.mark.skipif(not _lab_software_missing(), reason="lab software is installed here")
def test_devices_check_on_the_lab_rig_names_each_missing_device() -> None:
    rig = str(ROOT / "configs" / "rigs" / "lab.yaml")
    result = CliRunner().invoke(app, ["devices", "check", "--rig", rig], env={"COLUMNS": "250"})
    assert result.exit_code == 1
    out = result.output
    assert "error: generator (Rigol DG1000Z at USB0::0x1AB1::0x0642::DG1ZA" in out
    assert "cannot open this kind of resource: Please install PyUSB" in out
    assert "error: daq (NI Dev1): NI-DAQmx is not installed on this computer" in out
    assert "error: camera: cannot load Micro-Manager config" in out and "pike-f032b.cfg" in out


def test_a_lab_devices_check_never_loads_the_simulator() -> None:
    """The lab's `tjump devices check` (its instruments absent here) reports every device
    and loads neither tjump.sim nor Micro-Manager's Python (simulated) devices."""
    code = f"""
import sys
from tjump.cli import main
sys.argv = ["tjump", "devices", "check", "--rig", {str(ROOT / "configs" / "rigs" / "lab.yaml")!r}]
try:
    main()
except SystemExit as e:
    print("exit", e.code)
loaded = [m for m in sys.modules if m.startswith(("tjump.sim", "pymmcore_plus.experimental"))]
print("loaded", loaded)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "exit 1" in done.stdout  # no instrument answers here: a problem per device
    report = done.stdout + done.stderr
    assert all(device in report for device in ("generator", "daq", "camera"))
    assert done.stdout.splitlines()[-1] == "loaded []"


def test_a_simulated_rig_file_needs_the_simulator_installed(write_file: WriteFile) -> None:
    path = small_rig(write_file)
    provide_simulator(None)
    try:
        with pytest.raises(InputError, match=r"is a simulated rig, and no simulator is installed"):
            load_rig(path)
    finally:
        install()
    assert load_rig(path).seed == 7
