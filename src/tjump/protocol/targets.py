"""The closed-loop targets a user may change just before a run (the GUI's run control):
read from a protocol, written back into it and validated by the protocol's own schema.

A target is edited as text, keyed by its place in a series step (`adaptive_hold.*`,
`adaptive_cool.*`, `adaptive_cycles.*`) or in the protocol (`suspend.*`); an empty text
turns its group off (no adaptive hold, cool or series, no suspender). Series targets apply to every
series step of the protocol.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tjump.files import validate
from tjump.protocol.schema import Protocol, RepeatStep, SeriesStep

HOLD, COOL, CYCLES, SUSPEND = "adaptive_hold", "adaptive_cool", "adaptive_cycles", "suspend"
TARGETS = (
    f"{HOLD}.end_when_switched",
    f"{HOLD}.min_hold_s",
    f"{COOL}.film_within",
    f"{COOL}.min_cool_s",
    f"{CYCLES}.target_relative_precision",
    f"{CYCLES}.min_cycles",
    f"{SUSPEND}.band_K",
)


def _series(steps: list[Any]) -> Iterator[Any]:
    for step in steps:
        if isinstance(step, SeriesStep) or (isinstance(step, dict) and step["kind"] == "series"):
            yield step
        elif isinstance(step, RepeatStep):
            yield from _series(step.steps)
        elif isinstance(step, dict) and step["kind"] == "repeat":
            yield from _series(step["steps"])


def targets_of(protocol: Protocol) -> dict[str, str]:
    """Each target's value in `protocol` as text ("" where it is off): the series
    targets of the first series step that has them."""
    found = dict.fromkeys(TARGETS, "")
    for step in _series(protocol.steps):
        for group in (HOLD, COOL, CYCLES):
            rule = getattr(step, group)
            if rule is None or any(found[t] for t in TARGETS if t.startswith(group)):
                continue
            for target in (t for t in TARGETS if t.startswith(group)):
                found[target] = f"{getattr(rule, target.split('.')[1]):g}"
    if protocol.suspend is not None:
        found[f"{SUSPEND}.band_K"] = f"{protocol.suspend.band_K:g}"
    return found


def _set(rule: dict[str, Any] | None, values: Mapping[str, str], group: str) -> Any:
    """A group's fields with the texts put in (None: the group off)."""
    mine = {t.split(".")[1]: values[t].strip() for t in TARGETS if t.startswith(group)}
    if not any(mine.values()):
        return None
    rule = dict(rule or {})
    for name, text in mine.items():
        if text:
            rule[name] = text
        else:  # left empty: the schema names it as missing
            rule.pop(name, None)
    return rule


def with_targets(protocol: Protocol, values: Mapping[str, str], source: str) -> Protocol:
    """`protocol` with the targets in `values` (text as typed, keyed as `TARGETS`),
    validated by the schema: raises `InputError` naming each bad field."""
    data = protocol.model_dump(mode="json", exclude_none=True)
    for step in _series(data["steps"]):
        for group in (HOLD, COOL, CYCLES):
            rule = _set(step.get(group), values, group)
            if rule is None:
                step.pop(group, None)
            else:
                step[group] = rule
    suspend = _set(data.get(SUSPEND), values, SUSPEND)
    if suspend is None:
        data.pop(SUSPEND, None)
    else:
        data[SUSPEND] = suspend
    return validate(Protocol, data, source)
