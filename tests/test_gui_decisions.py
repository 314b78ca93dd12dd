"""The decision log shows every closed-loop decision with its reason."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from tjump.gui.decisions import DecisionLog
from tjump.sequencer.decisions import DecisionKind, LiveDecision


def test_each_decision_is_a_row_with_its_reason(qtbot: QtBot) -> None:
    log = DecisionLog()
    qtbot.addWidget(log)
    log.add(LiveDecision(12.5, DecisionKind.HOLD_ENDED, "90% of 18 particles switched", 3, 1))
    log.add(LiveDecision(80.0, DecisionKind.SUSPENDED, "film at 392.0 K, +7.1 K", 5, 2))
    log.add(LiveDecision(90.0, DecisionKind.RESUMED, "resuming (1 of at most 3)", 5, 2))
    assert log.rowCount() == 3
    assert [log.item(r, 1).text() for r in range(3)] == ["hold ended", "suspended", "resumed"]
    assert log.item(1, 4).text() == "film at 392.0 K, +7.1 K"
    assert log.item(0, 0).text() == "12.5" and log.item(2, 3).text() == "2"
    assert log.counts[DecisionKind.SUSPENDED] == 1
    log.clear_run()
    assert log.rowCount() == 0 and log.counts[DecisionKind.SUSPENDED] == 0
