"""Running protocols on rigs."""

from tjump.sequencer.events import Progress, RunEvents
from tjump.sequencer.runner import RunPlan, plan_run, resume_run, run_plan, run_protocol
from tjump.sequencer.sequencer import RunResult, Sequencer

__all__ = [
    "Progress",
    "RunEvents",
    "RunPlan",
    "RunResult",
    "Sequencer",
    "plan_run",
    "resume_run",
    "run_plan",
    "run_protocol",
]
