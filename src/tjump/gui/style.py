"""Colours and table settings shared by the views."""

from __future__ import annotations

from qtpy import QtWidgets

_PALETTE = (
    (255, 200, 0),
    (90, 200, 255),
    (255, 90, 200),
    (120, 230, 120),
    (255, 130, 60),
    (180, 140, 255),
    (230, 230, 230),
    (0, 180, 170),
)


def colour(i: int) -> tuple[int, int, int]:
    """A distinct colour per particle id (or series)."""
    return _PALETTE[i % len(_PALETTE)]


def hide_row_numbers(table: QtWidgets.QTableWidget) -> None:
    header = table.verticalHeader()
    if header is not None:
        header.setVisible(False)


def stretch_last_column(table: QtWidgets.QTableWidget) -> None:
    header = table.horizontalHeader()
    if header is not None:
        header.setStretchLastSection(True)
