"""The simulated world: one virtual clock drives the heater, the sample, the DAQ and the
camera triggers, so every simulated device sees the same physics at the same time.

Time moves in ticks of one DAQ sample. Drive changes take effect at the current tick; the
camera is triggered on whole ticks and each exposure's scene is computed when the world
passes the exposure's end, then handed to the camera thread for rendering.
"""

from __future__ import annotations

import csv
import math
import queue
import threading
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tjump.clock import VirtualClock
from tjump.sim.config import SimConfig
from tjump.sim.faults import InjectedFaults
from tjump.sim.optics import Flicker, Renderer, Scene
from tjump.sim.sample import SampleKinetics, Transition, make_particles
from tjump.sim.thermal import FilmThermalModel

_EPS = 1e-9
# Longest stretch integrated at once. Within one stretch the drive is constant, so the
# temperature is monotonic and each particle switches at most once: the scenes of every
# exposure in it can be computed afterwards from each particle's last transition.
_MAX_BLOCK_TICKS = 2000


class SimWorld:
    """Shared state of the simulated rig."""

    def __init__(
        self,
        config: SimConfig,
        sample_rate_hz: float,
        clock: VirtualClock,
        current_limit_A: float = math.inf,
    ) -> None:
        """`current_limit_A`: the heater supply's (the amplifier's limit or the source
        meter's compliance), which caps the film's current."""
        self.config = config
        self.clock = clock
        self.dt = 1.0 / sample_rate_hz
        sensor = config.sensor
        self.thermal = FilmThermalModel(config.thermal, config.ambient_K, current_limit_A)
        self.particles = make_particles(config.sample, sensor.width, sensor.height, config.seed)
        self.kinetics = SampleKinetics(self.particles, config.sample, config.seed)
        self.renderer = Renderer(sensor, config.optics, config.seed)
        self.scenes: queue.Queue[Scene | None] = queue.Queue()
        self.transitions: list[Transition] = []
        self.exposure_s = sensor.reference_exposure_ms / 1e3
        self.drive_volts = 0.0  # what the heater supply puts on the film
        self.drive_on = False
        self.digital_lines: dict[str, bool] = {}
        self.digital_changes: list[tuple[str, bool]] = []  # every line set, in order
        self.faults = InjectedFaults()
        # frames the camera serves in turn instead of the sample's (benchmarks: what the
        # application costs without the renderer); the sample is then not simulated
        self.replay: NDArray[np.uint16] | None = None
        self._lock = threading.RLock()
        self._tick = 0
        # (start time, each component's rise then, drive) of the last integrated stretch
        self._stretch: tuple[float, NDArray[np.float64], float] = (
            0.0,
            self.thermal.state(),
            0.0,
        )
        self._flicker = Flicker(config.optics, config.seed)
        self._daq_rng = np.random.default_rng([config.seed, 4])
        self._daq_running = False  # analog inputs sampling
        self._triggering = False  # counter output triggering the camera
        self._daq_start_tick = 0
        self._trigger_start_tick = 0  # first trigger of the current pulse train
        self._train_first_frame = 0  # frames triggered before the current pulse train
        self._daq_blocks: list[NDArray[np.float64]] = []
        self._daq_read_index = 0
        self._frame_period_ticks = 0
        self._frames_triggered = 0
        clock.on_advance(self.advance_to)

    # -- what the simulated devices call ------------------------------------------------

    def drive_V(self) -> float:
        """Voltage the heater supply puts on the film (before its current limit)."""
        return self.drive_volts if self.drive_on else 0.0

    def set_drive(self, volts: float | None = None, on: bool | None = None) -> None:
        """Change the supply's output on the film at the current time."""
        with self._lock:
            if volts is not None:
                self.drive_volts = volts
            if on is not None:
                self.drive_on = on

    def start_daq(self, frame_rate_hz: float) -> None:
        """Start sampling and the camera pulse train on the current tick."""
        with self._lock:
            while not self.scenes.empty():
                self.scenes.get_nowait()
            self._frames_triggered = 0
            self._daq_blocks.clear()
            self._daq_start_tick = self._tick
            self._daq_read_index = 0
            self._daq_running = True
            self.start_triggers(frame_rate_hz)

    def stop_daq(self) -> None:
        """Stop sampling and triggering; the camera learns that no trigger will follow."""
        with self._lock:
            self._daq_running = False
            self._triggering = False
            self.scenes.put(None)

    def discard_stale_end(self) -> None:
        """Forget an end-of-triggers mark left by an earlier run, if the camera has just
        been armed for a new one (scenes already queued for it are kept)."""
        with self.scenes.mutex:
            while self.scenes.queue and self.scenes.queue[0] is None:
                self.scenes.queue.popleft()

    def stop_triggers(self) -> None:
        """Stop the camera pulse train; sampling goes on and the camera stays armed."""
        with self._lock:
            self._triggering = False

    def start_triggers(self, frame_rate_hz: float) -> int:
        """Start a pulse train at the current tick; returns that tick's sample index."""
        ticks = round(1.0 / (frame_rate_hz * self.dt))
        if ticks < 1 or abs(ticks * self.dt * frame_rate_hz - 1.0) > 1e-6:
            raise ValueError(
                f"frame rate {frame_rate_hz} Hz is not a whole division of the DAQ's "
                f"{1 / self.dt:g} Hz sample clock"
            )
        with self._lock:
            self._frame_period_ticks = ticks
            self._trigger_start_tick = self._tick
            self._train_first_frame = self._frames_triggered
            self._triggering = True
            return self._tick - self._daq_start_tick

    def set_digital(self, line: str, on: bool) -> None:
        """A DAQ digital line; the simulated sample does not respond to light."""
        with self._lock:
            self.digital_lines[line] = on
            self.digital_changes.append((line, on))

    def read_daq(self) -> tuple[int, NDArray[np.float64]]:
        """(index of the first sample, samples x [drive_V, current_A]) since the last read."""
        with self._lock:
            blocks, self._daq_blocks = self._daq_blocks, []
            data = np.concatenate(blocks) if blocks else np.empty((0, 2))
            first = self._daq_read_index
            self._daq_read_index += len(data)
            return first, data

    def frames_triggered(self) -> int:
        return self._frames_triggered

    # -- physics ---------------------------------------------------------------------

    def advance_to(self, t: float) -> None:
        """Integrate everything up to time `t` (rounded down to a whole tick), then hand
        the camera a scene for every exposure that has ended."""
        with self._lock:
            target = math.floor(t / self.dt + _EPS)
            while self._tick < target:
                self._integrate(min(target - self._tick, _MAX_BLOCK_TICKS))
                self._emit_scenes()

    def _frame_start_tick(self, frame: int) -> int:
        return (
            self._trigger_start_tick + (frame - self._train_first_frame) * self._frame_period_ticks
        )

    def _exposure_end_tick(self, frame: int) -> int:
        start = self._frame_start_tick(frame)
        return start + max(1, math.ceil(self.exposure_s / self.dt - _EPS))

    def _integrate(self, n: int) -> None:
        times = (self._tick + 1 + np.arange(n, dtype=np.float64)) * self.dt
        elapsed = times - self._tick * self.dt
        drive = self.drive_V()
        before = self.thermal.temperature()
        self._stretch = (self._tick * self.dt, self.thermal.state(), drive)
        temps = self.thermal.advance(drive, elapsed)
        if self.replay is None:
            self.transitions.extend(self.kinetics.advance(times, temps, self.dt, before))
        if self._daq_running:  # sample k is taken at the start of tick k
            sampled = np.concatenate([[before], temps[:-1]])
            film = self.thermal.film_voltage(drive, sampled)
            current = film / self.thermal.resistance(sampled) * self.faults.current_factor
            noise = self._daq_rng.normal(0.0, self.config.daq_noise_V, (n, 2))
            noise[:, 1] /= self.thermal.config.r0_ohm  # current monitor noise, in amperes
            self._daq_blocks.append(np.column_stack([film, current]) + noise)
        self._tick += n

    def _mean_rise(self, start: float, end: float) -> float:
        """The heated spot's mean rise above ambient over [start, end] within the last
        integrated stretch (the drive is constant over a stretch: the closed form is exact)."""
        t0, state, drive = self._stretch
        return self.thermal.mean_rise(state, drive, start - t0, end - t0)

    def _emit_scenes(self) -> None:
        """A scene for every exposure that has ended by now, all computed at once (the
        sample's state is the same for them all: it changes only while integrating)."""
        first = self._frames_triggered
        frames = range(first, first)
        while self._triggering and self._tick >= self._exposure_end_tick(frames.stop):
            frames = range(first, frames.stop + 1)
        if not frames:
            return
        starts = [self._frame_start_tick(frame) * self.dt for frame in frames]
        p = self.particles
        if self.replay is not None:  # the camera serves recorded frames: no sample to see
            for frame, start in zip(frames, starts, strict=True):
                self.scenes.put(Scene(frame, start, self.exposure_s, p.x, p.y, p.peak_fraction))
                self._frames_triggered = frame + 1
            return
        optics = self.config.optics
        scale = self.exposure_s * 1e3 / self.config.sensor.reference_exposure_ms
        ends = [start + self.exposure_s for start in starts]
        # the focus follows the spot's temperature, averaged over each exposure
        defocus, flicker = [], []
        for start, end in zip(starts, ends, strict=True):
            focus = optics.focus_um_per_K * self._mean_rise(start, end) / optics.rayleigh_range_um
            defocus.append(1.0 + focus**2)
            flicker.append(self._flicker.next(end))
        column = np.array(ends)[:, None]  # frames x particles from here on
        hs = self.kinetics.mean_high_spin(np.array(starts)[:, None], column)
        ablated = self.kinetics.ablation() * self.config.sample.ablation.dimming
        electrons = (
            p.peak_fraction
            * self.renderer.electrons_per_peak_fraction()
            * scale
            * (1.0 - p.hs_dimming * hs)
            * (1.0 - ablated)
            / np.array(defocus)[:, None]
            * np.array(flicker)[:, None]
        )
        vx, vy = optics.lateral_drift_px_per_h
        x, y = p.x + vx * column / 3600, p.y + vy * column / 3600
        for i, (frame, start) in enumerate(zip(frames, starts, strict=True)):
            self.scenes.put(Scene(frame, start, self.exposure_s, x[i], y[i], electrons[i]))
            self._frames_triggered = frame + 1  # as each trigger's exposure ends

    def temperature(self) -> float:
        """Current temperature of the heated spot (what no real rig can read directly)."""
        return self.thermal.temperature()

    # -- truth -----------------------------------------------------------------------

    def write_truth(self, directory: Path, time_offset_s: float = 0.0) -> None:
        """Save what the simulator knows and an experiment must infer. Times are on the
        run's timeline (`time_offset_s` for a resumed run, whose world starts again at 0);
        a resumed run appends its transitions."""
        directory.mkdir(parents=True, exist_ok=True)
        p = self.particles
        ablation = self.kinetics.ablation()
        with (directory / "particles.csv").open("w", newline="") as f:
            out = csv.writer(f)
            out.writerow(
                [
                    "particle_id",
                    "x",
                    "y",
                    "kind",
                    "size_nm",
                    "peak_fraction",
                    "ea_kj_mol",
                    "ln_prefactor",
                    "ablated_ea_kj_mol",
                    "ablated_ln_prefactor",
                    "hs_dimming",
                    "reverse_K",
                    "ablation_fraction",
                ]
            )
            for i in range(len(p)):
                out.writerow(
                    [
                        i,
                        f"{p.x[i]:.3f}",
                        f"{p.y[i]:.3f}",
                        "reference" if p.is_reference[i] else "sco",
                        f"{p.size_nm[i]:.1f}",
                        f"{p.peak_fraction[i]:.4f}",
                        f"{p.ea_kj_mol[i]:.2f}",
                        f"{p.ln_prefactor[i]:.4f}",
                        f"{p.ablated_ea_kj_mol[i]:.2f}",
                        f"{p.ablated_ln_prefactor[i]:.4f}",
                        f"{p.hs_dimming[i]:.4f}",
                        f"{p.reverse_K[i]:.2f}",
                        f"{ablation[i]:.4f}",
                    ]
                )
        path = directory / "transitions.csv"
        new = not path.exists()
        with path.open("a", newline="") as f:
            out = csv.writer(f)
            if new:
                out.writerow(["particle_id", "time_s", "direction", "temperature_K"])
            for tr in sorted(self.transitions, key=lambda tr: tr.time_s):
                out.writerow(
                    [
                        tr.particle,
                        f"{tr.time_s + time_offset_s:.6f}",
                        "LS->HS" if tr.to_high_spin else "HS->LS",
                        f"{tr.temperature_K:.2f}",
                    ]
                )
