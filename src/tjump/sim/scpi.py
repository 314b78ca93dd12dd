"""SCPI message parsing for instrument models: short and long forms, any case, numeric
suffixes, and an error queue as instruments keep one."""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Protocol

_TOKEN = re.compile(r"^([A-Za-z*]+[A-Za-z]*?)(\d*)$")

# SCPI error codes the models report
UNDEFINED_HEADER = (-113, "Undefined header")
DATA_OUT_OF_RANGE = (-222, "Data out of range")
ILLEGAL_PARAMETER = (-224, "Illegal parameter value")
SETTINGS_CONFLICT = (-221, "Settings conflict")
MISSING_PARAMETER = (-109, "Missing parameter")
TRIGGER_IGNORED = (-211, "Trigger ignored")
QUEUE_OVERFLOW = (-350, "Queue overflow")


class ScpiModel(Protocol):
    """An instrument model: one SCPI message in, its answer (or None) out."""

    def handle(self, message: str) -> str | None: ...


class ScpiError(Exception):
    """A command the instrument rejects; the model queues `code, message`."""

    def __init__(self, error: tuple[int, str]) -> None:
        self.code, self.text = error
        super().__init__(f"{self.code},{self.text}")


def _short(node: str) -> str:
    """Short form of a node written as SCPI does: capitals are the short form."""
    short = "".join(c for c in node if c.isupper() or c == "*")
    return short or node.upper()


@dataclass(frozen=True)
class Command:
    """One message: header nodes in short form, numeric suffixes, arguments."""

    nodes: tuple[str, ...]
    suffixes: tuple[int | None, ...]
    args: tuple[str, ...]
    query: bool


class Vocabulary:
    """The nodes an instrument knows, as `SOURce`, `APPLy`, ... (capitals = short form)."""

    def __init__(self, nodes: list[str]) -> None:
        self._to_short: dict[str, str] = {}
        for node in nodes:
            short = _short(node)
            self._to_short[short] = short
            self._to_short[node.upper()] = short

    def parse(self, message: str) -> Command:
        """Split `message` into nodes, suffixes and arguments; raise `ScpiError` for an
        unknown node, as the instrument would."""
        header, _, rest = message.strip().partition(" ")
        query = header.endswith("?")
        header = header.rstrip("?")
        nodes: list[str] = []
        suffixes: list[int | None] = []
        for token in header.lstrip(":").split(":"):
            match = _TOKEN.match(token)
            if match is None:
                raise ScpiError(UNDEFINED_HEADER)
            name, digits = match.groups()
            short = self._to_short.get(name.upper())
            if short is None:
                raise ScpiError(UNDEFINED_HEADER)
            nodes.append(short)
            suffixes.append(int(digits) if digits else None)
        args = tuple(a.strip() for a in rest.split(",")) if rest.strip() else ()
        return Command(tuple(nodes), tuple(suffixes), args, query)


class ErrorQueue:
    """First in, first out; `0,"No error"` when empty; overflow replaces the last entry."""

    def __init__(self, size: int = 20) -> None:
        self._queue: deque[tuple[int, str]] = deque()
        self._size = size

    def push(self, error: tuple[int, str]) -> None:
        if len(self._queue) >= self._size:
            self._queue.pop()
            error = QUEUE_OVERFLOW
        self._queue.append(error)

    def pop(self) -> str:
        code, text = self._queue.popleft() if self._queue else (0, "No error")
        return f'{code},"{text}"'

    def clear(self) -> None:
        self._queue.clear()


def number(arg: str, low: float, high: float, named: dict[str, float] | None = None) -> float:
    """A numeric argument, or MIN/MAX/DEF-style names; out of range raises -222."""
    key = arg.upper()
    if named and key in named:
        return named[key]
    try:
        value = float(arg)
    except ValueError as e:
        raise ScpiError(ILLEGAL_PARAMETER) from e
    if not low <= value <= high:
        raise ScpiError(DATA_OUT_OF_RANGE)
    return value


def choice(arg: str, options: list[str]) -> str:
    """A keyword argument in short or long form, returned in its short form."""
    vocab = {o.upper(): _short(o) for o in options} | {_short(o): _short(o) for o in options}
    try:
        return vocab[arg.upper()]
    except KeyError as e:
        raise ScpiError(ILLEGAL_PARAMETER) from e


def sci(value: float) -> str:
    """A number as SCPI instruments print it: 1.000000E+00."""
    return f"{value:.6E}"
