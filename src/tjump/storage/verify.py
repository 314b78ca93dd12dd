"""`verify`: what a run directory holds, and whether its frames and rows agree.

Frames and rows are joined by frame number, never by position. A run is consistent when
every page has its row (and agrees with it), every row has its page or is marked missing,
no page is torn, no frame number repeats and every chunk holds the frames its name says."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from tjump.errors import InputError
from tjump.storage.layout import (
    DAQ_CSV,
    FRAME_COLUMNS,
    FRAMES_CSV,
    FRAMES_DIR,
    LOG,
    MANIFEST,
    SET_ASIDE_DIR,
    STATUSES,
)
from tjump.storage.lock import writer_alive
from tjump.storage.scan import ChunkScan, Page, Row, Table, read_table, scan_chunks

# what a page's own record and its row must agree on (a repair may change the marks)
_COMPARED = tuple(c for c in FRAME_COLUMNS if c not in ("interrupted", "missing"))


@dataclass
class Verdict:
    """Everything `tjump verify` reports about one run directory."""

    path: Path
    manifest: dict[str, Any]
    writer_alive: bool
    chunks: list[ChunkScan]
    table: Table
    pages: dict[int, Page]  # frame number -> its page
    rows: dict[int, Row]  # frame number -> its row (first of duplicates)
    duplicates: list[int]
    out_of_order: int  # rows whose frame number is not above the row before
    disagree: list[int]  # frames whose row and page description differ
    orphans: list[int]  # pages without a row
    unmarked_missing: list[int]  # rows without a page, not marked missing
    heater: str
    legacy: bool  # frames.csv of a tjump before frame numbers were unique
    set_aside: int
    problems: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        status = str(self.manifest.get("status", "?"))
        if status == "running" and not self.writer_alive:
            return "running (no process writes it: cut short)"
        return status

    @property
    def consistent(self) -> bool:
        return not self.problems

    @property
    def next_frame(self) -> int:
        """The number the next frame taken for this run gets."""
        numbers = [*self.pages, *self.rows, *self._set_aside_frames()]
        return max(numbers) + 1 if numbers else 0

    def _set_aside_frames(self) -> list[int]:
        folder = self.path / SET_ASIDE_DIR
        return [int(p.stem) for p in folder.glob("*.tif") if p.stem.isdigit()]

    def gaps(self) -> list[tuple[int, int]]:
        """Frame-number ranges [a, b] with neither page nor row."""
        known = sorted(set(self.pages) | set(self.rows))
        out = []
        for a, b in pairwise(known):
            if b > a + 1:
                out.append((a + 1, b - 1))
        return out

    def report(self) -> list[str]:
        """The lines `tjump verify` prints."""
        rows = self.table.rows
        missing = sum(1 for r in rows if r.get("missing"))
        interrupted = sum(1 for r in rows if r.get("interrupted"))
        sessions = {r.get("session", 0) for r in rows}
        planned = self.manifest.get("frames_planned", "?")
        gaps = self.gaps()
        lines = [
            f"run {self.path}",
            f"  status: {self.status}",
            f"  frames: {len(self.pages)} readable pages in {len(self.chunks)} files, "
            f"{len(rows)} rows in {FRAMES_CSV} ({planned} planned); "
            f"{len(sessions)} session(s)",
            f"  marked: {missing} missing (page lost), {interrupted} in interrupted cycles",
            "  gaps: "
            + (", ".join(f"{a}-{b}" if b > a else str(a) for a, b in gaps[:10]) or "none")
            + (f" and {len(gaps) - 10} more" if len(gaps) > 10 else ""),
            f"  torn pages: {sum(1 for c in self.chunks if c.torn)}",
            f"  heater: {self.heater}",
        ]
        if self.set_aside:
            lines.append(f"  set aside by repairs: {self.set_aside} file(s) in {SET_ASIDE_DIR}/")
        if self.problems:
            lines.append("  not consistent:")
            lines += [f"    - {p}" for p in self.problems]
        else:
            lines.append("  consistent: every page has its row, every row its page or a mark")
        return lines


def read_manifest(path: Path) -> dict[str, Any]:
    """manifest.json as a mapping with the fields every reader uses checked."""
    where = path / MANIFEST
    if not where.is_file():
        raise InputError(f"{path} is not a tjump run directory (no {MANIFEST})")
    try:
        data = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{where} cannot be read: {e}") from e
    if not isinstance(data, dict):
        raise InputError(f"{where} must hold a JSON object, not {type(data).__name__}")
    status = data.get("status")
    if status not in STATUSES:
        raise InputError(f"{where}: status is {status!r}, not one of {', '.join(STATUSES)}")
    return data


def verify(path: Path) -> Verdict:
    """Look at everything in a run directory; change nothing."""
    manifest = read_manifest(path)
    chunks = scan_chunks(path)
    table = read_table(path / FRAMES_CSV)
    problems: list[str] = []
    if not (path / FRAMES_CSV).is_file():
        problems.append(f"{FRAMES_CSV} is missing")
    pages: dict[int, Page] = {}
    for chunk in chunks:
        if chunk.problem:
            problems.append(chunk.problem)
        if chunk.torn:
            problems.append(f"{FRAMES_DIR}/{chunk.path.name}: {chunk.torn}")
        for page in chunk.pages:
            if page.frame in pages:
                problems.append(
                    f"frame {page.frame} is in both {FRAMES_DIR}/{pages[page.frame].chunk.name} "
                    f"and {FRAMES_DIR}/{chunk.path.name}"
                )
                continue
            pages[page.frame] = page
    shapes = {c.shape for c in chunks if c.shape is not None}
    if len(shapes) > 1:
        problems.append(f"frame files differ in size: {sorted(shapes)}")
    if table.torn:
        problems.append(f"{FRAMES_CSV}: {table.torn}")
    for line, what in table.bad[:5]:
        problems.append(f"{FRAMES_CSV} line {line}: {what}")
    if len(table.bad) > 5:
        problems.append(f"{FRAMES_CSV}: {len(table.bad) - 5} more damaged lines")
    rows: dict[int, Row] = {}
    counts = Counter(r["frame"] for r in table.rows)
    duplicates = sorted(f for f, n in counts.items() if n > 1)
    out_of_order = 0
    previous = -1
    for row in table.rows:
        rows.setdefault(row["frame"], row)
        out_of_order += row["frame"] <= previous
        previous = row["frame"]
    legacy = bool(table.header) and "schedule_frame" not in table.header
    if legacy:
        problems.append(
            f"{FRAMES_CSV} is from a tjump that numbered frames by their place in the "
            "schedule (no schedule_frame column)"
        )
    if duplicates:
        problems.append(
            f"{FRAMES_CSV}: {len(duplicates)} frame numbers appear more than once "
            f"(first: {duplicates[0]})"
        )
    if out_of_order - sum(counts[f] - 1 for f in duplicates) > 0:
        problems.append(f"{FRAMES_CSV}: rows are not in frame order")
    disagree = [
        f
        for f, page in pages.items()
        if page.row is not None and f in rows and not _agree(page.row, rows[f])
    ]
    if disagree:
        first = disagree[0]
        page_row = pages[first].row or {}
        column = next(c for c in _COMPARED if not _agree(page_row, rows[first], (c,)))
        problems.append(
            f"{FRAMES_CSV}: {len(disagree)} rows disagree with their page's own record in "
            f"{FRAMES_DIR}/ (first: frame {first}, {column} {rows[first].get(column)} in the "
            f"table, {page_row.get(column)} in the page)"
        )
    orphans = sorted(f for f in pages if f not in rows)
    if orphans:
        problems.append(
            f"{len(orphans)} pages in {FRAMES_DIR}/ have no row in {FRAMES_CSV} (first: frame "
            f"{orphans[0]})"
        )
    unmarked = sorted(f for f, r in rows.items() if f not in pages and not r.get("missing"))
    if unmarked:
        problems.append(
            f"{len(unmarked)} rows of {FRAMES_CSV} have no page in {FRAMES_DIR}/ and are not "
            f"marked missing (first: frame {unmarked[0]})"
        )
    marked = sorted(f for f, r in rows.items() if f in pages and r.get("missing"))
    if marked:
        problems.append(
            f"{len(marked)} rows of {FRAMES_CSV} are marked missing but have a page in "
            f"{FRAMES_DIR}/"
        )
    if manifest["status"] == "running" and not writer_alive(path):
        problems.append("the manifest says running, but no process writes the run (cut short)")
    return Verdict(
        path=path,
        manifest=manifest,
        writer_alive=writer_alive(path),
        chunks=chunks,
        table=table,
        pages=pages,
        rows=rows,
        duplicates=duplicates,
        out_of_order=out_of_order,
        disagree=disagree,
        orphans=orphans,
        unmarked_missing=unmarked,
        heater=heater_state(path),
        legacy=legacy,
        set_aside=sum(1 for _ in (path / SET_ASIDE_DIR).glob("*"))
        if (path / SET_ASIDE_DIR).is_dir()
        else 0,
        problems=problems,
    )


def _agree(page: Row, row: Row, columns: tuple[str, ...] = _COMPARED) -> bool:
    for name in columns:
        a, b = page.get(name), row.get(name)
        if isinstance(a, float) and isinstance(b, float):
            if a != a and b != b:  # both not known (NaN)
                continue
            if not abs(a - b) <= 1e-9 * max(1.0, abs(a)):
                return False
        elif a != b:
            return False
    return True


def heater_state(path: Path) -> str:
    """The heater's last recorded state: from the log, and the last DAQ sample."""
    state = "no record"
    for event in read_log(path):
        name = event.get("event")
        if name == "heater_safe":
            state = "made safe (0 V, output off, read back)"
        elif name == "heater_unsafe":
            state = f"NOT confirmed safe: {event.get('error', '')}"
        elif name == "segment_started":
            state = (
                f"last set for segment {event.get('segment')} ({event.get('kind')}, "
                f"{event.get('setpoint_K')} K, {event.get('drive_V')} V); never recorded safe "
                "after it"
            )
            if event.get("bounded_by_instrument"):
                state += " (a bounded pulse: the generator ends it by itself)"
    return state + _last_daq(path)


