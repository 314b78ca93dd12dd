"""The simulated DAQ, behind the same interface as the real driver.

The simulated function generator is an instrument model behind a simulated VISA resource
(`tjump.sim.rigol`), driven by the real Rigol driver; a DAQ digital line can be wired to
its external trigger input.
"""

from __future__ import annotations

from collections.abc import Callable

from tjump.devices.interfaces import DAQ_CHANNELS, DaqBlock
from tjump.errors import DeviceError
from tjump.sim.world import SimWorld


class SimDaq:
    """An NI USB-6251 as the simulated world sees it: drive and current on one clock,
    the camera trigger pulse train, and digital lines (a rising edge on a wired line
    reaches the instrument it is wired to)."""

    channels: tuple[str, ...] = DAQ_CHANNELS

    def __init__(
        self,
        world: SimWorld,
        wired: dict[str, Callable[[], object]] | None = None,
        name: str = "daq (simulated)",
    ) -> None:
        self.world = world
        self.name = name
        self._wired = dict(wired or {})

    def describe(self) -> str:
        lines = ", ".join(self._wired) or "none"
        return (
            f"simulated NI USB-6251: {self.sample_rate_hz:g} samples/s of "
            f"{', '.join(self.channels)}; lines wired to instruments: {lines}"
        )

    @property
    def sample_rate_hz(self) -> float:
        return 1.0 / self.world.dt

    def start(self, frame_rate_hz: float) -> None:
        try:
            self.world.start_daq(frame_rate_hz)
        except ValueError as e:
            raise DeviceError(self.name, str(e), "choose a frame rate that divides it") from e

    def read(self) -> DaqBlock:
        first, data = self.world.read_daq()
        return DaqBlock(first, data)

    def stop_triggers(self) -> None:
        self.world.stop_triggers()

    def start_triggers(self, frame_rate_hz: float) -> int:
        try:
            return self.world.start_triggers(frame_rate_hz)
        except ValueError as e:
            raise DeviceError(self.name, str(e), "choose a frame rate that divides it") from e

    def set_digital(self, line: str, on: bool) -> None:
        rising = on and not self.world.digital_lines.get(line, False)
        self.world.set_digital(line, on)
        if rising and line in self._wired:
            self._wired[line]()

    def triggers_sent(self) -> int:
        return self.world.frames_triggered()

    def exposures_counted(self) -> int:
        """Every exposure the simulated camera made reaches the counter (as ctr1 counts
        the camera's exposure-active edges), unless the cable was cut."""
        exposures = self.world.frames_triggered()
        cut = self.world.faults.exposure_line_cut_after
        return exposures if cut is None else min(exposures, cut)

    def stop(self) -> None:
        self.world.stop_daq()

    def close(self) -> None:
        self.stop()
