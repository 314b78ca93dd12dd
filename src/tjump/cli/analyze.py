"""`tjump analyze`: from a recording to nucleation events and activation energies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tjump.analysis.pipeline import analyze_recording, summary, write_analysis
from tjump.analysis.recording import recorded_step_response
from tjump.analysis.sizing import load_size_calibration
from tjump.analysis.zarr_recording import zarr_step_response
from tjump.cli.console import console
from tjump.errors import InputError


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
    recording: Annotated[
        Path, typer.Argument(help="Run directory, or a folder with frames.tif + frames.csv.")
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
                "(the simulated rig): fit Arrhenius against the lagging film temperature "
                "instead of the setpoint."
            ),
        ),
    ] = None,
    setpoints: Annotated[
        bool,
        typer.Option(
            "--setpoints",
            help="Fit Arrhenius against the setpoints even where the run recorded its "
            "heater's step response.",
        ),
    ] = False,
    figures: Annotated[
        bool, typer.Option("--figures/--no-figures", help="Write figures and report.html.")
    ] = True,
) -> None:
    """Find particles, their nucleation events and their activation energies.

    Temperatures are the film's, from the heater's step response where known (given with
    --thermal-response, or recorded by the run from its rig file), else the setpoints."""
    size_calibration = load_size_calibration(calibration) if calibration is not None else None
    response = None
    if thermal_response:
        response = parse_response(thermal_response)
    elif not setpoints:
        response = recorded_step_response(recording) or zarr_step_response(recording)
    with console.status("analysing"):
        analysis = analyze_recording(
            recording,
            size_calibration,
            skip_cycles=skip_cycles,
            ablation_K=ablation_K,
            response=response,
        )
        write_analysis(analysis, output, figures=figures)
    s = summary(analysis)
    pop = s["population"][str(analysis.series[0])]
    ea = pop.get("ea_median_kj_mol")
    ea_text = f", median Ea {ea:.0f} kJ/mol over {pop['particles_with_ea']}" if ea else ""
    typer.echo(
        f"{s['particles']} particles ({s['usable_particles']} usable), {s['cycles']} cycles, "
        f"{s['events']} events, {s['censored']} censored{ea_text} -> {output}"
    )
