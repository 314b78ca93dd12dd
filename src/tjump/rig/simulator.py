"""The one seam where a simulator plugs into the lab's rig code.

Lab code never imports the simulator. A rig file of kind `simulated` is read and built
through the `Simulator` a front end provided (the `tjump` command, the GUI, tests and
scripts call `tjump.sim.rig.install()`); the provider is called only when such a file is
read, so a lab rig never loads the simulator at all."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from tjump.errors import InputError

if TYPE_CHECKING:
    from tjump.rig.build import Rig
    from tjump.rig.config import RigConfig


class Simulator(Protocol):
    """What a simulator gives the lab's rig code."""

    @property
    def config_model(self) -> type[RigConfig]:
        """The rig file's model for kind `simulated`: the lab's, plus the `simulation`
        section and the checks only the simulator can make."""
        ...

    def build(self, config: RigConfig, seed: int | None) -> Rig:
        """The rig assembled from the lab's drivers over the simulated instruments."""
        ...


_provider: Callable[[], Simulator] | None = None


def provide_simulator(provider: Callable[[], Simulator] | None) -> None:
    """Let simulated rig files be read and built, through `provider()` (None: no more)."""
    global _provider
    _provider = provider


def simulator(where: str) -> Simulator:
    """The simulator provided, or an `InputError` naming `where` it was needed."""
    if _provider is None:
        raise InputError(
            f"{where} is a simulated rig, and no simulator is installed "
            "(from Python: call tjump.sim.rig.install() first)"
        )
    return _provider()
