"""Preemption: a signal (Slurm's preemption or time-limit warning as submitit sets it up,
SIGUSR2; SIGTERM from a local launcher or scheduler) asks the training loop to stop at
the next iteration boundary, after a checkpoint, instead of dying mid-step.

``catching()`` installs the handlers for the duration of a job (main thread only; they
only set a flag), the trainer polls ``requested()`` after every step and raises
``Preempted`` once the checkpoint is written; whoever launched the job then requeues it
(``bench.launch``) or tells the user to run the same command again (``bench.cli``).
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator, Optional

#: the signals that mean "stop soon, you will be resumed"
SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR2", None))
                if s is not None)

_requested: Optional[int] = None


class Preempted(Exception):
    """Training stopped on a signal after writing a checkpoint; resuming continues it."""

    def __init__(self, signum: int, global_iter: int, checkpoint: Optional[str]):
        self.signum, self.global_iter, self.checkpoint = int(signum), int(global_iter), checkpoint
        super().__init__(f"stopped by {signal.Signals(self.signum).name} at iteration "
                         f"{self.global_iter}, checkpoint {checkpoint}")


def requested() -> Optional[int]:
    """The signal number received since ``catching()`` began (None: none)."""
    return _requested


def request(signum: int, _frame=None) -> None:
    """The handler: remember the signal; the loop acts on it at the next boundary."""
    global _requested
    _requested = int(signum)


@contextlib.contextmanager
def catching() -> Iterator[None]:
    """Handle ``SIGNALS`` by ``request`` while the block runs, then restore the earlier
    handlers (submitit's among them: ``bench.launch`` calls it after the checkpoint)."""
    global _requested
    if threading.current_thread() is not threading.main_thread():
        yield                      # signals reach the main thread only
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    _requested = None
    for s in SIGNALS:
        signal.signal(s, request)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        _requested = None
