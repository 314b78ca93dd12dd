"""`tjump analyze`: from a recording to nucleation events and activation energies."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tjump.cli.console import console
from tjump.errors import InputError

if TYPE_CHECKING:  # the analysis (scipy, zarr, tensorstore) loads when a command needs it
    from tjump.analysis.batch import BatchOptions


def parse_response(text: str) -> tuple[tuple[float, float], ...]:
    """'0.776:0.17,0.224:8.6' -> ((0.776, 0.17), (0.224, 8.6)); weights sum to 1."""
    try:
        pairs = tuple(
            (float(w), float(tau))
            for w, tau in (item.split(":") for item in text.split(",") if item.strip())
        )
    except ValueError as e:
        raise InputError(
            f"--thermal-response {text!r}: expected weight:tau_s pairs such as 0.776:0.17,0.224:8.6"
        ) from e
    if not pairs or any(w <= 0 or tau <= 0 for w, tau in pairs):
        raise InputError(f"--thermal-response {text!r}: weights and time constants must be > 0")
    total = sum(w for w, _ in pairs)
    if abs(total - 1.0) > 0.02:
        raise InputError(f"--thermal-response {text!r}: the weights add up to {total:g}, not 1")
    return tuple((w / total, tau) for w, tau in pairs)


def analyze(
    recordings: Annotated[
        list[Path],
        typer.Argument(
            help="Run directory, its OME-Zarr export, or a folder with frames.tif + frames.csv; "
            "several of them, or a folder of them, are analysed in parallel on Dask.",
            show_default=False,
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the results.")],
    calibration: Annotated[
        Path | None,
        typer.Option("--calibration", "-c", help="Size calibration CSV (intensity_adu,size_nm)."),
    ] = None,
    skip_cycles: Annotated[
        int,
        typer.Option(
            "--skip-cycles", min=0, help="Leave the first N cycles of each temperature out of fits."
        ),
    ] = 0,
    ablation_K: Annotated[
        float,
        typer.Option(
            "--ablation-k",
            help="Heating at or above this setpoint is ablation (generic files without 'kind').",
        ),
    ] = 450.0,
    thermal_response: Annotated[
        str | None,
        typer.Option(
            "--thermal-response",
            help=(
                "The heater's step response as weight:tau_s pairs, e.g. 0.776:0.17,0.224:8.6 "
                "(the simulated rig): use it instead of any thermometer."
            ),
        ),
    ] = None,
    thermometer: Annotated[
        str,
        typer.Option(
            "--thermometer",
            help=(
                "Where the film's step response comes from: auto (the image's focal drift "
                "when well determined, else the film's V/I, the rig's, the setpoints), "
                "image, film, rig or setpoints."
            ),
        ),
    ] = "auto",
    setpoints: Annotated[
        bool,
        typer.Option("--setpoints", help="Fit against the setpoints (= --thermometer setpoints)."),
    ] = False,
    inert: Annotated[
        Path | None,
        typer.Option(
            "--inert",
            help=(
                "Text file naming inert reference particles: one id or x,y position a line; "
                "a line starting with ! names one that is not inert."
            ),
        ),
    ] = None,
    figures: Annotated[
        bool, typer.Option("--figures/--no-figures", help="Write figures and report.html.")
    ] = True,
    keep_interrupted: Annotated[
        bool,
        typer.Option(
            "--keep-interrupted",
            help="Keep the frames of cycles a run did not finish (cut short, then redone "
            "after a resume); they are left out by default.",
        ),
    ] = False,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Many runs: address of a running Dask scheduler (e.g. tcp://host:8786); "
            "default a local cluster on this computer.",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Many runs: worker processes of the local cluster (default: one per CPU core).",
        ),
    ] = None,
) -> None:
    """Find particles, their nucleation events and their activation energies.

    Temperatures are the film's: its step response is read from the recording itself (the
    common-mode focal drift of the particles, cross-checked with the film's V/I where
    recorded), or given with --thermal-response. Several recordings (or a folder of them)
    are analysed in parallel, each into OUTPUT/<name>, with one summary across them in
    OUTPUT/index.html."""
    from tjump.analysis.batch import BatchOptions, find_recordings
    from tjump.analysis.sizing import load_size_calibration
    from tjump.cli.batch import analyze_many

    options = BatchOptions(
        calibration,
        skip_cycles,
        ablation_K,
        parse_response(thermal_response) if thermal_response else None,
        "setpoints" if setpoints else thermometer,
        inert,
        figures,
        keep_interrupted,
    )
    single = recordings[0]
    if len(recordings) == 1 and not _holds_recordings(single):
        _analyze_one(single, output, options)
        return
    if calibration is not None:
        load_size_calibration(calibration)  # a bad file is named before any run starts
    if inert is not None and not inert.is_file():
        raise InputError(f"--inert {inert}: file not found")
    analyze_many(find_recordings(recordings), output, options, scheduler, workers)


def _holds_recordings(path: Path) -> bool:
    """A folder of recordings rather than one recording (or a bad path, which the single-run
    analysis names)."""
    from tjump.analysis.batch import is_recording

    if is_recording(path) or not path.is_dir():
        return False
    return any(is_recording(p) for p in path.iterdir())


def _analyze_one(recording: Path, output: Path, options: BatchOptions) -> None:
    """The single-run analysis, as before many runs were possible."""
    from tjump.analysis.batch import analyze_with

    with console.status("analysing"):
        analysis = analyze_with(recording, output, options)
    cut = analysis.recording.extra.get("interrupted_frames", 0)
    if cut:
        kept = options.keep_interrupted
        done = "kept" if kept else "left out (--keep-interrupted keeps them)"
        typer.echo(f"{cut} frames of interrupted cycles {done}")
    a = analysis
    pop = a.populations[a.series[0]]
    ea_text = (
        f", median Ea {pop.ea_median_kj_mol:.0f} kJ/mol over {pop.particles_with_ea}"
        if pop.particles_with_ea
        else ""
    )
    inert = int(a.inert.sum()) if a.inert is not None else 0
    censored = a.events.nucleation_s.size - a.event_count
    typer.echo(
        f"{len(a.detections)} particles ({int(a.detections.usable.sum())} usable, "
        f"{inert} inert), {len(a.cycles)} cycles, "
        f"{a.event_count} events, {censored} censored{ea_text} -> {output}"
    )
    typer.echo(thermometer_line(a.thermometry))
    if "inert_file" in a.recording.extra:
        typer.echo(f"inert particles named in {a.recording.extra['inert_file']}")


def thermometer_line(report: dict[str, Any]) -> str:
    """One line: which thermometer gave the temperatures and how well the others agree."""
    used = report["used"]
    names = {
        "image": "the image (common-mode focal drift)",
        "film": "the film's resistance (V/I)",
        "rig": "the rig file's step response",
        "given": "--thermal-response",
        "setpoints": "the setpoints (no step response)",
    }
    text = f"temperatures from {names[used]}"
    if report.get("response"):
        parts = ", ".join(f"{w:.2f} x {tau:.2g} s" for w, tau in report["response"])
        text += f": step response {parts}"
    inferred = report.get({"image": "image", "film": "film_resistance"}.get(used, ""))
    if inferred:
        at10 = inferred["fraction_of_step"]["10_s"]
        text += f"; {at10['value']:.1%} +- {at10['stderr']:.1%} of a step at 10 s"
    agreement = report.get("agreement") or {}
    if agreement:
        text += "; agreement (largest difference of the step responses): " + ", ".join(
            f"{k.replace('_vs_', ' vs ')} {v:.1%}" for k, v in agreement.items()
        )
    return text
