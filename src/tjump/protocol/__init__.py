"""Protocols: the schema, loading, checking against a rig, and the unrolled schedule."""

from tjump.protocol.checks import check_against_rig, load_protocol
from tjump.protocol.schedule import Schedule, Segment, build_schedule
from tjump.protocol.schema import Protocol

__all__ = [
    "Protocol",
    "Schedule",
    "Segment",
    "build_schedule",
    "check_against_rig",
    "load_protocol",
]
