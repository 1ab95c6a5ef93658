"""The run profiles, in one table: how far ``run_suite.py --profile`` goes, and what the
runner, the jobs, the verdicts, the gate and the command line make of each (README,
"Profiles"). Plain data, no torch: every other module asks this table, never a name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class Profile:
    name: str
    summary: str                      # what it does, for the command line's messages
    runs_jobs: bool = False           # launches jobs (training, or evaluating weights)
    trains: bool = False              # those jobs train
    generated_data: bool = False      # on data it generates (no dataset needed)
    compared: bool = False            # its numbers stand beside the paper's
    gates_accuracy: bool = False      # --check judges its accuracy cells
    released_weights: bool = False    # scores the authors' released weights
    # why its accuracy is not compared with the paper (for a profile that is not)
    not_compared_why: str = ""
    # Job settings (bench.job); cpu_threads: CPU kernels split their reductions
    # by thread count and a network at its initialisation amplifies the last bits, so a
    # fixed count makes the smoke numbers, and the committed baselines, machine-free
    job_settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def reads_datasets(self) -> bool:
        """--data-root applies: its jobs read the real datasets."""
        return self.runs_jobs and not self.generated_data


#: in the order a cell measured by several profiles is read from (best first)
_TABLE = (
    Profile("full", "trains the paper's schedule on the real data",
            runs_jobs=True, trains=True, compared=True, gates_accuracy=True),
    Profile("released", "scores the released weights as the authors did (float32, their "
            "batch), training nothing", runs_jobs=True, compared=True, gates_accuracy=True,
            released_weights=True),
    Profile("short", "trains a tenth of the schedule on the real data",
            runs_jobs=True, trains=True, not_compared_why="a fraction of the schedule: "
            "for ranking only", job_settings={"epoch_fraction": 0.1}),
    Profile("smoke", "trains on the data it generates under <work-dir>/smoke_data",
            runs_jobs=True, trains=True, generated_data=True,
            not_compared_why="generated data, a few iterations: proves the pipeline, not "
            "the paper",
            # evaluation once, after training, whatever the protocol's validation interval
            job_settings={"epochs": 2, "max_iters_per_epoch": 3, "batch_size": 4,
                          "device": "cpu", "num_workers": 0, "eval_batch_size": 8,
                          "log_interval": 1, "cpu_threads": 2,
                          "validate_during_training": False}),
    Profile("complexity", "measures only and runs no job", compared=True),
)
PROFILES: dict[str, Profile] = {p.name: p for p in _TABLE}
#: the command line's order (its default first)
NAMES = ("complexity", "smoke", "short", "full", "released")
assert set(NAMES) == set(PROFILES)
DEFAULT = "complexity"
#: the profile whose runs hold the accuracy a comparable cell reads, and the one the
#: smoke baseline and its gate are about
FULL = "full"
SMOKE = "smoke"
RELEASED = "released"


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(NAMES)}") from None


def has(name: Any, flag: str) -> bool:
    """Whether profile ``name`` has ``flag`` (False for a name not in the table, e.g. a
    record written by another version)."""
    profile = PROFILES.get(name) if isinstance(name, str) else None
    return bool(profile is not None and getattr(profile, flag))


def names_with(flag: str) -> tuple[str, ...]:
    return tuple(n for n in NAMES if getattr(PROFILES[n], flag))


#: read order of a cell measured by several profiles
PRIORITY = tuple(p.name for p in _TABLE)

__all__ = ["Profile", "PROFILES", "NAMES", "DEFAULT", "FULL", "SMOKE", "RELEASED",
           "PRIORITY", "get_profile", "has", "names_with"]
