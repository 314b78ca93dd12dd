"""How fast the simulated rig runs one temperature of the paper protocol, and its memory.

One temperature of the published series: 20 cycles of 50 s hot / 50 s cold at 10 frames/s
(2,000 s of experiment, 20,000 frames), on the 256 x 256 simulated rig with 20 particles,
every frame written to disk. The rig is built as `tjump run` builds it: the camera renders
in a process of its own (`--camera-here`: in the application, as tests do). Prints the
speed-up over real time, CPU per frame of the application and of the renderer's process,
peak memory, the memory growth between the first and the last quarter of the run, and
what each stage costs alone.

    python scripts/bench_sim_run.py [--cycles 20] [--rig configs/rigs/sim-small.yaml]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from tjump.clock import VirtualClock
from tjump.sequencer import open_run, plan_run
from tjump.sequencer.engine import LOOKAHEAD_FRAMES
from tjump.sequencer.sinks import LiveTraces
from tjump.sim.rig import install
from tjump.sim.world import SimWorld
from tjump.storage.pages import PageWriter
from tjump.storage.writer import DESCRIPTION_BYTES

ROOT = Path(__file__).resolve().parent.parent


def cpu_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def stage_costs(plan_rig_sim, sample_rate_hz: float, frames: int = 2000) -> dict[str, float]:
    """Microseconds per frame of each stage alone: the world's physics (heated, the clock
    let run ahead in the engine's batches), rendering, tjump's page write (with a run
    directory's 512-byte description) and its live traces."""
    clock = VirtualClock()
    world = SimWorld(plan_rig_sim, sample_rate_hz, clock)
    world.start_daq(10.0)
    world.set_drive(volts=1.05, on=True)
    batch = LOOKAHEAD_FRAMES // 2  # as RigEngine._frames releases frames
    t = time.perf_counter()
    for i in range(0, frames, batch):
        clock.run_to((i + batch) / 10.0)
    physics = (time.perf_counter() - t) / frames * 1e6
    scenes = [world.scenes.get_nowait() for _ in range(frames)]
    sensor = plan_rig_sim.sensor
    images = np.empty((frames, sensor.height, sensor.width), np.uint16)
    t = time.perf_counter()
    for scene, image in zip(scenes, images, strict=True):
        if scene is not None:
            world.renderer.render(scene, image)
    render = (time.perf_counter() - t) / frames * 1e6
    with tempfile.TemporaryDirectory() as tmp:
        fd = os.open(Path(tmp) / "x.tif", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        pages = PageWriter(fd, (sensor.height, sensor.width), DESCRIPTION_BYTES)
        description = "{}".ljust(DESCRIPTION_BYTES)
        t = time.perf_counter()
        for image in images:
            pages.write(image, description)
        disk = (time.perf_counter() - t) / frames * 1e6
        os.close(fd)
    traces = LiveTraces()
    t = time.perf_counter()
    for i, image in enumerate(images):
        traces.measure(i, image)
    live = (time.perf_counter() - t) / frames * 1e6
    return {"physics": physics, "render+noise": render, "page write": disk, "live traces": live}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--rig", type=Path, default=ROOT / "configs/rigs/sim-small.yaml")
    parser.add_argument("--camera-here", action="store_true", help="render in this process")
    args = parser.parse_args()
    install(camera_process=not args.camera_here)  # simulated rig files read and built

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

        children = cpu_s(resource.RUSAGE_CHILDREN)
        runner = open_run(plan, Path(tmp) / "run")  # the rig built: not in the figure
        runner.events.progress.connect(lambda p: samples.append((p.frames_done, rss_mb())))
        start, cpu = time.perf_counter(), time.process_time()
        result = runner.run()  # closes the rig, so the renderer's process has ended
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        renderer = cpu_s(resource.RUSAGE_CHILDREN) - children
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the run's
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
    where = "in the application" if args.camera_here else "in its own process"
    print(
        f"CPU per frame: application {cpu / result.frames * 1e3:.2f} ms, renderer "
        f"{renderer / result.frames * 1e3:.2f} ms (camera rendering {where}); "
        f"load average (1 min) {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(f"peak RSS {peak:.0f} MB")
    if quarter and last:
        print(f"RSS first quarter {np.mean(quarter):.1f} MB, last quarter {np.mean(last):.1f} MB")
    for name, us in costs.items():
        print(f"  {name:16s} {us:7.0f} us/frame alone")


if __name__ == "__main__":
    main()
