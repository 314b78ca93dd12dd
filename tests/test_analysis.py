"""`tjump analyze` on simulated recordings: what it finds is what the simulator did.

One small run (128 x 128, 12 particles + 2 references, 3 temperatures x 4 cycles) is shared
by the module; the paper-protocol study is scripts/analysis_accuracy.py."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

from tjump.analysis.live import replay
from tjump.analysis.model import Analysis
from tjump.analysis.output import write_analysis
from tjump.analysis.pipeline import analyze_recording
from tjump.analysis.sizing import load_size_calibration
from tjump.analysis.tables import read_results
from tjump.analysis.truth import Truth, load_truth, score
from tjump.cli import main
from tjump.errors import InputError
from tjump.sequencer import plan_run, run_plan
from tjump.storage import RunDirectory
from tjump.storage.layout import ANALYSIS_TEMPERATURES
from tjump.storage.repair import repair

from conftest import ROOT, rig_yaml, series_protocol

SIZE_CALIBRATION = ROOT / "configs" / "calibrations" / "size-sim.csv"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("analysis-run")
    (folder / "rig.yaml").write_text(
        rig_yaml(width=128, height=128, particles=12, references=2, seed=5)
    )
    (folder / "p.yaml").write_text(
        series_protocol("[377.7, 381.0, 384.9]", cycles=4, heat_s=20, cool_s=6, baseline_s=4)
    )
    result = run_plan(plan_run(folder / "p.yaml", folder / "rig.yaml"), folder / "run", seed=5)
    assert result.status == "complete"
    return folder / "run"


@pytest.fixture(scope="module")
def analysed(run_dir: Path) -> tuple[Analysis, Truth]:
    calibration = load_size_calibration(SIZE_CALIBRATION)
    return analyze_recording(run_dir, calibration), load_truth(run_dir / "sim-truth")


def run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", ["tjump", *args])
    try:
        main()
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def test_particles_events_and_times_match_the_simulation(
    analysed: tuple[Analysis, Truth],
) -> None:
    analysis, truth = analysed
    s = score(analysis, truth)
    assert s["particles_found_fraction"] >= 0.95
    assert s["false_detections"] == 0
    assert s["events_true"] >= 100
    assert s["events_found_fraction"] >= 0.97
    assert s["events_precision"] >= 0.99
    assert s["median_time_error_frames"] <= 0.5  # issue: <= 1 frame; sub-frame timing
    assert s["p95_time_error_frames"] <= 1.0


def test_ea_is_as_good_as_the_same_fit_on_the_true_times(
    analysed: tuple[Analysis, Truth],
) -> None:
    analysis, truth = analysed
    ea = score(analysis, truth)["ea"]["1"]
    assert ea["particles"] >= 10
    assert ea["median_rel_error_analysis"] <= 1.25 * ea["median_rel_error_true_times"]
    fits = [f for f in analysis.fits[1] if np.isfinite(f.ea_kj_mol)]
    assert all(np.isfinite(f.ea_stderr_kj_mol) and f.ea_stderr_kj_mol > 0 for f in fits)


def test_the_heater_lag_model_brings_ea_closer_to_the_truth(
    run_dir: Path, analysed: tuple[Analysis, Truth]
) -> None:
    """Fitted against the setpoint, Ea is biased low (the film lags); with the heater's
    step response the same events give Ea much closer to the simulator's, and so does the
    default analysis, which reads the response from the recording itself."""
    analysis, truth = analysed
    plain = analyze_recording(run_dir, thermometer="setpoints")
    lagged = analyze_recording(run_dir, response=((0.776, 0.17), (0.224, 8.6)))
    plain_error = score(plain, truth)["ea"]["1"]["median_rel_error_analysis"]
    lag_error = score(lagged, truth)["ea"]["1"]
    assert lag_error["median_rel_error_analysis"] < 0.6 * plain_error
    assert lag_error["median_rel_error_analysis"] <= 1.25 * lag_error["median_rel_error_true_times"]
    assert analysis.thermometry["used"] == "image"
    own_error = score(analysis, truth)["ea"]["1"]["median_rel_error_analysis"]
    assert own_error < 0.6 * plain_error


def test_references_never_switch_and_steps_are_the_hs_dimming(
    analysed: tuple[Analysis, Truth],
) -> None:
    analysis, truth = analysed
    d = analysis.detections
    dist = np.hypot(d.x[:, None] - truth.x[None, :], d.y[:, None] - truth.y[None, :])
    nearest = dist.argmin(axis=1)
    references = truth.is_reference[nearest]
    assert references.sum() == 2
    assert not np.isfinite(analysis.events.nucleation_s[references]).any()
    # found and flagged as inert; no particle that switched is
    assert analysis.inert is not None
    assert analysis.inert[references].all()
    assert np.all(analysis.detections.flags[references] & 4)
    switched = np.isfinite(analysis.events.nucleation_s).any(axis=1)
    assert not analysis.inert[switched].any()
    steps = analysis.events.step[np.isfinite(analysis.events.step)]
    assert 0.12 <= np.median(steps) <= 0.18  # HS is 13-17 % dimmer
    returns = analysis.events.return_s[np.isfinite(analysis.events.return_s)]
    assert len(returns) >= 0.9 * len(steps)
    assert 0.0 < np.median(returns) < 2.0  # back to LS ~1 s after cooling
    # the focal-drift common mode dims during heating by a few %, and is 1 before any jump
    first = analysis.cycles[0].first
    assert np.all(np.abs(analysis.common[:first] - 1.0) < 0.01)
    hot = np.concatenate([analysis.common[c.first : c.cool_first] for c in analysis.cycles])
    assert 0.9 < hot.min() < 0.99


def test_size_from_intensity_through_the_calibration(analysed: tuple[Analysis, Truth]) -> None:
    analysis, truth = analysed
    d = analysis.detections
    assert analysis.size_nm is not None
    dist = np.hypot(d.x[:, None] - truth.x[None, :], d.y[:, None] - truth.y[None, :])
    nearest = dist.argmin(axis=1)
    sco = ~truth.is_reference[nearest]
    rel = np.abs(analysis.size_nm[sco] - truth.size_nm[nearest[sco]]) / truth.size_nm[nearest[sco]]
    assert np.median(rel) < 0.03
    assert rel.max() < 0.1


def test_cli_writes_tables_figures_and_report(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "result"
    code = run_cli(
        ["analyze", str(run_dir), "-o", str(out), "-c", str(SIZE_CALIBRATION)], monkeypatch
    )
    assert code == 0
    with (out / "particles.csv").open() as f:
        particles = list(csv.DictReader(f))
    with (out / "events.csv").open() as f:
        events = list(csv.DictReader(f))
    for column in ["particle_id", "x", "y", "ea_kj_mol", "ea_stderr_kj_mol", "ln_prefactor"]:
        assert column in particles[0]
    for column in ["particle_id", "cycle", "temperature_K", "nucleation_s", "growth_s", "step"]:
        assert column in events[0]
    assert len(particles) == 14
    assert len(events) == 14 * 12
    assert sum(p["inert"] == "1" for p in particles) == 2  # the simulated SiO2 references
    assert all(float(p["ea_stderr_temperature_kj_mol"]) > 0 for p in particles if p["ea_kj_mol"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["thermometry"]["used"] == "image"
    assert summary["thermometry"]["image"]["fraction_of_step"]["10_s"]["stderr"] < 0.05
    censored = [e for e in events if e["censored"] == "1"]
    assert all(e["nucleation_s"] == "" for e in censored)
    switched = [float(e["nucleation_s"]) for e in events if e["nucleation_s"]]
    assert all(0 <= t <= 20 for t in switched)
    with (out / "ensemble.csv").open() as f:
        ensemble = list(csv.DictReader(f))
    assert [float(e["temperature_K"]) for e in ensemble] == [377.7, 381.0, 384.9]
    rates = [float(e["first_order_k_per_s"]) for e in ensemble]
    assert rates == sorted(rates)  # hotter: faster
    assert all(e["avrami_n"] and 0.3 < float(e["avrami_n"]) < 8 for e in ensemble)
    report = (out / "report.html").read_text()
    figures = sorted((out / "figures").glob("*.png"))
    assert len(figures) >= 6
    for figure in figures:
        assert f"figures/{figure.name}" in report
        assert figure.stat().st_size > 10_000  # a drawn plot, not an empty canvas
    assert not list(tmp_path.glob(".result*"))  # no staging folder left behind


def test_what_the_gui_reads_back_is_the_model(
    analysed: tuple[Analysis, Truth], tmp_path: Path
) -> None:
    """particles.csv and events.csv, read through the typed reader, hold the model's
    values (to the digits written); the per-temperature table is the model's too."""
    analysis, _ = analysed
    write_analysis(analysis, tmp_path / "out", figures=False)
    particles, events = read_results(tmp_path / "out")
    fits = analysis.fits[1]
    n = len(analysis.detections)
    assert particles.particle_id.tolist() == list(range(n))
    np.testing.assert_allclose(particles.x, analysis.detections.x, atol=5e-4)
    ea = np.array([f.ea_kj_mol for f in fits])
    assert np.isfinite(ea).sum() >= 8
    np.testing.assert_allclose(particles.ea_kj_mol, ea, atol=5e-3, equal_nan=True)
    np.testing.assert_allclose(
        particles.ln_prefactor, [f.ln_prefactor for f in fits], atol=5e-4, equal_nan=True
    )
    waits = analysis.events.nucleation_s
    assert len(events.particle_id) == waits.size
    np.testing.assert_allclose(events.nucleation_s, waits.ravel(), atol=5e-5, equal_nan=True)
    cycle_temps = [c.temperature_K for c in analysis.cycles]
    np.testing.assert_allclose(events.temperature_K, np.tile(cycle_temps, n), atol=5e-3)
    with (tmp_path / "out" / ANALYSIS_TEMPERATURES).open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(analysis.per_temperature) == n * 3
    for row, stats in zip(rows, analysis.per_temperature, strict=True):
        assert int(row["particle_id"]) == stats.particle
        written = float(row["ml_mean_nucleation_s"] or "nan")
        np.testing.assert_allclose(written, stats.ml_mean_nucleation_s, atol=5e-4)
    with pytest.raises(InputError, match="run `tjump analyze`"):
        read_results(tmp_path)


