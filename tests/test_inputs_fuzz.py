"""A seeded corpus of bad protocol, rig, calibration and recording files, generated here:
every one is accepted or refused with one message naming the field or file at fault; no
traceback, no hang (each case runs under a time limit)."""

from __future__ import annotations

import copy
import json
import random
import shutil
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import yaml

from test_run_directory import make_run
from tjump.analysis.recording import open_recording
from tjump.errors import TjumpError
from tjump.rig import load_calibration, load_rig
from tjump.sequencer import plan_run

from conftest import CALIBRATION, rig_yaml

SEED = 20261201
OK = ("accepted", "refused")
LIMIT_S = 10.0

PROTOCOL: dict[str, Any] = {
    "name": "fuzz",
    "frame_rate_hz": 10,
    "steps": [
        {"kind": "baseline", "duration_s": 2},
        {
            "kind": "series",
            "temperatures_K": [377.7, 384.9],
            "cycles": 2,
            "heat_s": 3,
            "cool_s": 2,
            "low_K": 293.0,
        },
        {"kind": "wait", "duration_s": 1},
        {"kind": "repeat", "times": 2, "steps": [{"kind": "hold", "duration_s": 1}]},
        {"kind": "ablation", "temperature_K": 460, "duration_s": 2, "cool_s": 1},
    ],
}
BAD_VALUES: list[Any] = [
    None,
    "text",
    -1,
    0,
    float("inf"),
    float("nan"),
    2**70,
    1e308,
    [],
    {},
    True,
    "\x00",
    "é" * 5000,
    [[[[1]]]],
    "2**70",
]


class Hang(Exception):
    pass


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: FrameType | None) -> None:
        raise Hang

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Case:
    name: str
    call: Callable[[], object]
    names: tuple[str, ...]  # the message must hold one of these (a field or file)


@dataclass
class Outcome:
    case: Case
    result: str  # accepted | refused | traceback | hang
    message: str = ""


def run_case(case: Case) -> Outcome:
    try:
        with time_limit(LIMIT_S):
            case.call()
    except Hang:
        return Outcome(case, "hang")
    except TjumpError as e:
        return Outcome(case, "refused", str(e))
    except Exception as e:
        return Outcome(case, "traceback", f"{type(e).__name__}: {e}")
    return Outcome(case, "accepted")


