"""Arm and make-safe times of the Rigol driver over a real socket (pyvisa-py, loopback),
against the simulated DG1000Z served with its per-answer latency.

Baseline, measured in the same run on the same server: the message sequence the driver
sent before it joined commands (each setting its own write, then `:SYST:ERR?`, then a
readback; Nagle left on). After: the driver as it is.

    python scripts/bench_arm.py [--repeats 20] [--latency-ms 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import pyvisa

from tjump.clock import VirtualClock
from tjump.devices.rigol import RigolDG1000Z
from tjump.devices.visa import resource_manager
from tjump.sim.rigol import SimRigolDG1000Z
from tjump.sim.server import ScpiSocketServer

LEVEL, WIDTH = 1.0, 2.0
ERR = ":SYST:ERR?"


def legacy_arm() -> list[str]:
    """The 25 messages the driver sent to arm one pulse before this change."""
    freq = f"{1 / (WIDTH * 1.01):.9g}"
    return [
        ":OUTP1 OFF", ERR, ":OUTP1?",
        f":SOUR1:APPL:PULS {freq},{LEVEL:.6g},{LEVEL / 2:.7g},0", ERR,
        f":SOUR1:FUNC:PULS:WIDT {WIDTH:.9g}", ERR,
        ":SOUR1:BURS:MODE TRIG", ERR,
        ":SOUR1:BURS:NCYC 1", ERR,
        ":SOUR1:BURS:TRIG:SOUR EXT", ERR,
        ":SOUR1:BURS:TRIG:SLOP POS", ERR,
        ":SOUR1:BURS:IDLE BOTTOM", ERR, ":SOUR1:BURS:IDLE?",
        ":SOUR1:BURS ON", ERR, ":SOUR1:BURS?",
        ":SOUR1:FUNC:PULS:WIDT?",
        ":OUTP1 ON", ERR, ":OUTP1?",
    ]  # fmt: skip


def legacy_make_safe() -> list[str]:
    """The 12 messages of the heater's make-safe (burst off, 0 V, off, verify) before."""
    return [
        ":SOUR1:BURS OFF", ERR, ":SOUR1:BURS?",
        ":SOUR1:APPL:DC DEF,DEF,0", ERR, ":SOUR1:VOLT:OFFS?",
        ":OUTP1 OFF", ERR, ":OUTP1?",
        ":SOUR1:FUNC?", ":SOUR1:VOLT:OFFS?", ":OUTP1?",
    ]  # fmt: skip


def replay(res: pyvisa.resources.MessageBasedResource, messages: list[str]) -> None:
    for message in messages:
        if message.endswith("?"):
            res.query(message)
        else:
            res.write(message)


def median_ms(action: Callable[[], None], before: Callable[[], None], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        before()
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=2.0)
    args = parser.parse_args()
    model = SimRigolDG1000Z(VirtualClock())
    with ScpiSocketServer(model, latency_s=args.latency_ms / 1e3, lock=model.lock) as server:
        res = resource_manager("@py").open_resource(
            server.resource, read_termination="\n", write_termination="\n"
        )
        assert isinstance(res, pyvisa.resources.MessageBasedResource)
        old_arm = median_ms(lambda: replay(res, legacy_arm()), lambda: None, args.repeats)
        old_safe = median_ms(
            lambda: replay(res, legacy_make_safe()),
            lambda: replay(res, legacy_arm()),
            args.repeats,
        )
        res.close()
        gen = RigolDG1000Z(server.resource, "@py")

        def make_safe() -> None:  # what the heater facade does
            gen.set_dc(0.0)
            gen.set_output(False)
            gen.dc_level()
            gen.output_enabled()

        new_arm = median_ms(lambda: gen.arm_pulse(LEVEL, WIDTH), lambda: None, args.repeats)
        trips = gen.session.round_trips
        gen.arm_pulse(LEVEL, WIDTH)
        arm_trips = gen.session.round_trips - trips
        new_safe = median_ms(make_safe, lambda: gen.arm_pulse(LEVEL, WIDTH), args.repeats)
        gen.close()
    print(f"simulated DG1000Z on a loopback socket, {args.latency_ms:g} ms per answer, "
          f"median of {args.repeats}")  # fmt: skip
    print(f"{'':12}{'before':>12}{'after':>12}")
    print(f"{'arm pulse':12}{old_arm:>9.1f} ms{new_arm:>9.1f} ms   ({arm_trips} round trips)")
    print(f"{'make safe':12}{old_safe:>9.1f} ms{new_safe:>9.1f} ms")


if __name__ == "__main__":
    main()
