"""Reading a CSV table (frames.csv, or another program's) as text columns by header name."""

from __future__ import annotations

import csv
from pathlib import Path

from tjump.errors import InputError


def read_columns(path: Path) -> dict[str, list[str]]:
    """Every column of `path` by its (stripped) header name, as text; `InputError` naming
    the file and line for an empty, unreadable or ragged table."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                raise InputError(f"{path} is empty")
            header = [h.strip() for h in header]
            columns: dict[str, list[str]] = {h: [] for h in header}
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != len(header):
                    raise InputError(
                        f"{path} line {line} has {len(row)} fields, the header has {len(header)}"
                    )
                for name, value in zip(header, row, strict=True):
                    columns[name].append(value)
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path} cannot be read: {e}") from e
    return columns
