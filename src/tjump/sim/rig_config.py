"""A simulated rig's file: the lab's rig model plus the `simulation` section, and the
check only the simulator can make (the sample fits its sensor)."""

from __future__ import annotations

from typing import ClassVar

from tjump.rig.config import RigConfig
from tjump.rig.heater_model import FilmResistance, ThermalComponent
from tjump.sim.config import SimConfig

MAX_PARTICLES = 1_000


class SimRigConfig(RigConfig):
    """A rig of kind `simulated`: what the lab's code sees (sensor, film, step response,
    seed) comes from the simulated instruments unless the file measured it."""

    sensor_field: ClassVar[str] = "simulation.sensor"
    simulation: SimConfig = SimConfig()

    @property
    def film(self) -> FilmResistance | None:
        """The film's R(T): measured if the rig file has it, else the model's."""
        if self.film_resistance is not None:
            return self.film_resistance
        t = self.simulation.thermal
        return FilmResistance(r0_ohm=t.r0_ohm, alpha_per_K=t.alpha_per_K, t0_K=self.ambient_K)

    @property
    def step_response(self) -> tuple[ThermalComponent, ...] | None:
        """The film's step response: measured if the rig file has it, else the model's."""
        if self.heater_step_response is not None:
            return self.heater_step_response
        return self.simulation.thermal.step_response

    @property
    def seed(self) -> int | None:
        return self.simulation.seed

    def sensor_size(self) -> tuple[int, int]:
        return self.simulation.sensor.width, self.simulation.sensor.height

    def frame_problems(self, width: int, height: int) -> list[str]:
        """A simulated sample must fit on its sensor (else placing it never ends)."""
        sample = self.simulation.sample
        count = sample.particles + sample.references
        if count > MAX_PARTICLES:
            return [f"simulation.sample: {count} particles and references; at most {MAX_PARTICLES}"]
        margin = 2 * sample.edge_margin_px
        usable = max(width - margin, 0) * max(height - margin, 0)
        room = int(usable / sample.min_separation_px**2)  # one per separation-wide square
        if count > room:
            return [
                f"simulation.sample: {count} particles and references do not fit "
                f"{sample.min_separation_px:g} px apart on a {width} x {height} px sensor "
                f"(at most {room})"
            ]
        return []
