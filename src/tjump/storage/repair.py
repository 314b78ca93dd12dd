"""`verify --repair`: make a run directory consistent without losing a readable frame.

Every change is logged (log.jsonl event `repaired`) and nothing is deleted: damaged rows,
torn bytes and pages that cannot be placed go to set-aside/. Each step leaves the directory
in a state `verify` names, so a repair cut short is simply run again."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import tifffile

from tjump.errors import InputError
from tjump.storage.layout import (
    DAQ_CSV,
    FRAME_COLUMNS,
    FRAMES_CSV,
    FRAMES_DIR,
    LIVE_TRACES,
    LOG,
    MANIFEST,
    SET_ASIDE_DIR,
    TEXT_LOG,
    chunk_name,
)
from tjump.storage.scan import ChunkScan, Page, Row, format_row, read_table
from tjump.storage.verify import Verdict, read_log, verify
from tjump.storage.writer import DESCRIPTION_BYTES, write_atomic

_CYCLE_HEAD = ("heat", "ablation")  # the first half of a cycle whose cooling follows


def repair(path: Path) -> list[str]:
    """Repair `path` in place; returns what was done (empty if it was consistent)."""
    verdict = verify(path)
    if verdict.writer_alive:
        raise InputError(f"a tjump process is writing to {path} now; repair it when it ends")
    actions: list[str] = []
    actions += _cut_torn_lines(path)
    if verdict.legacy:
        actions += _upgrade_legacy(path, verdict)
        verdict = verify(path)
    actions += _repair_chunks(path, verdict)
    verdict = verify(path)
    actions += _repair_table(path, verdict)
    actions += _repair_manifest(path)
    if actions:
        _log_repair(path, actions)
    return actions


def _set_aside(path: Path) -> Path:
    folder = path / SET_ASIDE_DIR
    folder.mkdir(exist_ok=True)
    return folder


def _fsync_write(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _cut_torn_lines(path: Path) -> list[str]:
    """Append-only text files end with a whole line; a line a crash cut short is set aside."""
    actions = []
    for name in (DAQ_CSV, LOG, TEXT_LOG, LIVE_TRACES):
        target = path / name
        if not target.is_file():
            continue
        with target.open("rb+") as f:
            f.seek(0, 2)
            size = f.tell()
            if size == 0:
                continue
            f.seek(max(0, size - 65536))
            tail = f.read()
            if tail.endswith(b"\n"):
                continue
            cut = tail.rfind(b"\n")
            keep = size - len(tail) + cut + 1 if cut >= 0 else 0
            _fsync_write(_set_aside(path) / f"{name}.torn-line", tail[cut + 1 :])
            f.truncate(keep)
        actions.append(f"{name}: cut a last line left incomplete ({size - keep} bytes set aside)")
    return actions


def _upgrade_legacy(path: Path, verdict: Verdict) -> list[str]:
    """A table from before unique frame numbers: rows and pages matched by position, as that
    tjump wrote them; each frame gets its place as its number, its old number becomes
    `schedule_frame`, and each drop of the old number starts a new session."""
    rows = verdict.table.rows
    session, previous, upgraded = 0, -1, []
    for i, row in enumerate(rows):
        if row["frame"] <= previous:
            session += 1
        previous = row["frame"]
        upgraded.append({**row, "frame": i, "schedule_frame": row["frame"], "session": session})
    _write_table(path, upgraded)
    return [
        f"{FRAMES_CSV}: numbered {len(rows)} frames in the order they were taken "
        f"({session + 1} sessions); the old numbers are kept as schedule_frame"
    ]


def _repair_chunks(path: Path, verdict: Verdict) -> list[str]:
    actions: list[str] = []
    misnamed = [c for c in verdict.chunks if c.problem and not c.pages]
    actions += _rename_misnamed(path, misnamed)
    for chunk in verdict.chunks:
        if chunk in misnamed:
            continue
        orphans = [p for p in chunk.pages if p.row is None and p.frame not in verdict.rows]
        if not (chunk.torn or chunk.problem or orphans):
            continue
        keep = [p for p in chunk.pages if p not in orphans]
        actions += _rewrite_chunk(path, chunk, keep, orphans, verdict.rows)
    return actions


def _described_first(chunk: Path) -> int | None:
    """The frame number a chunk's first page records, if it records one."""
    try:
        with tifffile.TiffFile(chunk) as tif:
            first = json.loads(getattr(tif.pages[0], "description", ""))["frame"]
    except Exception:
        return None
    return first if isinstance(first, int) and first >= 0 else None


