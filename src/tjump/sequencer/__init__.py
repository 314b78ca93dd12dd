"""Running protocols on rigs: a plan (checked before any device is touched), a runner
that drives an engine and feeds sinks, and resuming a run cut short."""

from tjump.sequencer.events import Progress, RunEvents, RunResult
from tjump.sequencer.launch import make_runner, open_run, run_plan, run_protocol
from tjump.sequencer.plan import DEFAULT_RIG, RunPlan, default_output, plan_run
from tjump.sequencer.resume import ResumeResult, ResumeSession, open_resume, resume_run
from tjump.sequencer.runner import Decision, RunHandle, Runner, RunPolicy
from tjump.sequencer.states import FinishReason, RunState

__all__ = [
    "DEFAULT_RIG",
    "Decision",
    "FinishReason",
    "Progress",
    "ResumeResult",
    "ResumeSession",
    "RunEvents",
    "RunHandle",
    "RunPlan",
    "RunPolicy",
    "RunResult",
    "RunState",
    "Runner",
    "default_output",
    "make_runner",
    "open_resume",
    "open_run",
    "plan_run",
    "resume_run",
    "run_plan",
    "run_protocol",
]
