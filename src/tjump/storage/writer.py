"""Writing a run directory while the run goes on."""

from __future__ import annotations

import csv
import json
import os
import time
from io import TextIOWrapper
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tjump.devices.interfaces import DaqBlock
from tjump.errors import InputError, StorageError
from tjump.storage.layout import (
    DAQ_CSV,
    FRAME_COLUMNS,
    FRAMES_CSV,
    FRAMES_DIR,
    INPUT_FILES,
    LIVE_PARTICLES,
    LIVE_TRACES,
    LOG,
    MANIFEST,
    TEXT_LOG,
    FrameRecord,
    chunk_name,
)
from tjump.storage.lock import WriterLock
from tjump.storage.pages import PageWriter

_TRACE_BLOCK_ROWS = 100
DESCRIPTION_BYTES = 512
_DAQ_BLOCK_SAMPLES = 2000


def _csv_lines(table: NDArray[np.float64], fmt: list[str]) -> str:
    """`table`'s rows as CSV text, each value by its `fmt` (what np.savetxt writes, in a
    third of its time: one %-format per row of Python floats, not numpy scalars)."""
    line = ",".join(fmt) + "\n"
    return "".join([line % tuple(row) for row in table.tolist()])


def _readable(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` so that a crash leaves the old or the new file, never a
    mix: written to a temporary name, synced, renamed over."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


_ENCODE = json.JSONEncoder().encode  # json.dumps's own encoder, without its argument checks


def describe_page(row: tuple[object, ...]) -> str:
    """A page's description: its frames.csv row (`FrameRecord.row`) as JSON, so a page
    whose row a crash lost gets it back, and a reader can check that a page is the frame
    its file name says."""
    text = _ENCODE(dict(zip(FRAME_COLUMNS, row, strict=True)))
    return text.ljust(DESCRIPTION_BYTES)  # one length: pages evenly spaced, memory-mappable


class RunWriter:
    """Frames go to disk one TIFF page each, flushed as they come, each page before its
    row, so a crash loses at most the frame being written and leaves a state `verify`
    names; the manifest always tells the run's status.

    Frames are numbered in the order they are taken, unique in the run (a resumed run goes
    on from `next_frame`); their place in the schedule is the row's `schedule_frame`."""

    def __init__(
        self,
        directory: Path,
        manifest: dict[str, Any],
        daq_channels: tuple[str, ...],
        daq_rate_hz: float,
        chunk_frames: int = 1000,
        resume: bool = False,
        next_frame: int = 0,
    ) -> None:
        """Create a run directory, or with `resume` reopen an interrupted one to append
        frames numbered from `next_frame`."""
        if not resume and directory.exists():
            others = [p.name for p in directory.iterdir() if p.name not in INPUT_FILES]
            if others:
                raise InputError(f"output folder {directory} already holds files; choose another")
        self.directory = directory
        self.chunk_frames = chunk_frames
        self.daq_rate_hz = daq_rate_hz
        self.sample_offset = 0  # DAQ samples of earlier sessions (a resumed run)
        try:
            (directory / FRAMES_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot create the run directory {directory}: {e}") from e
        self._lock = WriterLock(directory)
        self.session = len(manifest.get("sessions", [])) if resume else 0
        self.next_frame = next_frame
        self.session_frames = 0  # frames written by this session
        if resume:
            self.manifest = {**manifest, "status": "running"}
            self.frames_written = int(manifest.get("frames", 0))
        else:
            self.manifest = {
                **manifest,
                "status": "running",
                "frames": 0,
                "chunk_frames": chunk_frames,
            }
            self.frames_written = 0
        self._write_manifest()  # first: from here on the folder is a run directory
        mode = "a" if resume else "w"
        self._frames_csv = (directory / FRAMES_CSV).open(mode, newline="", encoding="utf-8")
        self._frames_out = csv.writer(self._frames_csv)
        if self._frames_csv.tell() == 0:
            self._frames_out.writerow(FRAME_COLUMNS)
            self._frames_csv.flush()
        self._daq_csv = (directory / DAQ_CSV).open(mode, newline="", encoding="utf-8")
        if self._daq_csv.tell() == 0:
            csv.writer(self._daq_csv).writerow(["sample", "time_s", *daq_channels])
            self._daq_csv.flush()
        self._log: TextIOWrapper = (directory / LOG).open("a", encoding="utf-8")
        self._text_log: TextIOWrapper = (directory / TEXT_LOG).open("a", encoding="utf-8")
        self._traces: TextIOWrapper | None = None
        if resume and (directory / LIVE_TRACES).is_file():  # the first session's particles
            self._traces = (directory / LIVE_TRACES).open("a", encoding="utf-8")
        self._pending_traces: list[NDArray[np.float64]] = []
        self._pending_rows = 0
        self._pending_daq: list[NDArray[np.float64]] = []
        self._pending_samples = 0
        self._chunk_fd: int | None = None
        self._pages: PageWriter | None = None
        self._chunk_left = 0

    def _write_manifest(self) -> None:
        write_atomic(self.directory / MANIFEST, json.dumps(self.manifest, indent=2) + "\n")

    def update_manifest(self, **fields: Any) -> None:
        self.manifest.update(fields)
        self._write_manifest()

    def write_frame(self, image: NDArray[np.uint16], record: FrameRecord) -> None:
        """Append one frame (numbered `next_frame`) and its row; the page reaches the disk
        before the row, and both are there when this returns."""
        if record.frame != self.next_frame or record.session != self.session:
            raise ValueError(
                f"frame {record.frame} of session {record.session} written where frame "
                f"{self.next_frame} of session {self.session} is due"
            )
        try:
            if self._pages is None or self._chunk_left == 0 or not self._pages.fits():
                self._next_chunk(image.shape)
            assert self._pages is not None
            row = record.row()
            self._pages.write(image, describe_page(row))
            self._frames_out.writerow(row)
            self._frames_csv.flush()
        except OSError as e:
            raise StorageError(
                f"cannot write frame {record.frame} to {self.directory}: {e.strerror or e} "
                f"(frames before it are safe; free space, then 'tjump resume {self.directory}')"
            ) from e
        self.frames_written += 1
        self.session_frames += 1
        self.next_frame += 1
        self._chunk_left -= 1

    def _next_chunk(self, shape: tuple[int, ...]) -> None:
        """A new TIFF file, named by its first frame's number (a resumed run never writes
        into a file a crash may have cut short); also when the last one is full (4 GiB)."""
        if len(shape) != 2:
            raise ValueError(f"a frame is a 2-d image, not of shape {shape}")
        self._close_chunk()
        path = self.directory / FRAMES_DIR / chunk_name(self.next_frame)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        self._chunk_fd = os.open(path, flags, 0o666)  # never overwrite a frame
        self._pages = PageWriter(self._chunk_fd, (shape[0], shape[1]), DESCRIPTION_BYTES)
        self._chunk_left = self.chunk_frames

    def _sync(self) -> None:
        """Everything written so far onto the disk (pages, rows, samples, log, their folder
        entries), so that the final status never outlives the data it describes: a power
        cut after the run ended loses nothing."""
        if self._chunk_fd is not None:
            os.fsync(self._chunk_fd)
        for f in (self._frames_csv, self._daq_csv, self._log, self._text_log, self._traces):
            if f is not None and not f.closed:
                f.flush()
                os.fsync(f.fileno())
        for folder in (self.directory / FRAMES_DIR, self.directory):
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _close_chunk(self) -> None:
        self._pages = None
        if self._chunk_fd is not None:
            fd, self._chunk_fd = self._chunk_fd, None
            os.close(fd)

    def write_daq(self, block: DaqBlock) -> None:
        """Append DAQ samples; they reach the disk in blocks of a few seconds (and at
        every segment's end), since formatting them row by row costs more than a frame."""
        if not len(block.data):
            return
        index = np.arange(block.first_index, block.end_index) + self.sample_offset
        self._pending_daq.append(np.column_stack([index, index / self.daq_rate_hz, block.data]))
        self._pending_samples += len(block.data)
        if self._pending_samples >= _DAQ_BLOCK_SAMPLES:
            self.flush_daq()

    def flush_daq(self) -> None:
        """Write the DAQ samples held back."""
        if not self._pending_daq:
            return
        table = np.concatenate(self._pending_daq)
        self._daq_csv.write(_csv_lines(table, ["%d", "%.6f"] + ["%.6g"] * (table.shape[1] - 2)))
        self._daq_csv.flush()
        self._pending_daq.clear()
        self._pending_samples = 0

    def write_live_particles(
        self,
        x: NDArray[np.float64],
        y: NDArray[np.float64],
        peak: NDArray[np.float64],
        flags: NDArray[np.int64],
    ) -> None:
        """Save the particles found live; their traces follow in live-traces.csv."""
        table = np.column_stack([np.arange(len(x)), x, y, peak, flags])
        np.savetxt(
            self.directory / LIVE_PARTICLES,
            table,
            fmt=["%d", "%.3f", "%.3f", "%.1f", "%d"],
            delimiter=",",
            header="particle_id,x,y,peak,flags",
            comments="",
        )
        self._traces = (self.directory / LIVE_TRACES).open("w", encoding="utf-8")
        names = ",".join(f"p{i}" for i in range(len(x)))
        self._traces.write(f"frame,{names}\n" if names else "frame\n")

    def write_live_traces(self, first_frame: int, rows: NDArray[np.float64]) -> None:
        """Append live intensities, one row per frame from `first_frame` on. Rows are
        written in blocks (they can always be measured again from the frames)."""
        if self._traces is None:
            raise RuntimeError("write_live_particles must come before write_live_traces")
        frames = np.arange(first_frame, first_frame + len(rows))
        self._pending_traces.append(np.column_stack([frames, rows]))
        self._pending_rows += len(rows)
        if self._pending_rows >= _TRACE_BLOCK_ROWS:
            self._flush_traces()

    def _flush_traces(self) -> None:
        if self._traces is None or not self._pending_traces:
            return
        table = np.concatenate(self._pending_traces)
        self._traces.write(_csv_lines(table, ["%d"] + ["%.1f"] * (table.shape[1] - 1)))
        self._traces.flush()
        self._pending_traces.clear()
        self._pending_rows = 0

    def log(self, event: str, **fields: Any) -> None:
        """Append one event to log.jsonl, and a line for people to run.log."""
        now = time.time()
        self._log.write(json.dumps({"event": event, "wall_time": now, **fields}) + "\n")
        self._log.flush()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        details = " ".join(f"{k}={_readable(v)}" for k, v in fields.items())
        self._text_log.write(f"{stamp}  {event:<18} {details}".rstrip() + "\n")
        self._text_log.flush()

    def close(self, status: str, **fields: Any) -> None:
        """Finish every file and record the final status, as far as the disk allows:
        each step is tried even if one before it failed."""
        steps = [self._flush_traces, self.flush_daq, self._sync, self._close_chunk]
        files = (self._frames_csv, self._daq_csv, self._log, self._text_log, self._traces)
        steps += [f.close for f in files if f is not None]
        failures = []
        for step in steps:
            try:
                step()
            except OSError as e:
                failures.append(str(e))
        if failures:
            fields["close_errors"] = failures
        try:
            self.update_manifest(status=status, frames=self.frames_written, **fields)
        except OSError as e:
            raise StorageError(
                f"cannot record the run's status in {self.directory}: {e} (once there is room, "
                f"'tjump verify --repair {self.directory}' records it)"
            ) from e
        finally:
            self._lock.release()
