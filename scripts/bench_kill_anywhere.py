"""Kill a run anywhere, then resume, verify, analyse and export it: how many come back whole?

Each trial starts `tjump run` (the command-line program, in a forked process so that the
imports are paid once), waits until it has written a chosen number of frames, and stops it:
SIGKILL, SIGTERM, SIGINT, or a power cut (SIGKILL, then every frame file, frames.csv,
daq.csv and log.jsonl cut at a random byte offset, as unsynced data would be lost). What is
readable then (each page, its time and temperature) is noted; the run is resumed, and it
passes if `verify` finds it consistent, `analyze` and `export` accept it, and every frame
readable after the stop is still there with the same pixels, time and temperature.

    python scripts/bench_kill_anywhere.py                # 100 moments
    python scripts/bench_kill_anywhere.py --moments 8 --protocol configs/protocols/demo.yaml

By default the protocol is a short demo (a baseline, two temperatures, two jumps each: 390
frames) on sim-small cropped to 128 x 128 px, so that 100 stops take minutes. The baseline
is the same protocol run without a stop, checked the same way; the stops are spread over
the frames it took (a closed-loop protocol takes fewer than it plans, and a run with
another seed may end before its stop: it is then checked as it ended).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("SIGKILL", "SIGTERM", "SIGINT", "power cut")
PROTOCOL = """
name: kill-anywhere
frame_rate_hz: 10
steps:
  - kind: baseline
    duration_s: {baseline}
  - kind: series
    temperatures_K: {temperatures}
    cycles: 2
    heat_s: {heat}
    cool_s: {cool}
"""


def small_inputs(folder: Path, pixels: int = 128, quick: bool = False) -> tuple[Path, Path]:
    """The default protocol and sim-small cropped to `pixels` square, written to `folder`;
    `quick`: one temperature and shorter steps (140 frames), for the test suite."""
    import yaml

    rig = yaml.safe_load((ROOT / "configs/rigs/sim-small.yaml").read_text())
    rig["name"] = f"sim-{pixels}"
    rig["calibration"] = str(ROOT / "configs/calibrations/heater-sim.csv")
    rig["simulation"]["sensor"] = {"width": pixels, "height": pixels}
    rig["simulation"]["sample"] = {"particles": 10 if pixels >= 128 else 5, "references": 2}
    (folder / "rig.yaml").write_text(yaml.safe_dump(rig))
    steps = (
        {"baseline": 2, "temperatures": "[384.9]", "heat": 4, "cool": 3}
        if quick
        else {"baseline": 3, "temperatures": "[377.7, 384.9]", "heat": 6, "cool": 3}
    )
    (folder / "protocol.yaml").write_text(PROTOCOL.format(**steps))
    return folder / "protocol.yaml", folder / "rig.yaml"


@dataclass
class Trial:
    kind: str
    after_frames: int
    frames_before: int  # readable after the stop
    frames_after: int  # readable after the resume
    ok: bool
    problem: str = ""
    seconds: float = 0.0
    status: str = ""  # the manifest's, after the resume
    ended_first: bool = False  # the run ended by itself before the stop came
    # every step had finished when the stop took effect (during the run's closing): the
    # run keeps the status the stop gave it and resume, rightly, has nothing to do
    finished_before: bool = False


def _child(argv: list[str]) -> None:
    """The `tjump` program itself, in the forked process."""
    from tjump.cli import main

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    sys.argv = argv
    try:
        main()
    except SystemExit as e:
        os._exit(e.code if isinstance(e.code, int) else 1)
    os._exit(0)


def _context() -> multiprocessing.context.BaseContext:
    """Processes forked from a server that imported tjump once: each run starts at once,
    and never from a parent that has threads of its own (a test session's)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tjump.cli"])
    return context


def _rows_written(out: Path) -> int:
    """Rows in frames.csv, -1 before the run directory exists."""
    if not (out / "manifest.json").exists():
        return -1
    try:
        with (out / "frames.csv").open("rb") as f:
            return max(0, sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(65536), b"")) - 1)
    except OSError:
        return -1


def _power_cut(out: Path, rng: random.Random) -> None:
    """What a power cut does to data the disk never got: each file loses a tail."""
    files = [*sorted((out / "frames").glob("*.tif")), out / "frames.csv", out / "daq.csv"]
    files.append(out / "log.jsonl")
    for path in files:
        if path.is_file():
            size = path.stat().st_size
            with path.open("rb+") as f:
                f.truncate(rng.randint(0, size))


def readable(out: Path) -> dict[int, tuple[float, float, str]]:
    """Frame -> (time, temperature, pixel digest) for every complete page and its record."""
    import tifffile

    from tjump.storage.scan import scan_chunks

    found: dict[int, tuple[float, float, str]] = {}
    for chunk in scan_chunks(out):
        if not chunk.pages:
            continue
        with tifffile.TiffFile(chunk.path) as tif:
            for page in chunk.pages:
                if page.row is None:
                    continue
                pixels = tif.pages[page.index].asarray()
                digest = hashlib.sha1(pixels.tobytes()).hexdigest()
                found[page.frame] = (page.row["time_s"], page.row["temperature_K"], digest)
    return found


