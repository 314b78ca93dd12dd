"""Errors that reach the user: each names what is wrong and, where it helps, what to do.

`InputError` covers bad files and values (exit code 2, no device touched);
`DeviceError` covers instrument faults during a run (exit code 1).
"""


class TjumpError(Exception):
    """Base of every error tjump reports to the user as one clear message."""

    exit_code = 1


class InputError(TjumpError):
    """A file or value given by the user is missing, malformed or beyond a limit."""

    exit_code = 2


class DeviceError(TjumpError):
    """An instrument did not do what it was asked."""

    def __init__(self, device: str, message: str, hint: str = "") -> None:
        self.device = device
        self.hint = hint
        text = f"{device}: {message}"
        if hint:
            text += f" ({hint})"
        super().__init__(text)


class CameraTimeout(DeviceError):
    """No frame arrived from the camera within the expected time."""


class LimitError(DeviceError):
    """A device was asked for a value beyond a rig limit; nothing was sent."""


class StorageError(TjumpError):
    """The run directory could not be written (disk full, removed, no permission)."""


class RunAborted(TjumpError):
    """The run was stopped on request (abort, Ctrl-C, SIGTERM)."""
