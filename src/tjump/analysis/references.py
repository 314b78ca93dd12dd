"""Inert reference particles: found in the data, or named by the user.

A particle is inert when it shows no transition in any cycle while its intensity follows the
common mode (it dims with the focal drift after each jump like every other particle, and
nothing else): an SiO2 reference, or a spin-crossover particle that never switches at the
temperatures recorded. Inert particles are kept in the common mode, which they define best,
and are never given events.

Users can name them in a text file: one particle a line, either its id (as in
particles.csv) or its position `x,y` in pixels (matched to the nearest particle within 3 px).
A line starting with `!` names a particle that is *not* inert, overruling the analysis when it
called one inert that the user knows switches (or that is not a reference at all). Blank
lines and lines starting with `#` are skipped. The file `inert.txt` in a recording's
folder (what the GUI writes when the user clicks particles) is read by every analysis of
that recording unless another file is given.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tjump.analysis.detection import Detections
from tjump.analysis.events import Cycle, EventTable
from tjump.errors import InputError

FloatArray = NDArray[np.float64]
MATCH_PX = 3.0
MIN_CYCLES = 3
MIN_DIMMING = 0.004  # the common mode must dim at least this much for "following" to be tested
INERT_FILE = "inert.txt"  # in a recording's folder: the particles its user named inert


def inert_file_of(recording: Path) -> Path:
    """Where the particles named inert for `recording` are kept."""
    return recording / INERT_FILE


@dataclass(frozen=True)
class InertNames:
    """What a user said about particles: named inert, and named not inert (overruling the
    analysis's own finding)."""

    inert: NDArray[np.bool_]
    not_inert: NDArray[np.bool_]

    def apply(self, found: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """The particles treated as inert: those found or named, less those named not inert."""
        return np.asarray((found | self.inert) & ~self.not_inert)


def write_inert_file(
    path: Path,
    x: FloatArray,
    y: FloatArray,
    inert: NDArray[np.bool_],
    not_inert: NDArray[np.bool_],
) -> None:
    """Name particles inert, or not inert, by position (x, y in pixels; particle numbers only
    as comments: they can change when the particles are found again), replacing the file in
    one step."""
    lines = [
        "# inert reference particles: x,y in pixels, one a line (tjump analyze --inert);",
        "# a line starting with ! names a particle that is not inert",
    ]
    lines += [f"{x[i]:.2f},{y[i]:.2f}  # particle {i}" for i in np.flatnonzero(inert)]
    lines += [
        f"!{x[i]:.2f},{y[i]:.2f}  # particle {i}, not inert" for i in np.flatnonzero(not_inert)
    ]
    part = path.with_name(path.name + ".partial")
    part.write_text("\n".join(lines) + "\n", encoding="utf-8")
    part.replace(path)


def find_inert(
    intensity: FloatArray,
    cycles: list[Cycle],
    events: EventTable,
    common: FloatArray,
) -> NDArray[np.bool_]:
    """Particles with no event in any cycle whose relative dimming in the heated frames is
    the common mode's (regression slope between 0.5 and 1.5 where the common mode dims by
    more than `MIN_DIMMING`; where it barely dims, no event is enough)."""
    n = intensity.shape[1]
    quiet = ~np.isfinite(events.nucleation_s).any(axis=1)
    seen = np.isfinite(events.level).sum(axis=1) >= min(MIN_CYCLES, len(cycles))
    xs: list[FloatArray] = []
    ys: list[FloatArray] = []
    for j, c in enumerate(cycles):
        level = events.level[:, j]
        rel = intensity[c.first : c.cool_first] / level[None, :]
        xs.append(np.repeat(1.0 - common[c.first : c.cool_first, None], n, axis=1))
        ys.append(1.0 - rel)
    if not xs:
        return np.zeros(n, dtype=bool)
    x, y = np.concatenate(xs), np.concatenate(ys)
    good = np.isfinite(x) & np.isfinite(y)
    x, y = np.where(good, x, 0.0), np.where(good, y, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        xx = (x * x).sum(axis=0)
        slope = (x * y).sum(axis=0) / xx
        dimming = np.sqrt(xx / np.maximum(good.sum(axis=0), 1))
    follows = (dimming < MIN_DIMMING) | ((slope > 0.5) & (slope < 1.5))
    return np.asarray(quiet & seen & follows)


@dataclass(frozen=True)
class InertLine:
    """One line of an inert file that names a particle: its numbers (an id, or x and y;
    None when they are not numbers) and whether it says *not* inert (`!`)."""

    number: int  # line number, from 1
    text: str
    not_inert: bool
    values: list[float] | None


def inert_lines(text: str) -> list[InertLine]:
    """The lines of an inert file that name a particle (comments and blank lines left out)."""
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [p for p in line.removeprefix("!").replace(";", ",").replace(" ", ",").split(",")]
        try:
            values: list[float] | None = [float(p) for p in parts if p]
        except ValueError:
            values = None
        out.append(InertLine(number, raw.strip(), line.startswith("!"), values))
    return out


def read_inert_file(path: Path, detections: Detections) -> InertNames:
    """The particles a user names inert, and not inert (`!` lines), by id or x,y position."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"--inert {path} cannot be read: {e}") from e
    n = len(detections)
    names = InertNames(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool))
    for line in inert_lines(text):
        mask = names.not_inert if line.not_inert else names.inert
        values, number = line.values or [], line.number
        if len(values) == 1 and values[0].is_integer():
            pid = int(values[0])
            if not 0 <= pid < n:
                raise InputError(
                    f"--inert {path} line {number}: particle {pid} does not exist (ids 0-{n - 1})"
                )
            mask[pid] = True
        elif len(values) == 2:
            distance = np.hypot(detections.x - values[0], detections.y - values[1])
            nearest = int(np.argmin(distance)) if n else -1
            if nearest < 0 or distance[nearest] > MATCH_PX:
                raise InputError(
                    f"--inert {path} line {number}: no particle within {MATCH_PX:g} px of "
                    f"({values[0]:g}, {values[1]:g})"
                )
            mask[nearest] = True
        else:
            raise InputError(
                f"--inert {path} line {number}: {line.text!r} is neither a particle id nor "
                "an x,y position"
            )
    both = names.inert & names.not_inert
    if both.any():
        raise InputError(
            f"--inert {path}: particle {int(np.flatnonzero(both)[0])} is named both inert and "
            "not inert"
        )
    return names