def test_live_detector_frame_by_frame_agrees_with_the_offline_one(
    run_dir: Path, analysed: tuple[Analysis, Truth]
) -> None:
    """The GUI's (and the sequencer's) path: one row of intensities per frame with its
    record, events a few frames late; the same events and times as the offline analysis."""
    analysis, _ = analysed
    rec = analysis.recording
    table = RunDirectory(run_dir).frames_table()
    assert len(table) == rec.frames
    replayed = replay(analysis, table, confirm_frames=3)
    for event, j in zip(replayed.events, replayed.cycles, strict=True):
        assert analysis.cycles[j].temperature_K == pytest.approx(event.setpoint_K, abs=0.01)
    seen = replayed.nucleation_s
    late = [event.seen_frame - event.frame for event in replayed.events]
    offline = analysis.events.nucleation_s
    both = np.isfinite(seen) & np.isfinite(offline)
    matched = both.sum() / np.isfinite(offline).sum()
    extra = (np.isfinite(seen) & ~np.isfinite(offline)).sum()
    difference = np.abs(seen[both] - offline[both])
    assert np.isfinite(offline).sum() >= 40
    assert matched >= 0.97
    assert extra <= 0.02 * both.sum()
    assert np.median(difference) <= 0.01 and np.percentile(difference, 90) <= 0.1
    assert np.median(late) <= 3 + 1  # confirmed by the 3 frames after the step


