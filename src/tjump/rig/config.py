"""The rig file: which devices, their settings, the heater calibration and the limits that
no protocol or control may cross."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from tjump.files import load_yaml, validate
from tjump.rig.heater_model import FilmResistance, load_heater_model
from tjump.sim.config import SimConfig, ThermalComponent

SIMULATED = "simulated"  # visa_library naming the simulated rig's own instruments


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeAboveLimit(_Strict):
    """At most `seconds` in one go above `temperature_K`."""

    temperature_K: PositiveFloat
    seconds: PositiveFloat


class Limits(_Strict):
    """Hard limits of the rig. The sequencer and the heater both enforce them."""

    max_temperature_K: PositiveFloat
    max_drive_V: PositiveFloat
    max_current_A: PositiveFloat
    max_time_above: TimeAboveLimit


class CameraSettings(_Strict):
    exposure_ms: PositiveFloat = 50.0
    max_frame_rate_hz: PositiveFloat = 200.0
    pixel_size_um: PositiveFloat = 0.37
    sensor_px: tuple[PositiveInt, PositiveInt] = Field(
        (640, 480), description="full sensor width, height (the Pike F-032B's by default)"
    )


class DaqSettings(_Strict):
    sample_rate_hz: PositiveFloat = 200.0


class VisaConnection(_Strict):
    """Where a SCPI instrument is: a VISA resource and the VISA library to reach it."""

    resource: str = Field(description="VISA resource, e.g. USB0::0x1AB1::0x0642::DG1ZA...::INSTR")
    visa_library: str = Field(
        "",
        description='"" for the system VISA, "@py" for pyvisa-py, "simulated" for the '
        "simulated rig's own instruments (served on a loopback socket)",
    )
    timeout_ms: PositiveInt = 2000


class RigolGeneratorConfig(VisaConnection):
    """Rigol DG1000Z driving the amplifier's input (set to HighZ by the driver)."""

    driver: Literal["rigol-dg1000z"] = "rigol-dg1000z"
    resource: str = "USB0::0x1AB1::0x0642::DG1ZA000000001::INSTR"
    visa_library: str = SIMULATED
    channel: Literal[1, 2] = 1
    pulse_trigger: Literal["external", "manual"] = Field(
        "external",
        description="what starts a bounded heat pulse: the DAQ's generator line "
        "(external) or a SCPI command (manual)",
    )
    arm_time_s: PositiveFloat = Field(
        0.5,
        description="time to program one heat pulse, at most (`tjump devices check` measures "
        "it); the 0 V phase before a heated step must be longer",
    )


class AmplifierConfig(_Strict):
    """Corrtest CS120 as an analog amplifier: drive = gain x generator output."""

    driver: Literal["amplifier"] = "amplifier"
    gain: PositiveFloat = 1.0
    current_limit_A: PositiveFloat | None = Field(
        None, description="set on the CS120 itself; shown by `tjump devices check`"
    )


class SourceMeterConfig(VisaConnection):
    """A SCPI source-meter (Keithley 2400 dialect) driving the film directly."""

    driver: Literal["scpi-source-meter"]
    compliance_A: PositiveFloat | None = Field(
        None, description="current compliance; at most limits.max_current_A (the default)"
    )


class SimDaqConfig(_Strict):
    driver: Literal["simulated"] = "simulated"


class NiDaqConfig(_Strict):
    """NI USB-6251 channel layout (DOMAIN.md): AI on one clock, ctr0 camera pulse train,
    ctr1 counting exposure-active edges on the AI clock, digital lines for triggers."""

    driver: Literal["nidaqmx"] = "nidaqmx"
    device: str = "Dev1"
    drive_channel: str = "ai0"
    current_channel: str = "ai1"
    ai_range_V: PositiveFloat = 10.0
    current_A_per_V: PositiveFloat = Field(description="current monitor scale of the supply")
    camera_counter: str = "ctr0"
    camera_trigger_terminal: str = "PFI12"
    exposure_counter: str = "ctr1"
    exposure_terminal: str = "PFI3"
    generator_trigger_line: str = "port0/line0"
    shutter_line: str = "port0/line1"
    buffer_s: PositiveFloat = 10.0


class CameraDeviceConfig(_Strict):
    """A Micro-Manager camera: a config file for the lab, the Python camera when simulated."""

    driver: Literal["micro-manager"] = "micro-manager"
    config: Path | None = Field(None, description="Micro-Manager .cfg (relative to the rig file)")
    mm_path: Path | None = Field(None, description="Micro-Manager installation (device adapters)")
    label: str = "Camera"
    binning: PositiveInt = 1
    roi: tuple[int, int, PositiveInt, PositiveInt] | None = Field(
        None, description="x, y, width, height in pixels"
    )
    bit_depth: int | None = Field(None, ge=8, le=16)
    triggering: Literal["hardware", "software"] = "hardware"


