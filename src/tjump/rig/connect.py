"""Connecting one device from its section of the rig file; each function gives back a
connected device or raises a named fault, leaving nothing open behind it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

from pymmcore_plus import CMMCorePlus

from tjump.devices.amplifier import Amplifier, AmplifierSupply
from tjump.devices.fastcamera import MicroManagerFastCamera
from tjump.devices.interfaces import Daq, DaqLine, HeaterSupply
from tjump.devices.mmcamera import MicroManagerCamera, release_callback
from tjump.devices.nidaq import NiDaq
from tjump.devices.rigol import RigolDG1000Z
from tjump.devices.sourcemeter import ScpiSourceMeter
from tjump.errors import DeviceError
from tjump.rig.calibration import load_calibration
from tjump.rig.config import AmplifierConfig, NiDaqConfig, RigConfig, SourceMeterConfig
from tjump.rig.heater import Heater

Mirrors = Mapping[str, Callable[[str], object]]


def camera(config: RigConfig, core: CMMCorePlus) -> MicroManagerCamera:
    """The rig's camera on `core`, with binning, ROI, bit depth and exposure applied."""
    settings = config.devices.camera
    cam = MicroManagerCamera(core, settings.label)
    try:
        cam.configure(
            binning=settings.binning,
            roi=settings.roi,
            bit_depth=settings.bit_depth,
            hardware_triggered=settings.triggering == "hardware",
        )
        cam.set_exposure_ms(config.camera.exposure_ms)
    except BaseException:
        cam.close()
        raise
    return cam


def lab_camera(config: RigConfig) -> MicroManagerCamera:
    """A Micro-Manager core loaded with the rig's config file, and its camera."""
    settings = config.devices.camera
    if settings.config is None:
        raise DeviceError("camera", "no Micro-Manager config file in the rig file")
    return camera(config, _loaded_core("camera", settings.config, settings.mm_path))


def lab_fast_camera(config: RigConfig) -> MicroManagerFastCamera | None:
    """The rig's fast camera on a Micro-Manager core of its own (None without one)."""
    settings = config.devices.fast_camera
    if settings is None:
        return None
    core = _loaded_core("fast camera", settings.config, settings.mm_path)
    try:
        return MicroManagerFastCamera(core, settings.label, settings.frame_rate_hz)
    except (RuntimeError, ValueError) as e:
        release_callback(core)
        raise DeviceError(
            "fast camera",
            f"no camera '{settings.label}' in {settings.config}: {e}",
            "devices.fast_camera.label must name the camera device of that config file",
        ) from e


def _loaded_core(device: str, config_file: Path, mm_path: Path | None) -> CMMCorePlus:
    """A Micro-Manager core with `config_file` loaded, for `device`."""
    core = CMMCorePlus(str(mm_path) if mm_path else None)
    try:
        core.loadSystemConfiguration(str(config_file))
    except (OSError, RuntimeError, ValueError) as e:
        release_callback(core)  # no camera will hold it: let it go cleanly
        raise DeviceError(
            device,
            f"cannot load Micro-Manager config {config_file}: {e}",
            "open it in Micro-Manager's Hardware Configuration Wizard to find the fault",
        ) from e
    return core


def lab_daq(config: RigConfig) -> NiDaq:
    settings = config.devices.daq
    if not isinstance(settings, NiDaqConfig):
        raise DeviceError("daq", "a lab rig needs devices.daq.driver: nidaqmx")
    return NiDaq(settings, config.daq.sample_rate_hz)


def supply(config: RigConfig, mirrors: Mirrors | None = None) -> HeaterSupply:
    """The heater supply (and the generator driving it), each instrument at the VISA
    resource and library its section of the rig file names; `mirrors` (by role) are told
    every message the instrument took, for a simulated sample in a dry run."""
    mirrors = mirrors or {}
    limits, devices = config.limits, config.devices
    s = devices.supply
    if isinstance(s, SourceMeterConfig):
        compliance = min(s.compliance_A or limits.max_current_A, limits.max_current_A)
        return ScpiSourceMeter(
            s.resource,
            s.visa_library,
            limits.max_drive_V,
            compliance,
            s.timeout_ms,
            mirror=mirrors.get("supply"),
        )
    g = devices.generator
    if g is None:
        raise DeviceError("supply", "the amplifier needs devices.generator")
    amplifier = amplifier_of(s)
    generator = RigolDG1000Z(
        g.resource,
        g.visa_library,
        channel=g.channel,
        max_level_V=amplifier.input_V(limits.max_drive_V),
        pulse_trigger=g.pulse_trigger,
        timeout_ms=g.timeout_ms,
        mirror=mirrors.get("generator"),
    )
    return AmplifierSupply(generator, amplifier)


def amplifier_of(config: AmplifierConfig) -> Amplifier:
    """The amplifier model of the rig file's `devices.supply` section."""
    return Amplifier(config.gain, config.current_limit_A)


def heater(config: RigConfig, heater_supply: HeaterSupply, daq: Daq | None) -> Heater:
    """The heater facade, made safe (read back). Heat pulses start on the DAQ's generator
    trigger line, or by SCPI where the generator is set to `manual` triggering."""
    g = config.devices.generator
    trigger = None
    if isinstance(heater_supply, AmplifierSupply) and g is not None:
        if g.pulse_trigger == "manual":
            trigger = heater_supply.fire_pulse
        elif daq is not None:
            trigger = partial(_edge, daq)
    calibration = load_calibration(config.calibration)
    result = Heater(heater_supply, calibration, config.limits, config.ambient_K, trigger)
    result.make_safe()
    return result


def _edge(daq: Daq) -> None:
    """One rising edge on the generator's trigger line."""
    daq.set_digital(DaqLine.GENERATOR_TRIGGER, True)
    daq.set_digital(DaqLine.GENERATOR_TRIGGER, False)
