"""What a device can say about itself for `tjump devices check`."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Describable(Protocol):
    def describe(self) -> str:
        """Model, settings and state in one line, as read from the device."""
        ...