class Devices(_Strict):
    """The instruments of the rig; the defaults are the simulated ones."""

    generator: RigolGeneratorConfig | None = RigolGeneratorConfig()
    supply: AmplifierConfig | SourceMeterConfig = AmplifierConfig()
    daq: Annotated[SimDaqConfig | NiDaqConfig, Field(discriminator="driver")] = SimDaqConfig()
    camera: CameraDeviceConfig = CameraDeviceConfig()


class RigConfig(_Strict):
    """A whole rig as described by its YAML file."""

    name: str
    description: str = ""
    kind: Literal["simulated", "lab"]
    ambient_K: PositiveFloat = 293.0
    calibration: Path = Field(description="CSV of temperature_K,drive_V (relative to the rig file)")
    limits: Limits
    camera: CameraSettings = CameraSettings()
    daq: DaqSettings = DaqSettings()
    devices: Devices = Devices()
    heater_step_response: tuple[ThermalComponent, ...] | None = Field(
        None,
        description="the film's measured step response; a simulated rig's is its model's",
    )
    film_resistance: FilmResistance | None = Field(
        None, description="R0 and alpha of the film, for its temperature from V/I"
    )
    heater_model: Path | None = Field(
        None,
        description="file written by `tjump calibrate` (relative to the rig file): film "
        "resistance and step response, used where not given inline",
    )
    simulation: SimConfig = SimConfig()

    @property
    def film(self) -> FilmResistance | None:
        """The film's R(T), where known: a simulated rig's is its model's."""
        if self.film_resistance is None and self.kind == "simulated":
            t = self.simulation.thermal
            return FilmResistance(r0_ohm=t.r0_ohm, alpha_per_K=t.alpha_per_K, t0_K=self.ambient_K)
        return self.film_resistance

    @property
    def step_response(self) -> tuple[ThermalComponent, ...] | None:
        """How the film follows a step of its setpoint, where known: analysis uses it to
        fit activation energies against the film's lagging temperature."""
        if self.heater_step_response is None and self.kind == "simulated":
            return self.simulation.thermal.step_response
        return self.heater_step_response

    @model_validator(mode="after")
    def _devices_fit_kind(self) -> RigConfig:
        d = self.devices
        simulated = self.kind == "simulated"
        for role, device in (("generator", d.generator), ("supply", d.supply)):
            if (
                isinstance(device, VisaConnection)
                and not simulated
                and (device.visa_library == SIMULATED)
            ):
                raise ValueError(
                    f"devices.{role}.visa_library '{SIMULATED}' is for a simulated rig only "
                    f"(the simulated heater follows the simulated instruments)"
                )
        if isinstance(d.supply, AmplifierConfig) and d.generator is None:
            raise ValueError("devices.generator: the amplifier supply needs a generator")
        if simulated != (d.daq.driver == "simulated"):
            raise ValueError(
                "devices.daq.driver must be 'simulated' exactly when kind is simulated"
            )
        if not simulated and d.camera.config is None:
            raise ValueError("devices.camera.config: a lab rig needs a Micro-Manager config file")
        if (
            simulated
            and isinstance(d.supply, AmplifierConfig)
            and d.supply.gain != self.simulation.supply.gain
        ):
            raise ValueError(
                f"devices.supply.gain {d.supply.gain:g} differs from the simulated amplifier's "
                f"simulation.supply.gain {self.simulation.supply.gain:g}"
            )
        return self


def load_rig(path: Path) -> RigConfig:
    """Read and check a rig file; relative paths in it are taken from its folder."""
    data = load_yaml(path, "rig")
    rig = validate(RigConfig, data, f"rig file {path}")
    camera = rig.devices.camera
    if camera.config is not None:
        camera = camera.model_copy(update={"config": _resolve(path, camera.config)})
    devices = rig.devices.model_copy(update={"camera": camera})
    update: dict[str, object] = {"calibration": _resolve(path, rig.calibration), "devices": devices}
    if rig.heater_model is not None:
        model_path = _resolve(path, rig.heater_model)
        update["heater_model"] = model_path
        if model_path.is_file():  # absent until `tjump calibrate` has written it
            model = load_heater_model(model_path)
            if rig.film_resistance is None:
                update["film_resistance"] = model.film_resistance
            if rig.heater_step_response is None:
                update["heater_step_response"] = model.step_response
    return rig.model_copy(update=update)


def _resolve(rig_file: Path, path: Path) -> Path:
    return (path if path.is_absolute() else rig_file.parent / path).resolve()