def _rename_misnamed(path: Path, chunks: list[ChunkScan]) -> list[str]:
    """Chunks whose first page records another frame number than their name: each renamed
    for what it holds. Files in each other's way are first parked under a name verify
    reports (not a frame number), so a repair cut short is finished by the next one."""
    actions = []
    parked: list[tuple[Path, Path, str]] = []
    for chunk in chunks:
        first = _described_first(chunk.path)
        if first is None:
            moved = _set_aside(path) / chunk.path.name
            chunk.path.replace(moved)
            actions.append(f"{FRAMES_DIR}/{chunk.path.name}: {chunk.problem}; set aside")
            continue
        target = chunk.path.with_name(chunk_name(first))
        if target.exists():
            parking = chunk.path.with_name(f"{target.stem}.parked.tif")
            chunk.path.replace(parking)
            parked.append((parking, target, chunk.path.name))
            continue
        chunk.path.replace(target)
        actions.append(
            f"{FRAMES_DIR}/{chunk.path.name}: renamed {target.name}, the frames it holds"
        )
    for parking, target, name in parked:
        if target.exists():
            parking.replace(_set_aside(path) / name)
            actions.append(f"{FRAMES_DIR}/{name}: {target.name} is taken; set aside")
        else:
            parking.replace(target)
            actions.append(f"{FRAMES_DIR}/{name}: renamed {target.name}, the frames it holds")
    return actions


def _rewrite_chunk(
    path: Path, chunk: ChunkScan, keep: list[Page], orphans: list[Page], rows: dict[int, Row]
) -> list[str]:
    """Write the pages to keep as chunks of consecutive frames, set the rest aside."""
    aside = _set_aside(path)
    actions = []
    with tifffile.TiffFile(chunk.path) as tif:
        images = {p.index: tif.pages[p.index].asarray() for p in [*keep, *orphans]}
    for page in orphans:
        tifffile.imwrite(aside / chunk_name(page.frame), images[page.index])
        actions.append(
            f"{FRAMES_DIR}/{chunk.path.name}: frame {page.frame} has neither row nor record; "
            f"its page is set aside as {SET_ASIDE_DIR}/{chunk_name(page.frame)}"
        )
    runs: list[list[Page]] = []
    for page in keep:
        if runs and page.frame == runs[-1][-1].frame + 1:
            runs[-1].append(page)
        else:
            runs.append([page])
    written = []
    for run in runs:
        target = chunk.path.with_name(chunk_name(run[0].frame))
        tmp = target.with_name(target.name + ".tmp")
        with tmp.open("wb") as f, tifffile.TiffWriter(f) as out:
            for page in run:
                row = page.row or rows.get(page.frame) or {"frame": page.frame}
                text = json.dumps({k: row[k] for k in FRAME_COLUMNS if k in row})
                description = text.ljust(DESCRIPTION_BYTES)
                out.write(
                    images[page.index], contiguous=False, metadata=None, description=description
                )
            f.flush()
            os.fsync(f.fileno())
        written.append((tmp, target))
    if chunk.torn:
        _keep_torn_bytes(chunk, aside)
        actions.append(
            f"{FRAMES_DIR}/{chunk.path.name}: {chunk.torn} cut (bytes kept in {SET_ASIDE_DIR}/); "
            f"{len(keep)} complete pages kept"
        )
    if chunk.problem:
        actions.append(f"{chunk.problem}: the pages that follow it are set aside")
        chunk.path.replace(aside / (chunk.path.name + ".damaged"))
    for tmp, target in written:
        tmp.replace(target)
    if chunk.path.exists() and chunk.path not in [t for _, t in written]:
        chunk.path.replace(aside / (chunk.path.name + ".original"))
    return actions


def _keep_torn_bytes(chunk: ChunkScan, aside: Path) -> None:
    """The bytes after the last complete page, so nothing the camera sent is deleted."""
    end = 0
    if chunk.pages:
        with tifffile.TiffFile(chunk.path) as tif:
            last = tif.pages[chunk.pages[-1].index]
            end = int(last.dataoffsets[-1] + last.databytecounts[-1])
    with chunk.path.open("rb") as f:
        f.seek(end)
        _fsync_write(aside / f"{chunk.path.name}.torn-{end}", f.read())