def _last_daq(path: Path) -> str:
    """', last DAQ sample: drive 0 V, current 0 A' from the end of daq.csv, if readable."""
    daq = path / DAQ_CSV
    try:
        with daq.open("rb") as f:
            header = f.readline().decode("utf-8", "replace").strip().split(",")
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 4096))
            lines = f.read().decode("utf-8", "replace").split("\n")
    except OSError:
        return ""
    complete = [line for line in lines[:-1] if line.count(",") == len(header) - 1]
    if not complete or "drive_V" not in header or "current_A" not in header:
        return ""
    values = complete[-1].split(",")
    try:
        drive = float(values[header.index("drive_V")])
        current = float(values[header.index("current_A")])
        t = float(values[header.index("time_s")])
    except (ValueError, IndexError):
        return ""
    return f"; last DAQ sample at {t:.3f} s: drive {drive:.4g} V, current {current:.4g} A"


def read_log(path: Path) -> list[dict[str, Any]]:
    """log.jsonl's events; a line a crash cut short (or damage) is skipped."""
    try:
        text = (path / LOG).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    events = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def require_consistent(path: Path, doing: str) -> Verdict:
    """The verdict on `path`, or one InputError saying what is wrong and what to do."""
    verdict = verify(path)
    if verdict.writer_alive:
        raise InputError(f"a tjump process is writing to {path} now; {doing} it when it ends")
    if not verdict.consistent:
        listed = "\n  ".join(verdict.problems)
        raise InputError(
            f"run {path} is not consistent, so tjump will not {doing} it:\n  {listed}\n"
            f"run 'tjump verify --repair {path}' first (it keeps every readable frame and "
            "logs what it changes)"
        )
    return verdict
