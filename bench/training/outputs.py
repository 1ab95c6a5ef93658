"""A model's outputs as the trainer, the losses and the predictions read them: a tensor
(the main output) or, in training mode, a mapping of the main output under ``"out"`` plus
named auxiliary outputs (GSTO's stage predictors)."""
from __future__ import annotations

from typing import Any, Mapping

MAIN_OUTPUT = "out"


def as_outputs(out: Any) -> dict:
    """A model's output as ``{"out": main, <aux name>: aux, ...}``."""
    if isinstance(out, Mapping):
        if MAIN_OUTPUT not in out:
            raise KeyError(f"a model's output mapping needs its main output under "
                           f"{MAIN_OUTPUT!r}; got {', '.join(map(str, out))}")
        return dict(out)
    return {MAIN_OUTPUT: out}


def main_output(out: Any):
    """The main output of a model's forward (a tensor or an output mapping)."""
    return out[MAIN_OUTPUT] if isinstance(out, Mapping) else out