def paths_of(data: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path in nested dicts and lists."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield (*at, key)
            yield from paths_of(value, (*at, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield (*at, i)
            yield from paths_of(value, (*at, i))


def mutate(data: Any, path: tuple[Any, ...], value: Any, delete: bool = False) -> Any:
    out = copy.deepcopy(data)
    target = out
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return out


def field_of(path: tuple[Any, ...]) -> str:
    """The field a path names: its last key that is not a list index."""
    keys = [str(k) for k in path if not isinstance(k, int)]
    return keys[-1] if keys else "steps"


def protocol_cases(folder: Path, rig: Path, rng: random.Random) -> list[Case]:
    cases = []
    paths = list(paths_of(PROTOCOL))
    for i in range(160):
        path = rng.choice(paths)
        delete = rng.random() < 0.15 and not isinstance(path[-1], int)
        value = rng.choice(BAD_VALUES)
        text = yaml.safe_dump(mutate(PROTOCOL, path, value, delete), allow_unicode=True)
        file = folder / f"p{i}.yaml"
        file.write_text(text, encoding="utf-8")
        names = (field_of(path), "steps.") if field_of(path) == "kind" else (field_of(path),)
        if path[-1] == "steps" or path == ("steps",):
            names = ("steps",)
        cases.append(Case(f"protocol {path} = {str(value)[:30]!r}", _plan(file, rig), names))
    whole = {
        "alias bomb": "a: &a [x,x,x,x,x,x,x,x,x,x]\n"
        + "".join(
            f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        )
        + "name: x\nsteps: *i\n",
        "repeat alias bomb": "name: bomb\nsteps:\n  - &r {kind: repeat, times: 100000, steps: "
        "[{kind: repeat, times: 100000, steps: [{kind: baseline, duration_s: 1}]}]}\n",
        "deep nesting": "name: x\nsteps: " + "[" * 5000 + "]" * 5000 + "\n",
        "deep repeat": "name: x\nsteps:\n" + _deep_repeat(12),
        "50 MB list": None,
        "python tag": "name: !!python/object/apply:os.system ['true']\nsteps: []\n",
        "duplicate key": "name: x\nname: y\nsteps: [{kind: baseline, duration_s: 1}]\n",
        "empty": "",
        "scalar": "42\n",
        "list": "- 1\n- 2\n",
        "binary": "\x00\x01\x02\xff",
        "name traversal": "name: ../../../escape\nsteps: [{kind: baseline, duration_s: 1}]\n",
        "long name": "name: " + "n" * 5000 + "\nsteps: [{kind: baseline, duration_s: 1}]\n",
        "NUL in name": 'name: "a\\0b"\nsteps: [{kind: baseline, duration_s: 1}]\n',
        "wait forever": "name: w\nsteps: [{kind: wait, duration_s: .inf}]\n",
        "slow frames": "name: s\nframe_rate_hz: 0.01\nsteps: [{kind: baseline, duration_s: 1}]\n",
        "huge temperature list": "name: t\nsteps: [{kind: series, cycles: 1, heat_s: 1, "
        "cool_s: 1, temperatures_K: [" + ",".join(["380"] * 20000) + "]}]\n",
        "too many frames": "name: f\nframe_rate_hz: 200\nsteps: [{kind: repeat, times: 10000, "
        "steps: [{kind: baseline, duration_s: 86000}]}]\n",
    }
    expect = {
        "alias bomb": ("values",),
        "repeat alias bomb": ("unroll",),
        "deep nesting": ("nest",),
        "deep repeat": ("nest",),
        "50 MB list": ("bytes",),
        "python tag": ("python",),
        "duplicate key": ("'name' twice",),
        "name traversal": ("name",),
        "long name": ("name",),
        "NUL in name": ("NUL", "name"),
        "wait forever": ("duration_s",),
        "slow frames": ("frame_rate_hz",),
        "huge temperature list": ("temperatures_K",),
        "too many frames": ("unroll",),
    }
    for name, text in whole.items():
        file = folder / f"{name.replace(' ', '-')}.yaml"
        if text is None:
            file.write_text("name: big\nsteps: [" + "1," * 25_000_000 + "1]\n")
        else:
            file.write_text(text, encoding="utf-8", errors="surrogateescape")
        cases.append(Case(f"protocol: {name}", _plan(file, rig), expect.get(name, (file.name,))))
    return cases


def _deep_repeat(depth: int) -> str:
    text = "  " * depth + "- {kind: baseline, duration_s: 1}\n"
    for level in range(depth - 1, -1, -1):
        text = (
            "  " * level
            + "- kind: repeat\n"
            + "  " * level
            + "  times: 2\n"
            + ("  " * level + "  steps:\n" + text)
        )
    return text


def _plan(protocol: Path, rig: Path) -> Callable[[], object]:
    return lambda: plan_run(protocol, rig)


RIG_FIELDS: list[tuple[tuple[str, ...], list[Any]]] = [
    (("limits", "max_temperature_K"), [float("inf"), 2**70, -5, "hot", None, 5000]),
    (("limits", "max_current_A"), [float("inf"), float("nan"), 0, 1e9]),
    (("limits", "max_drive_V"), [float("inf"), -1, 1e6]),
    (("limits", "max_time_above", "seconds"), [float("inf"), 0, 1e12]),
    (("limits", "max_time_above", "temperature_K"), [2000, -1]),
    (("ambient_K",), [600.0, 0, float("nan"), 10]),
    (("camera", "max_frame_rate_hz"), [float("inf"), 0, 1e7]),
    (("camera", "exposure_ms"), [float("inf"), -3]),
    (("camera", "pixel_size_um"), [0, float("inf")]),
    (("daq", "sample_rate_hz"), [7, 0, float("inf"), 1e9]),
    (("simulation", "sensor", "width"), [1, 0, 100000]),
    (("simulation", "sensor", "height"), [1, -4]),
    (("simulation", "sample", "particles"), [10000, -1, 0]),
    (("simulation", "seed"), ["x", 1.5]),
    (("devices", "camera", "binning"), [3, 0, 16]),
    (("devices", "camera", "roi"), [[0, 0, 500, 500], [90, 90, 20, 20], [-1, 0, 8, 8], "x"]),
    (("name",), [None, []]),
    (("kind",), ["spaceship"]),
    (("calibration",), [None, 5]),
]


def rig_cases(folder: Path) -> list[Case]:
    base = yaml.safe_load(rig_yaml(width=96, height=96, particles=4, references=1))
    base["devices"] = {"camera": {"driver": "micro-manager"}}
    cases = []
    for i, (path, values) in enumerate(RIG_FIELDS):
        for j, value in enumerate(values):
            data = copy.deepcopy(base)
            target = data
            for key in path[:-1]:
                target = target.setdefault(key, {})
            target[path[-1]] = value
            file = folder / f"rig{i}-{j}.yaml"
            file.write_text(yaml.safe_dump(data), encoding="utf-8")
            names = (path[-1],)
            if path[-1] in ("width", "height", "particles", "sample_rate_hz", "ambient_K"):
                names = (path[-1], "sensor", "simulation.sample", "daq.sample_rate_hz")
            cases.append(Case(f"rig {'.'.join(path)} = {value!r}", _load_rig(file), names))
    text = rig_yaml(width=96, height=96, particles=4, references=1)
    extra = {
        "second limits block": text + "limits: {max_temperature_K: 900, max_drive_V: 9, "
        "max_current_A: 1, max_time_above: {temperature_K: 460, seconds: 9000}}\n",
        "calibration folder": text.replace(str(CALIBRATION), str(folder)),
        "calibration missing": text.replace(str(CALIBRATION), str(folder / "nope.csv")),
    }
    for name, body in extra.items():
        file = folder / f"{name.replace(' ', '-')}.yaml"
        file.write_text(body)
        names = ("'limits' twice",) if "limits" in name else (str(folder),)
        cases.append(Case(f"rig: {name}", _load_rig(file), names))
    return cases


def _load_rig(path: Path) -> Callable[[], object]:
    return lambda: load_rig(path)


def calibration_cases(folder: Path, rng: random.Random) -> list[Case]:
    texts = {
        "empty": "",
        "header only": "temperature_K,drive_V\n",
        "one point": "temperature_K,drive_V\n293,0\n",
        "text": "temperature_K,drive_V\n293,zero\n400,1\n",
        "nan": "temperature_K,drive_V\n293,0\nnan,1\n",
        "inf": "temperature_K,drive_V\n293,0\ninf,1\n",
        "falling": "temperature_K,drive_V\n400,0\n293,1\n",
        "flat drive": "temperature_K,drive_V\n293,0\n400,0\n",
        "negative": "temperature_K,drive_V\n-5,0\n400,1\n",
        "wrong columns": "t,v\n293,0\n400,1\n",
        "binary": "\x00\xff\x00\xfe" * 100,
        "huge": "temperature_K,drive_V\n"
        + "".join(f"{293 + i * 1e-4},{i * 1e-6}\n" for i in range(60000)),
        "2**70": f"temperature_K,drive_V\n293,0\n{2**70},1\n",
        "ragged": "temperature_K,drive_V\n293\n400,1,2\n",
    }
    for i in range(40 - len(texts)):
        rows = [(293 + 10 * k + rng.uniform(-20, 20), rng.uniform(-1, 3)) for k in range(5)]
        texts[f"random {i}"] = "temperature_K,drive_V\n" + "".join(f"{t},{v}\n" for t, v in rows)
    cases = []
    for name, text in texts.items():
        file = folder / f"cal-{name.replace(' ', '-')}.csv"
        file.write_text(text, encoding="utf-8", errors="surrogateescape")
        cases.append(Case(f"calibration: {name}", _load_cal(file), (file.name,)))
    cases.append(Case("calibration: a folder", _load_cal(folder), (str(folder),)))
    return cases


def _load_cal(path: Path) -> Callable[[], object]:
    return lambda: load_calibration(path)


def recording_cases(folder: Path, base: Path, rng: random.Random) -> list[Case]:
    manifest = json.loads((base / "manifest.json").read_text())
    rows = (base / "frames.csv").read_text().splitlines()
    header = rows[0].split(",")
    damages: dict[str, Callable[[Path], None]] = {
        "manifest array": lambda p: (p / "manifest.json").write_text("[1, 2]"),
        "manifest null": lambda p: (p / "manifest.json").write_text("null"),
        "manifest text": lambda p: (p / "manifest.json").write_text("not json"),
        "manifest no status": lambda p: _manifest(p, manifest, status=None),
        "manifest bad status": lambda p: _manifest(p, manifest, status="exploded"),
        "step response string": lambda p: _manifest(p, manifest, heater_step_response="fast"),
        "step response negative": lambda p: _manifest(
            p, manifest, heater_step_response=[[-1, 0.2]]
        ),
        "step response short pair": lambda p: _manifest(p, manifest, heater_step_response=[[1]]),
        "step response text pair": lambda p: _manifest(
            p, manifest, heater_step_response=[["a", "b"]]
        ),
        "exposure text": lambda p: _manifest(p, manifest, exposure_ms="long"),
        "exposure negative": lambda p: _manifest(p, manifest, exposure_ms=-50),
        "pixel size text": lambda p: _manifest(p, manifest, pixel_size_um="small"),
        "table empty": lambda p: (p / "frames.csv").write_text(""),
        "table binary": lambda p: (p / "frames.csv").write_bytes(b"\x00\xff" * 50),
        "table gone": lambda p: (p / "frames.csv").unlink(),
        "chunk gone": lambda p: next((p / "frames").glob("*.tif")).unlink(),
        "chunk empty": lambda p: next((p / "frames").glob("*.tif")).write_bytes(b""),
        "chunk not tiff": lambda p: next((p / "frames").glob("*.tif")).write_bytes(b"x" * 999),
        "stray file": lambda p: (p / "frames" / "notes.tif").write_text("hello"),
        "chunks swapped": _swap_chunks,
    }
    for column in header:
        for value in ("text", "-5", "nan", "", "1e400"):
            if column == "film_temperature_K" and value in ("nan", ""):
                continue  # "not known": a valid film temperature
            damages[f"{column} = {value!r}"] = _set_cell(rows, header.index(column), value, rng)
    damages["frames shuffled"] = _shuffle_rows(rows, rng)
    damages["frames duplicated"] = lambda p: (p / "frames.csv").write_text(
        "\n".join([*rows, rows[3]]) + "\n"
    )
    cases = []
    for i, (name, damage) in enumerate(damages.items()):
        target = folder / f"rec{i}"
        shutil.copytree(base, target)
        damage(target)
        files = ("manifest.json", "frames.csv", "frames/", "heater_step_response", "exposure_ms")
        cases.append(Case(f"recording: {name}", _open(target), files))
    return cases


def _manifest(path: Path, manifest: dict[str, Any], **changes: Any) -> None:
    data = {**manifest, **changes}
    (path / "manifest.json").write_text(
        json.dumps({k: v for k, v in data.items() if v is not None})
    )


def _swap_chunks(path: Path) -> None:
    a, b = sorted((path / "frames").glob("*.tif"))[:2]
    tmp = a.with_name("x.swap")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)


def _set_cell(
    rows: list[str], column: int, value: str, rng: random.Random
) -> Callable[[Path], None]:
    line = rng.randrange(1, len(rows))

    def damage(path: Path) -> None:
        cells = rows[line].split(",")
        cells[column] = value
        edited = [*rows[:line], ",".join(cells), *rows[line + 1 :]]
        (path / "frames.csv").write_text("\n".join(edited) + "\n")

    return damage


def _shuffle_rows(rows: list[str], rng: random.Random) -> Callable[[Path], None]:
    body = rows[1:]
    rng.shuffle(body)
    return lambda p: (p / "frames.csv").write_text("\n".join([rows[0], *body]) + "\n")


def _open(path: Path) -> Callable[[], object]:
    return lambda: open_recording(path)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Outcome]:
    folder = tmp_path_factory.mktemp("fuzz")
    rng = random.Random(SEED)
    rig = folder / "rig.yaml"
    rig.write_text(rig_yaml(width=96, height=96, particles=4, references=1))
    base = make_run(folder / "base", frames=12, chunk_frames=5)
    cases = [
        *protocol_cases(folder, rig, rng),
        *rig_cases(folder),
        *calibration_cases(folder, rng),
        *recording_cases(folder, base, rng),
    ]
    return [run_case(c) for c in cases]


def test_the_corpus_is_a_few_hundred_cases(corpus: list[Outcome]) -> None:
    assert len(corpus) >= 300
    assert sum(o.result == "refused" for o in corpus) >= 250


def test_no_traceback_and_no_hang(corpus: list[Outcome]) -> None:
    bad = [
        f"{o.case.name}: {o.result} {o.message}"
        for o in corpus
        if o.result in ("traceback", "hang")
    ]
    assert bad == []


def test_every_refusal_names_its_field_or_file(corpus: list[Outcome]) -> None:
    unnamed = [
        f"{o.case.name}: {o.message}"
        for o in corpus
        if o.result == "refused" and not any(n in o.message for n in o.case.names)
    ]
    assert unnamed == []


def test_the_recordings_are_all_refused(corpus: list[Outcome]) -> None:
    accepted = [
        o.case.name
        for o in corpus
        if o.case.name.startswith("recording") and o.result == "accepted"
    ]
    assert accepted == []


def test_the_obviously_bad_are_refused(corpus: list[Outcome]) -> None:
    must = (
        "alias bomb",
        "name traversal",
        "long name",
        "NUL in name",
        "wait forever",
        "duplicate key",
        "second limits block",
        "calibration folder",
        "2**70",
    )
    for o in corpus:
        if any(m in o.case.name for m in must):
            assert o.result == "refused", o.case.name
