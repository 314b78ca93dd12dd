"""The acquisition path against the same code at an earlier commit (default: main before
the speed work of issue 12), side by side in one run, each measure of both interleaved:

  - the whole acquisition path (simulated camera -> MMCore -> sequencer -> TIFF pages on
    disk -> online traces) at 640 x 480 with 100 particles, free-running, every frame
    rendered by the simulator, against a bare tifffile page-per-frame write and
    pymmcore-plus's MDA writing an OME-TIFF, both of the same frames;
  - sim-small (256 x 256, 20 particles): the demo protocol's real-time factor, as
    `tjump run` builds the rig;
  - the 640 x 480 rig paced to real time at 500 frames/s for 10 s: frames written, dropped.

Each figure of tjump is measured in a fresh Python process importing the version measured
(`git archive` of the baseline into a temporary folder, or this checkout).

    python scripts/bench_camera.py [--baseline COMMIT] [--frames 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "9ce6083"  # main before issue 12's speed work (camera already apart)
SCRIPTS = Path(__file__).resolve().parent


def _rig_and_protocol(folder: Path, frames: int, fps: float) -> tuple[Path, Path]:
    """The shipped simulated rig at 640 x 480 with 100 particles (as bench_acquisition's),
    and a baseline then one heat and cool of `frames` frames in all at `fps`."""
    import yaml

    rig = yaml.safe_load((ROOT / "configs/rigs/sim.yaml").read_text())
    rig["calibration"] = str(ROOT / "configs/calibrations/heater-sim.csv")
    rate = 200.0 if fps <= 200 else 1000.0
    rig["daq"] = {"sample_rate_hz": rate}
    rig["camera"] = {**rig.get("camera", {}), "max_frame_rate_hz": rate}
    rig["simulation"]["sample"] = {"particles": 100, "references": 4, "min_separation_px": 6.0}
    rig["simulation"]["sensor"] = {"width": 640, "height": 480}
    seconds = frames / fps
    protocol = {
        "name": f"bench-{fps:g}",
        "frame_rate_hz": fps,
        "exposure_ms": min(50.0, 500 / fps),
        "steps": [
            {"kind": "baseline", "duration_s": 2},
            {"kind": "series", "temperatures_K": [384.9], "cycles": 1,
             "heat_s": seconds / 2, "cool_s": seconds / 2 - 2},
        ],
    }  # fmt: skip
    (folder / "rig.yaml").write_text(yaml.safe_dump(rig))
    (folder / "protocol.yaml").write_text(yaml.safe_dump(protocol))
    return folder / "rig.yaml", folder / "protocol.yaml"


def _cpu_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def measure(what: str, folder: Path, frames: int) -> dict[str, Any]:
    """One figure of the tjump importable here (run in a child process)."""
    import tjump
    from tjump.sim.rig import install

    try:  # the simulator as `tjump run` builds it: the camera rendering apart
        install(camera_process=True)  # type: ignore[call-arg]
        mode = "camera in its own process"
    except TypeError:  # a baseline before 20ae79e: rendered in the application
        install()
        mode = "camera rendered in the application"
    from tjump.clock import VirtualClock
    from tjump.errors import TjumpError
    from tjump.rig import build_rig
    from tjump.sequencer import plan_run, run_plan
    from tjump.storage import RunDirectory

    result: dict[str, Any] = {"tjump": str(Path(tjump.__file__).parent), "mode": mode}
    if what == "path":
        rig_file, protocol = _rig_and_protocol(folder, frames, 10.0)
        plan = plan_run(protocol, rig_file)
        with build_rig(plan.rig) as rig:  # built before the clock starts: not the figure
            start, cpu = time.perf_counter(), _cpu_s(resource.RUSAGE_SELF)
            run = run_plan(plan, folder / "path", rig=rig)
            wall, cpu = time.perf_counter() - start, _cpu_s(resource.RUSAGE_SELF) - cpu
        renderer = _cpu_s(resource.RUSAGE_CHILDREN)  # the renderer process, once it ended
        result |= {"fps": run.frames / wall, "frames": run.frames, "dropped": run.dropped_frames}
        result |= {"cpu_ms": cpu / run.frames * 1e3, "renderer_ms": renderer / run.frames * 1e3}
    elif what == "realtime":
        plan = plan_run(ROOT / "configs/protocols/demo.yaml", ROOT / "configs/rigs/sim-small.yaml")
        start = time.perf_counter()  # rig built and closed inside, as `tjump run` does
        run = run_plan(plan, folder / "demo")
        wall = time.perf_counter() - start
        result |= {"factor": plan.schedule.duration_s / wall, "wall_s": wall}
        result |= {"frames": run.frames, "status": run.status}
    elif what == "paced":
        rig_file, protocol = _rig_and_protocol(folder, 5000, 500.0)
        plan = plan_run(protocol, rig_file)
        with build_rig(plan.rig) as rig:
            assert isinstance(rig.clock, VirtualClock)
            rig.clock.pace(1.0)
            start = time.perf_counter()
            try:
                status = run_plan(plan, folder / "paced", rig=rig).status
            except TjumpError as e:
                status = f"failed: {str(e).splitlines()[0][:80]}"
            finally:
                rig.clock.stop()
            wall = time.perf_counter() - start
        written = RunDirectory(folder / "paced").frame_count()
        result |= {"written": written, "dropped": plan.schedule.total_frames - written}
        result |= {"status": status, "wall_s": wall}
    return result


def in_child(src: Path, what: str, folder: Path, frames: int) -> dict[str, Any]:
    """`measure` in a fresh process importing tjump from `src`."""
    folder.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, __file__, "--measure", what, "--folder", str(folder), "--frames",
         str(frames)],
        env=env, capture_output=True, text=True, check=False, timeout=1800,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{what} under {src} failed:\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def baseline_src(commit: str, folder: Path) -> Path:
    """The baseline's src/ folder, from git."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "src"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder / "src"


def references(frames_dir: Path, count: int, folder: Path) -> tuple[float, float]:
    """Frames/s of a bare tifffile write and of MDA to OME-TIFF, of the same frames."""
    import numpy as np

    sys.path.insert(0, str(SCRIPTS))
    from bench_acquisition import bare_tifffile, mda_ome_tiff
    from tjump.storage import RunDirectory

    pool = RunDirectory(frames_dir).read_frames_range(0, 200)
    frames = pool[np.arange(count) % len(pool)]
    bare = bare_tifffile(frames, folder / "bare.tif")
    del frames
    return bare, mda_ome_tiff(pool, count, folder / "mda.ome.tif")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE, help="git commit to compare with")
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.folder, args.frames)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        versions = {
            f"before ({args.baseline})": baseline_src(args.baseline, work),
            "after (this checkout)": ROOT / "src",
        }
        figures: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in versions}
        loads = [os.getloadavg()[0]]
        for what in ("path", "realtime", "paced"):  # interleaved: the load changes
            for name, src in versions.items():
                out = work / name.split()[0]
                figures[name][what] = in_child(src, what, out / what, args.frames)
                loads.append(os.getloadavg()[0])
                print(f"{name}, {what}: {figures[name][what]}", flush=True)  # as they come
            if what == "path":
                after_run = work / "after" / "path" / "path"
                bare, mda = references(after_run, args.frames, work)
        for name in versions:
            print(f"{name}: {figures[name]['path']['mode']}")
    print(f"load average (1 min) over the run: {min(loads):.1f} to {max(loads):.1f} on "
          f"{os.cpu_count()} cores")  # fmt: skip
    print(f"\nsame frames, same run: bare tifffile {bare:.0f} frames/s, MDA OME-TIFF {mda:.0f}")
    print(f"{'':44}" + "".join(f"{name:>26}" for name in figures))
    rows = [
        ("whole path, 640 x 480, frames/s", lambda f: f"{f['path']['fps']:.0f}"),
        ("  / bare tifffile (goal >= 0.9)", lambda f: f"{f['path']['fps'] / bare:.2f}x"),
        ("  / MDA OME-TIFF (goal >= 3)", lambda f: f"{f['path']['fps'] / mda:.1f}x"),
        ("  frames dropped", lambda f: str(f["path"]["dropped"])),
        ("  CPU per frame, application, ms", lambda f: f"{f['path']['cpu_ms']:.2f}"),
        ("  CPU per frame, renderer process, ms", lambda f: f"{f['path']['renderer_ms']:.2f}"),
        ("sim-small demo, x real time (goal >= 100)", lambda f: f"{f['realtime']['factor']:.0f}x"),
        ("paced 500 frames/s 10 s: written", lambda f: str(f["paced"]["written"])),
        ("  dropped (goal 0)", lambda f: str(f["paced"]["dropped"])),
        ("  wall time, s", lambda f: f"{f['paced']['wall_s']:.1f}"),
        ("  status", lambda f: str(f["paced"]["status"])[:24]),
    ]
    for label, cell in rows:
        print(f"{label:44}" + "".join(f"{cell(f):>26}" for f in figures.values()))


if __name__ == "__main__":
    main()
