"""How fast the simulated rig runs one temperature of the paper protocol, and its memory.

One temperature of the published series: 20 cycles of 50 s hot / 50 s cold at 10 frames/s
(2,000 s of experiment, 20,000 frames), on the 256 x 256 simulated rig with 20 particles,
every frame written to disk. Prints the speed-up over real time, peak memory, the memory
growth between the first and the last quarter of the run, and what each stage costs alone.

    python scripts/bench_sim_run.py [--cycles 20] [--rig configs/rigs/sim-small.yaml]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from tjump.clock import VirtualClock
from tjump.sequencer import open_run, plan_run
from tjump.sim.rig import install
from tjump.sim.world import SimWorld

install()  # simulated rig files can be read and built

ROOT = Path(__file__).resolve().parent.parent


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def stage_costs(plan_rig_sim, sample_rate_hz: float, frames: int = 2000) -> dict[str, float]:
    """Microseconds per frame for physics, rendering and the TIFF write, each alone."""
    clock = VirtualClock()
    world = SimWorld(plan_rig_sim, sample_rate_hz, clock)
    world.start_daq(10.0)
    world.set_drive(volts=1.05, on=True)
    t = time.perf_counter()
    for i in range(frames):
        clock.run_to((i + 1) / 10.0)
    physics = (time.perf_counter() - t) / frames * 1e6
    scenes = [world.scenes.get_nowait() for _ in range(frames)]
    sensor = plan_rig_sim.sensor
    buf = np.empty((sensor.height, sensor.width), np.uint16)
    t = time.perf_counter()
    for scene in scenes:
        if scene is not None:
            world.renderer.render(scene, buf)
    render = (time.perf_counter() - t) / frames * 1e6
    with tempfile.TemporaryDirectory() as tmp, (Path(tmp) / "x.tif").open("wb") as f:
        tw = tifffile.TiffWriter(f)
        t = time.perf_counter()
        for _ in range(frames):
            tw.write(buf, contiguous=False, metadata=None)
            f.flush()
        disk = (time.perf_counter() - t) / frames * 1e6
        tw.close()
    return {"physics": physics, "render+noise": render, "tiff page write": disk}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--rig", type=Path, default=ROOT / "configs/rigs/sim-small.yaml")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        protocol = Path(tmp) / "one-temperature.yaml"
        protocol.write_text(
            "name: one-temperature\nframe_rate_hz: 10\nsteps:\n"
            f"  - kind: series\n    temperatures_K: [377.7]\n    cycles: {args.cycles}\n"
            "    heat_s: 50\n    cool_s: 50\n"
        )
        plan = plan_run(protocol, args.rig)
        total = plan.schedule.total_frames
        samples: list[tuple[int, float]] = []

        runner = open_run(plan, Path(tmp) / "run")
        runner.events.progress.connect(lambda p: samples.append((p.frames_done, rss_mb())))
        start = time.perf_counter()
        result = runner.run()
        wall = time.perf_counter() - start
        quarter = [m for n, m in samples if n <= total // 4]
        last = [m for n, m in samples if n >= 3 * total // 4]
        costs = stage_costs(plan.rig.simulation, plan.rig.daq.sample_rate_hz)

    print(
        f"rig {plan.rig.name}: {plan.rig.simulation.sensor.width} x "
        f"{plan.rig.simulation.sensor.height}, {plan.rig.simulation.sample.particles} particles"
    )
    print(f"frames {result.frames} of {total}, status {result.status}")
    print(
        f"experiment {result.experiment_s:.0f} s in {wall:.2f} s wall: "
        f"{result.experiment_s / wall:.0f}x real time, {result.frames / wall:.0f} frames/s"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB")
    if quarter and last:
        print(f"RSS first quarter {np.mean(quarter):.1f} MB, last quarter {np.mean(last):.1f} MB")
    for name, us in costs.items():
        print(f"  {name:16s} {us:7.0f} us/frame alone")


if __name__ == "__main__":
    main()
