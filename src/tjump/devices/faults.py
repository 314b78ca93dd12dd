"""Named instrument faults: each says which device, which command and what to do."""

from __future__ import annotations

from tjump.errors import DeviceError, LimitError


class InstrumentFault(DeviceError):
    """An instrument fault tied to the command that revealed it."""

    def __init__(self, device: str, command: str, message: str, hint: str = "") -> None:
        self.command = command
        where = f" [{command}]" if command else ""
        super().__init__(device, f"{message}{where}", hint)


class VisaLibraryMissing(InstrumentFault):
    """No VISA library could be loaded for the instrument's transport."""


class ResourceNotFound(InstrumentFault):
    """The VISA resource named in the rig file does not exist or cannot be opened."""


class NoAnswer(InstrumentFault):
    """The instrument opened but never answered its identification query."""


class WrongInstrument(InstrumentFault):
    """`*IDN?` names another maker or model than the rig file expects."""


class InstrumentError(InstrumentFault):
    """The instrument's error queue reported a non-zero code after a command."""


class ReadbackMismatch(InstrumentFault):
    """The instrument reports another value than the one just set."""


class VisaTimeout(InstrumentFault):
    """A query got no answer within the VISA timeout during operation."""


class ConnectionLost(InstrumentFault):
    """The connection to the instrument was reset or closed (a socket, a USB cable)."""


class UnknownAnswer(InstrumentFault):
    """An answer that is none of the forms the instrument documents: the state it would
    have told is unknown (never taken as safe)."""


class VisaIOFault(InstrumentFault):
    """Any other VISA input/output failure."""


class DaqOverflow(InstrumentFault):
    """The DAQ's input buffer overflowed: samples were lost."""


class DroppedFrames(InstrumentFault):
    """The camera delivered fewer frames than the DAQ sent triggers."""


class DriverLimitError(LimitError):
    """A driver refused a value beyond the instrument's or the rig's limit; nothing was sent."""

    def __init__(self, device: str, command: str, message: str) -> None:
        self.command = command
        super().__init__(device, f"{message}; not sent [{command}]", "lower the value")