def check(out: Path, before: dict[int, tuple[float, float, str]]) -> str:
    """'' if the run verifies, analyses and exports with every frame of `before` intact."""
    from tjump.analysis.pipeline import analyze_recording
    from tjump.errors import TjumpError
    from tjump.storage import RunDirectory
    from tjump.storage.export import export_ome_tiff
    from tjump.storage.verify import verify

    verdict = verify(out)
    if not verdict.consistent:
        return "verify: " + "; ".join(verdict.problems)
    after = readable(out)
    for frame, (t, temp, digest) in before.items():
        if frame not in after:
            return f"frame {frame} was readable before the stop and is gone"
        if after[frame][2] != digest:
            return f"frame {frame}'s pixels changed"
        row = verdict.rows.get(frame)
        if row is None or row["time_s"] != t or row["temperature_K"] != temp:
            return f"frame {frame}'s time or temperature changed"
    try:
        analyze_recording(out)
        exported = export_ome_tiff(RunDirectory(out), out.with_suffix(".ome.tif"))
    except TjumpError as e:
        return f"{type(e).__name__}: {e}"
    if exported != len(verdict.pages):
        return f"export wrote {exported} frames of {len(verdict.pages)}"
    return ""


def run_trial(
    work: Path, protocol: Path, rig: Path, kind: str, after_frames: int, seed: int
) -> Trial:
    """One stop at `after_frames` frames, then resume and check."""
    from tjump.errors import InputError
    from tjump.sequencer.resume import resume_run_checked

    start = time.monotonic()
    rng = random.Random(seed)
    out = work / f"run-{seed}"
    argv = ["tjump", "run", str(protocol), "--rig", str(rig), "-o", str(out)]
    proc = _context().Process(target=_child, args=(argv,))
    proc.start()
    deadline = time.monotonic() + 120
    while proc.is_alive() and time.monotonic() < deadline:
        if _rows_written(out) >= after_frames:
            break
        time.sleep(0.002)
    assert proc.pid is not None
    sig = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}.get(kind, signal.SIGKILL)
    ended_first = not proc.is_alive()  # a closed loop can end a run before the moment
    if not ended_first:
        os.kill(proc.pid, sig)
    proc.join(60)
    if proc.is_alive():
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        return Trial(kind, after_frames, 0, 0, False, "the run did not stop", 0.0)
    if not (out / "manifest.json").exists():
        return Trial(kind, after_frames, 0, 0, False, "no run directory", 0.0)
    if kind == "power cut" and not ended_first:  # an ended run has synced everything
        _power_cut(out, rng)
    before = readable(out)
    finished_before = False
    try:
        resume_run_checked(out)
    except InputError as e:
        if "nothing to resume" not in str(e):
            return Trial(kind, after_frames, len(before), 0, False, f"resume: {e}")
        finished_before = "finished every step" in str(e)
    problem = check(out, before)
    after = len(readable(out))
    status = json.loads((out / "manifest.json").read_text())["status"]
    shutil.rmtree(out, ignore_errors=True)
    out.with_suffix(".ome.tif").unlink(missing_ok=True)
    return Trial(
        kind,
        after_frames,
        len(before),
        after,
        not problem,
        problem,
        time.monotonic() - start,
        status,
        ended_first,
        finished_before,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moments", type=int, default=100)
    parser.add_argument("--protocol", type=Path, help="default: a short demo (see above)")
    parser.add_argument("--rig", type=Path, help="default: sim-small at 128 x 128 px")
    args = parser.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)  # the analysis's own, on few particles

    from tjump.sequencer import plan_run, run_plan
    from tjump.sim.rig import install

    install()  # simulated rig files can be read and built
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        protocol, rig = small_inputs(work)
        args.protocol, args.rig = args.protocol or protocol, args.rig or rig
        plan = plan_run(args.protocol, args.rig)
        t0 = time.monotonic()
        # the frames the run takes: the schedule's, or fewer where a closed loop ends steps
        total = run_plan(plan, work / "baseline").frames
        baseline = check(work / "baseline", readable(work / "baseline"))
        baseline_s = time.monotonic() - t0
        print(
            f"baseline: {plan.protocol.name} on {plan.rig.name}, {total} frames, run without a "
            f"stop: {baseline or 'accepted'} in {baseline_s:.1f} s"
        )
        trials = []
        for i in range(args.moments):
            kind = KINDS[i % len(KINDS)]
            after = round(i * (total - 1) / max(args.moments - 1, 1))
            trial = run_trial(work, args.protocol, args.rig, kind, after, seed=i)
            trials.append(trial)
            mark = "ok  " if trial.ok else "FAIL"
            print(
                f"{mark} {i + 1:3d}/{args.moments} {kind:9s} after {after:5d} frames: "
                f"{trial.frames_before} readable -> {trial.frames_after} after resume"
                + (" (the run had ended before the stop)" if trial.ended_first else "")
                + (" (every step had finished as the stop came)" if trial.finished_before else "")
                + (f"  ({trial.problem})" if trial.problem else ""),
                flush=True,
            )
    passed = sum(t.ok for t in trials)
    seconds = sum(t.seconds for t in trials) / max(len(trials), 1)
    print(f"  {seconds:.1f} s a stop (run, stop, resume, verify, analyse, export)")
    ended = sum(t.ended_first for t in trials)
    if ended:
        print(f"  {ended} runs ended by themselves before their stop (checked all the same)")
    for kind in KINDS:
        of = [t for t in trials if t.kind == kind]
        print(f"  {kind:9s}: {sum(t.ok for t in of)} of {len(of)}")
    print(
        f"{passed} of {len(trials)} stops resumed to a run that verify, analyze and export "
        "accept, with every readable frame kept (baseline: an uninterrupted run, "
        f"{'accepted' if not baseline else 'REFUSED'})"
    )
    sys.exit(0 if passed == len(trials) else 1)


if __name__ == "__main__":
    main()
