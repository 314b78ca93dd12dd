"""decisions.csv in the run directory: every closed-loop decision, one row each, flushed
as it is made (docs/run-directory.md, "Closed-loop decisions")."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from tjump.errors import StorageError

DECISIONS_CSV = "decisions.csv"
DECISION_COLUMNS = ("time_s", "decision", "segment", "cycle", "reason")


class DecisionTable:
    """Appends decisions to a run's decisions.csv."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / DECISIONS_CSV
        self._file: IO[str] | None = None

    def add(self, fields: Mapping[str, object]) -> None:
        """One decision: its DECISION_COLUMNS."""
        try:
            if self._file is None:
                new = not self.path.exists()
                self._file = self.path.open("a", newline="", encoding="utf-8")
                if new:
                    csv.writer(self._file).writerow(DECISION_COLUMNS)
            csv.writer(self._file).writerow([fields[c] for c in DECISION_COLUMNS])
            self._file.flush()
        except OSError as e:
            raise StorageError(f"cannot write {self.path}: {e}") from e

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_decisions(run_dir: Path) -> list[dict[str, str]]:
    """The whole rows of a run's decisions.csv (none without one; a line a crash cut
    short is left out)."""
    path = run_dir / DECISIONS_CSV
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return [row for row in csv.DictReader(f) if all(row.get(c) for c in DECISION_COLUMNS)]
