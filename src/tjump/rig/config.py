"""The rig file: which devices, their settings, the heater calibration and the limits that
no protocol or control may cross."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

from tjump.devices.nidaq import NiDaqLayout
from tjump.errors import InputError
from tjump.files import load_yaml, validate
from tjump.rig.calibration import HeaterCalibration, load_calibration
from tjump.rig.heater_model import FilmResistance, ThermalComponent, load_heater_model
from tjump.rig.simulator import simulator

SIMULATED = "simulated"  # visa_library naming the simulated rig's own instruments

# The ranges every rig value must fall in: finite, and within what the instruments and the
# film can do at all (a rig's own limits are set inside them).
MAX_FILM_K = 1_000.0  # a gold film on a glass coverslip; the glass softens above this
MAX_DRIVE_V = 210.0  # the largest output of a bench source-meter (Keithley 2400 class)
MAX_CURRENT_A = 10.0  # far above any thin-film heater
MAX_HOLD_S = 86_400.0
AMBIENT_K = (250.0, 330.0)  # a room, not a cryostat or an oven
MAX_DAQ_HZ = 500_000.0  # NI USB-6251: 1.00 MS/s aggregate over the two channels recorded
MAX_FRAME_RATE_HZ = 10_000.0
SENSOR_PX = (16, 16_384)
BINNINGS = (1, 2, 4)
MAX_PARTICLES = 1_000

Kelvin = Annotated[float, Field(gt=0, le=MAX_FILM_K)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TimeAboveLimit(_Strict):
    """At most `seconds` in one go above `temperature_K`."""

    temperature_K: Kelvin
    seconds: Annotated[float, Field(gt=0, le=MAX_HOLD_S)]


class Limits(_Strict):
    """Hard limits of the rig. The sequencer and the heater both enforce them."""

    max_temperature_K: Kelvin
    max_drive_V: Annotated[float, Field(gt=0, le=MAX_DRIVE_V)]
    max_current_A: Annotated[float, Field(gt=0, le=MAX_CURRENT_A)]
    max_time_above: TimeAboveLimit


class CameraSettings(_Strict):
    exposure_ms: Annotated[float, Field(gt=0, le=60_000.0)] = 50.0
    max_frame_rate_hz: Annotated[float, Field(gt=0, le=MAX_FRAME_RATE_HZ)] = 200.0
    pixel_size_um: Annotated[float, Field(gt=0, le=1_000.0)] = 0.37
    sensor_px: tuple[
        Annotated[int, Field(ge=SENSOR_PX[0], le=SENSOR_PX[1])],
        Annotated[int, Field(ge=SENSOR_PX[0], le=SENSOR_PX[1])],
    ] = Field((640, 480), description="full sensor width, height (the Pike F-032B's by default)")


class DaqSettings(_Strict):
    sample_rate_hz: Annotated[float, Field(gt=0, le=MAX_DAQ_HZ)] = 200.0


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


class NiDaqConfig(NiDaqLayout):
    """An NI USB-6251 and its channel layout (the driver's own `NiDaqLayout`)."""

    driver: Literal["nidaqmx"] = "nidaqmx"


class CameraDeviceConfig(_Strict):
    """A Micro-Manager camera: a config file for the lab, the Python camera when simulated."""

    driver: Literal["micro-manager"] = "micro-manager"
    config: Path | None = Field(None, description="Micro-Manager .cfg (relative to the rig file)")
    mm_path: Path | None = Field(None, description="Micro-Manager installation (device adapters)")
    label: str = "Camera"
    binning: Literal[1, 2, 4] = 1
    roi: tuple[NonNegativeInt, NonNegativeInt, PositiveInt, PositiveInt] | None = Field(
        None, description="x, y, width, height in pixels"
    )
    bit_depth: int | None = Field(None, ge=8, le=16)
    triggering: Literal["hardware", "software"] = "hardware"


class FastCameraDeviceConfig(_Strict):
    """A lab's fast camera for growth bursts: a Micro-Manager camera on a core of its own,
    streaming at `frame_rate_hz` into tjump's memory; its trigger input is wired to the
    DAQ's `fast_camera_trigger_line`, pulsed when a burst fires."""

    driver: Literal["micro-manager"] = "micro-manager"
    config: Path = Field(description="Micro-Manager .cfg of this camera (relative to the rig file)")
    mm_path: Path | None = Field(None, description="Micro-Manager installation (device adapters)")
    label: str = "FastCamera"
    frame_rate_hz: Annotated[float, Field(gt=0, le=MAX_FRAME_RATE_HZ)] = 500.0


class Devices(_Strict):
    """The instruments of the rig; the defaults are the simulated ones."""

    generator: RigolGeneratorConfig | None = RigolGeneratorConfig()
    supply: AmplifierConfig | SourceMeterConfig = AmplifierConfig()
    daq: Annotated[SimDaqConfig | NiDaqConfig, Field(discriminator="driver")] = SimDaqConfig()
    camera: CameraDeviceConfig = CameraDeviceConfig()
    fast_camera: FastCameraDeviceConfig | None = Field(
        None, description="a lab's fast camera for bursts (a simulated rig has its own)"
    )


class RigConfig(_Strict):
    """A whole rig as described by its YAML file. A simulated rig's file is read by the
    simulator's subclass of this model (`tjump.rig.simulator`), which adds its
    `simulation` section; this one never parses it."""

    sensor_field: ClassVar[str] = "camera.sensor_px"  # where the sensor's size is set

    name: str
    description: str = ""
    kind: Literal["simulated", "lab"]
    ambient_K: Annotated[float, Field(ge=AMBIENT_K[0], le=AMBIENT_K[1])] = 293.0
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

    @property
    def film(self) -> FilmResistance | None:
        """The film's R(T), where known (measured, or a simulated rig's model)."""
        return self.film_resistance

    @property
    def step_response(self) -> tuple[ThermalComponent, ...] | None:
        """How the film follows a step of its setpoint, where known: analysis uses it to
        fit activation energies against the film's lagging temperature."""
        return self.heater_step_response

    @property
    def seed(self) -> int | None:
        """The simulator's seed; a lab rig has none."""
        return None

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
        if d.fast_camera is not None and simulated:
            raise ValueError("devices.fast_camera: a simulated rig has its own fast camera")
        if (
            d.fast_camera is not None
            and isinstance(d.daq, NiDaqConfig)
            and d.daq.fast_camera_trigger_line is None
        ):
            raise ValueError(
                "devices.daq.fast_camera_trigger_line: the fast camera's trigger input must be "
                "wired to a DAQ digital line (e.g. port0/line2)"
            )
        return self

    @property
    def has_fast_camera(self) -> bool:
        """Whether bursts can be recorded: a simulated rig's camera, or a lab's."""
        return self.kind == "simulated" or self.devices.fast_camera is not None

    @model_validator(mode="after")
    def _values_agree(self) -> RigConfig:
        """What no single field shows: values that only together are impossible."""
        problems = _consistency_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def sensor_size(self) -> tuple[int, int]:
        """The sensor's (width, height) in pixels."""
        return self.camera.sensor_px

    def frame_problems(self, width: int, height: int) -> list[str]:
        """What does not fit frames of `width` x `height` px (none on a lab rig)."""
        return []


def _consistency_problems(rig: RigConfig) -> list[str]:
    problems = []
    limits = rig.limits
    if rig.ambient_K >= limits.max_temperature_K:
        problems.append(
            f"ambient_K {rig.ambient_K:g} K must be below limits.max_temperature_K "
            f"{limits.max_temperature_K:g} K"
        )
    if limits.max_time_above.temperature_K > limits.max_temperature_K:
        problems.append(
            f"limits.max_time_above.temperature_K {limits.max_time_above.temperature_K:g} K is "
            f"above limits.max_temperature_K {limits.max_temperature_K:g} K"
        )
    if rig.daq.sample_rate_hz < rig.camera.max_frame_rate_hz:
        problems.append(
            f"daq.sample_rate_hz {rig.daq.sample_rate_hz:g} Hz is below "
            f"camera.max_frame_rate_hz {rig.camera.max_frame_rate_hz:g} Hz: every frame "
            "needs at least one DAQ sample"
        )
    width, height = rig.sensor_size()
    where = rig.sensor_field
    lo, hi = SENSOR_PX
    if not (lo <= width <= hi and lo <= height <= hi):
        problems.append(f"{where}: {width} x {height} px; each side must be {lo} to {hi} px")
    camera = rig.devices.camera
    if camera.roi is not None:
        x, y, w, h = camera.roi
        if x + w > width or y + h > height:
            problems.append(
                f"devices.camera.roi {list(camera.roi)} reaches outside the {width} x {height} "
                "px sensor"
            )
        width, height = w, h
    if width // camera.binning < lo or height // camera.binning < lo:
        problems.append(
            f"devices.camera: {width} x {height} px binned {camera.binning} x leaves frames "
            f"under {lo} x {lo} px"
        )
    problems.extend(rig.frame_problems(width, height))
    return problems


def load_rig(path: Path) -> RigConfig:
    """Read and check a rig file, and load its heater calibration, so that every user of a
    rig file (`devices check`, `run --check`, `run`, the GUI) accepts and refuses the same
    files; relative paths in it are taken from its folder."""
    data = load_yaml(path, "rig")
    where = f"rig file {path}"
    simulated = data.get("kind") == "simulated"
    rig = validate(simulator(where).config_model if simulated else RigConfig, data, where)
    camera, fast = rig.devices.camera, rig.devices.fast_camera
    if camera.config is not None:
        camera = camera.model_copy(update={"config": _resolve(path, camera.config)})
    if fast is not None:
        fast = fast.model_copy(update={"config": _resolve(path, fast.config)})
    devices = rig.devices.model_copy(update={"camera": camera, "fast_camera": fast})
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
    rig = rig.model_copy(update=update)
    check_calibration(rig, load_calibration(rig.calibration), path)
    return rig


def check_calibration(rig: RigConfig, calibration: HeaterCalibration, path: Path) -> None:
    """The calibration must stay within what the film can do."""
    _, hi = calibration.range_K
    if hi > MAX_FILM_K:
        raise InputError(
            f"rig file {path}: calibration {calibration.source} reaches {hi:g} K, beyond "
            f"{MAX_FILM_K:g} K"
        )


def _resolve(rig_file: Path, path: Path) -> Path:
    return (path if path.is_absolute() else rig_file.parent / path).resolve()
