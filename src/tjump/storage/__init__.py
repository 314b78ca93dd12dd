"""The run directory: written as frames arrive, readable after a crash."""

from tjump.storage.layout import FRAME_COLUMNS, FrameRecord
from tjump.storage.reader import RunDirectory
from tjump.storage.writer import RunWriter

__all__ = ["FRAME_COLUMNS", "FrameRecord", "RunDirectory", "RunWriter"]