def write_generic(run_dir: Path, folder: Path, contiguous: bool, exposure: bool) -> Path:
    """The run as a generic recording: one multi-page TIFF and a minimal frames.csv."""
    folder.mkdir()
    frames = RunDirectory(run_dir).read_frames()
    if contiguous:
        tifffile.imwrite(folder / "frames.tif", frames)
    else:
        with tifffile.TiffWriter(folder / "frames.tif") as tif:
            for frame in frames:
                tif.write(frame, contiguous=False, metadata=None)
    rows = RunDirectory(run_dir).frames_table()
    with (folder / "frames.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["frame", "time_s", "temperature_K", *(["exposure_s"] if exposure else [])])
        for r in rows:
            out.writerow(
                [r["frame"], r["time_s"], r["temperature_K"], *(["0.05"] if exposure else [])]
            )
    return folder


def test_generic_format_gives_the_same_events(
    run_dir: Path, analysed: tuple[Analysis, Truth], tmp_path: Path
) -> None:
    analysis, truth = analysed
    generic = analyze_recording(write_generic(run_dir, tmp_path / "g", True, exposure=True))
    np.testing.assert_array_equal(
        np.isfinite(generic.events.nucleation_s), np.isfinite(analysis.events.nucleation_s)
    )
    np.testing.assert_allclose(
        generic.events.nucleation_s, analysis.events.nucleation_s, atol=1e-9, equal_nan=True
    )
    # without an exposure column the exposure is taken as the whole frame period:
    # same events, times within a frame
    plain = analyze_recording(write_generic(run_dir, tmp_path / "p", False, exposure=False))
    assert plain.recording.files[0].first_offset is not None  # memory-mapped, not paged
    diff = np.abs(plain.events.nucleation_s - analysis.events.nucleation_s)
    assert np.nanmax(diff) <= 0.1
    assert score(plain, truth)["median_time_error_frames"] <= 1.0


def test_skipping_the_first_cycles_leaves_them_out_of_the_fits(
    run_dir: Path, analysed: tuple[Analysis, Truth]
) -> None:
    analysis, _ = analysed
    assert {f.n_events + f.n_censored for f in analysis.fits[1]} == {12}
    skipped = analyze_recording(run_dir, skip_cycles=2)
    assert {f.n_events + f.n_censored for f in skipped.fits[1]} == {6}
    # the events themselves are all still found and reported
    np.testing.assert_array_equal(skipped.events.nucleation_s, analysis.events.nucleation_s)
    kept = [j for j, c in enumerate(analysis.cycles) if c.cycle > 2]
    for fit, row in zip(skipped.fits[1], analysis.events.nucleation_s, strict=True):
        assert fit.n_events == np.isfinite(row[kept]).sum()


def test_a_run_cut_short_is_analysed_up_to_its_last_whole_frame(
    run_dir: Path, tmp_path: Path
) -> None:
    """A crashed run: manifest still 'running', last TIFF page half written, frames.csv
    ahead of the frames. Analysis refuses it until `verify --repair`, then analyses the
    complete frames."""
    cut = tmp_path / "cut"
    shutil.copytree(run_dir, cut)
    manifest = json.loads((cut / "manifest.json").read_text())
    manifest["status"] = "running"
    (cut / "manifest.json").write_text(json.dumps(manifest))
    last = sorted((cut / "frames").glob("*.tif"))[-1]
    last.write_bytes(last.read_bytes()[:-5000])
    with pytest.raises(InputError, match="verify --repair"):
        analyze_recording(cut)
    assert repair(cut)
    analysis = analyze_recording(cut)
    full = RunDirectory(run_dir).frame_count()
    assert full - 2 <= analysis.recording.frames < full
    assert len(analysis.detections) == 14


@pytest.fixture
def generic(run_dir: Path, tmp_path: Path) -> Iterator[Path]:
    yield write_generic(run_dir, tmp_path / "in", False, exposure=False)


def error_of(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> str:
    code = run_cli(args, monkeypatch)
    text = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in text.out + text.err
    return " ".join((text.out + text.err).split())


def test_truncated_tiff_is_refused(
    generic: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tif = generic / "frames.tif"
    data = tif.read_bytes()
    tif.write_bytes(data[: len(data) - 5000])
    message = error_of(["analyze", str(generic), "-o", str(tmp_path / "o")], monkeypatch, capsys)
    assert "frames.tif" in message
    assert "truncated" in message or "rows" in message
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--thermal-response", "0.5:0.2"], "add up to 0.5"),
        (["--thermal-response", "fast"], "weight:tau_s pairs"),
        (["--calibration", "missing.csv"], "calibration file not found"),
    ],
)
def test_bad_options_get_one_clear_message(
    option: list[str],
    expected: str,
    generic: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "o"
    message = error_of(["analyze", str(generic), "-o", str(out), *option], monkeypatch, capsys)
    assert expected in message
    assert not out.exists()


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        ("int32", "int32 pixels"),
        ("rows", "rows but the TIFF holds"),
        ("no-temperature", "no 'temperature_K' column"),
        ("no-jump", "no jump"),
        ("no-particle", "no particle found"),
    ],
)
def test_bad_input_gets_one_clear_message(
    problem: str,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(1)
    frames = rng.poisson(100, (60, 48, 48)).astype(np.uint16)
    yy, xx = np.mgrid[:48, :48]
    spot = (2000 * np.exp(-((xx - 24.3) ** 2 + (yy - 20.6) ** 2) / (2 * 0.76**2))).astype(np.uint16)
    if problem != "no-particle":
        frames += spot
    if problem == "int32":
        tifffile.imwrite(folder / "frames.tif", frames.astype(np.int32))
    else:
        tifffile.imwrite(folder / "frames.tif", frames)
    temperature = np.where(np.arange(60) >= 20, 380.0, 293.0)
    if problem == "no-jump":
        temperature[:] = 293.0
    n_rows = 59 if problem == "rows" else 60
    name = "setpoint_K" if problem == "no-temperature" else "temperature_K"
    lines = [f"frame,time_s,{name}"] + [f"{k},{k / 10:.1f},{temperature[k]}" for k in range(n_rows)]
    (folder / "frames.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "o"
    message = error_of(["analyze", str(folder), "-o", str(out)], monkeypatch, capsys)
    assert expected in message
    assert message.startswith("error:")
    assert not out.exists()


def test_named_inert_particles_get_no_events_and_bad_names_one_message(
    run_dir: Path, analysed: tuple[Analysis, Truth], tmp_path: Path
) -> None:
    analysis, _ = analysed
    switcher = int(np.flatnonzero(np.isfinite(analysis.events.nucleation_s).any(axis=1))[0])
    d = analysis.detections
    names = tmp_path / "inert.txt"
    names.write_text(f"# by position\n{d.x[switcher]:.1f}, {d.y[switcher]:.1f}\n")
    named = analyze_recording(run_dir, inert_file=names, temperature_errors=False)
    assert named.inert is not None and named.inert[switcher]
    assert not np.isfinite(named.events.nucleation_s[switcher]).any()
    assert np.isnan(named.fits[1][switcher].ea_kj_mol)
    bad = (
        ("99\n", "particle 99 does not exist"),
        ("a b c\n", "line 1"),
        (f"{switcher}\n!{switcher}\n", f"particle {switcher} is named both inert and not inert"),
    )
    for text, message in bad:
        names.write_text(text)
        with pytest.raises(InputError, match=message):
            analyze_recording(run_dir, inert_file=names)