def _repair_table(path: Path, verdict: Verdict) -> list[str]:
    """frames.csv rebuilt from what is sound: one row per frame, in frame order, each page's
    row (from its own record where the table lost it), rows without a page marked."""
    actions: list[str] = []
    table = verdict.table
    rows: dict[int, Row] = {}
    aside_lines: list[str] = []
    disagree = set(verdict.disagree)
    for row, values, line in zip(table.rows, table.text_rows, table.lines, strict=True):
        frame = row["frame"]
        if frame in rows or frame in disagree:
            aside_lines.append(f"{line}," + ",".join(values.values()))
            continue
        rows[frame] = dict(row)
    for frame in verdict.disagree:
        page = verdict.pages[frame]
        if page.row is not None:
            rows[frame] = dict(page.row)
    if verdict.disagree:
        actions.append(
            f"{FRAMES_CSV}: {len(verdict.disagree)} rows that disagreed with their page's own "
            "record replaced by it (old rows set aside)"
        )
    if verdict.duplicates:
        actions.append(
            f"{FRAMES_CSV}: {len(verdict.duplicates)} frame numbers held twice; the second "
            "rows set aside"
        )
    for line, what in table.bad:
        aside_lines.append(f"{line},# {what}")
    if table.bad:
        actions.append(f"{FRAMES_CSV}: {len(table.bad)} damaged lines set aside")
    recovered = 0
    for frame, page in verdict.pages.items():
        if frame not in rows and page.row is not None:
            rows[frame] = {**page.row, "missing": 0}
            recovered += 1
    if recovered:
        actions.append(f"{FRAMES_CSV}: {recovered} rows a crash lost rebuilt from their pages")
    missing = 0
    for frame, row in rows.items():
        has_page = frame in verdict.pages
        if row.get("missing", 0) != (0 if has_page else 1):
            row["missing"] = 0 if has_page else 1
            missing += not has_page
    if missing:
        actions.append(f"{FRAMES_CSV}: {missing} rows whose page was lost marked missing")
    marked = mark_interrupted(list(rows.values()), read_log(path))
    if marked:
        actions.append(f"{FRAMES_CSV}: {marked} frames of cycles the run did not finish marked")
    ordered = [rows[f] for f in sorted(rows)]
    if aside_lines:
        with (_set_aside(path) / "frames-rows.csv").open("a", encoding="utf-8") as f:
            f.write("\n".join(aside_lines) + "\n")
    changed = (
        bool(actions)
        or bool(aside_lines)
        or table.torn
        or verdict.out_of_order
        or table.header != list(FRAME_COLUMNS)
    )
    if changed:
        _write_table(path, ordered)
        if table.torn:
            actions.append(f"{FRAMES_CSV}: {table.torn}; cut")
        if verdict.out_of_order and not verdict.duplicates:
            actions.append(f"{FRAMES_CSV}: rows put back in frame order")
        if table.header != list(FRAME_COLUMNS) and not actions:
            actions.append(f"{FRAMES_CSV}: header brought up to date")
    return actions


def mark_interrupted(rows: Iterable[Row], log: list[dict[str, Any]]) -> int:
    """Mark the frames of each session's unfinished cycle (a segment the log never saw
    finish in that session, and the heating whose cooling it was); returns how many
    marks changed."""
    rows = list(rows)
    finished: set[tuple[int, int]] = set()
    session = 0
    for event in log:
        if event.get("event") == "run_resumed":
            session += 1
        elif event.get("event") == "segment_finished":
            finished.add((session, event.get("segment", -1)))
    kinds = {(r.get("session", 0), r["segment"]): r["kind"] for r in rows}
    cut: set[tuple[int, int]] = set()
    for key, kind in kinds.items():
        if key in finished:
            continue
        cut.add(key)
        head = (key[0], key[1] - 1)
        if kind == "cool" and kinds.get(head) in _CYCLE_HEAD:
            cut.add(head)
    changed = 0
    for row in rows:
        flag = int((row.get("session", 0), row["segment"]) in cut)
        if row.get("interrupted", 0) != flag:
            row["interrupted"] = flag
            changed += 1
    return changed


def mark_frames(path: Path, frames: set[int]) -> int:
    """Mark the rows of `frames` interrupted (a cycle a suspension cut, then done again in
    the same session); returns how many marks changed."""
    return _mark_interrupted(path, "frame", frames)


def mark_segments(path: Path, segments: set[int]) -> int:
    """Mark every row of `segments` interrupted (a resume is about to do them again);
    returns how many marks changed."""
    return _mark_interrupted(path, "segment", segments)


def _mark_interrupted(path: Path, column: str, values: set[int]) -> int:
    table = read_table(path / FRAMES_CSV)
    changed = 0
    for row in table.rows:
        if row[column] in values and not row.get("interrupted"):
            row["interrupted"] = 1
            changed += 1
    if changed:
        _write_table(path, table.rows)
    return changed


def _write_table(path: Path, rows: list[Row]) -> None:
    buffer = io.StringIO()
    out = csv.writer(buffer)
    out.writerow(FRAME_COLUMNS)
    for row in rows:
        out.writerow(format_row(row))
    write_atomic(path / FRAMES_CSV, buffer.getvalue())


def _repair_manifest(path: Path) -> list[str]:
    manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    verdict = verify(path)
    frames = len(verdict.pages)
    changes: dict[str, Any] = {}
    if manifest.get("status") == "running":
        changes["status"] = "interrupted"
    if manifest.get("frames") != frames:
        changes["frames"] = frames
    if not changes:
        return []
    write_atomic(path / MANIFEST, json.dumps({**manifest, **changes}, indent=2) + "\n")
    told = ", ".join(f"{k} {manifest.get(k)} -> {v}" for k, v in changes.items())
    return [f"{MANIFEST}: {told}"]


def _log_repair(path: Path, actions: list[str]) -> None:
    with (path / LOG).open("a", encoding="utf-8") as f:
        f.write(json.dumps({"event": "repaired", "wall_time": time.time(), "actions": actions}))
        f.write("\n")
    with (path / TEXT_LOG).open("a", encoding="utf-8") as f:
        f.writelines(f"repaired: {a}\n" for a in actions)
