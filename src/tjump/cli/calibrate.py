"""`tjump calibrate`: measure a rig's heater film (R0, alpha, step response) with the camera
running, and write the heater model file its rig file points to."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tjump.cli.console import console
from tjump.rig import load_rig
from tjump.rig.heater_model import write_heater_model
from tjump.sequencer.calibrate import TOP_K, measure_heater


def calibrate(
    rig: Annotated[Path, typer.Option("--rig", "-r", help="Rig file.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Heater model file to write (default: the rig's heater_model, else "
            "<rig>.heater-model.yaml beside the rig file).",
        ),
    ] = None,
    levels: Annotated[int, typer.Option("--levels", min=2, help="Drive levels.")] = 4,
    hold_s: Annotated[
        float, typer.Option("--hold-s", min=5.0, help="Seconds at each level.")
    ] = 60.0,
    cool_s: Annotated[
        float, typer.Option("--cool-s", min=5.0, help="Seconds at ambient after each.")
    ] = 60.0,
    top_K: Annotated[
        float, typer.Option("--max-temperature-k", help="Hottest level (below ablation).")
    ] = TOP_K,
    run_dir: Annotated[
        Path | None,
        typer.Option("--keep-run", help="Keep the calibration run's recording in this folder."),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Simulator seed.")] = None,
) -> None:
    """Step the heater through a few levels with the camera running; measure the film's
    resistance against temperature and its step response (from V/I and from the image);
    write them to the heater model file the rig file points to."""
    config = load_rig(rig)
    target = output or config.heater_model or rig.with_name(f"{rig.stem}.heater-model.yaml")
    with console.status("calibrating the heater"):
        result = measure_heater(rig, levels, hold_s, cool_s, top_K, run_dir, seed)
    write_heater_model(target, result.model)
    typer.echo(result.summary())
    typer.echo(f"heater model -> {target}")
    if config.heater_model is None or config.heater_model.resolve() != target.resolve():
        typer.echo(f"add to {rig}: heater_model: {target}")
