"""What one run of a suite shares: its settings (``RunContext``), the paths and profiles,
and the row's models (registry name + row overrides + the protocol's task overrides such
as ``num_joints``, each built once and only when a measurement is not cached).

It knows no architecture: everything model-specific comes from the registry and the
model's own spec.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from .. import results as res
from ..complexity.cache import MeasurementCache
from ..launch import LaunchConfig
from ..suite import Column, Row
from ..protocol import Protocol
from ..profiles import DEFAULT, NAMES

REPORTS_DIR = res.RESULTS_DIR.parent / "reports"
WORK_DIR = res.RESULTS_DIR.parent / "work_dirs"
BASELINES_DIR = res.RESULTS_DIR / "baselines"
PROFILES = NAMES
SMOKE_DATA_SEED = 0


@dataclasses.dataclass
class RunContext:
    """A run's settings (what happens to each row is the plan's: ``plan.plan``)."""
    profile: str = DEFAULT
    results_dir: Path = res.RESULTS_DIR
    data_root: Path | None = None
    weights_dir: Path | None = None    # the released profile: the authors' weight files
    cache: MeasurementCache = dataclasses.field(default_factory=MeasurementCache)
    latency: bool = False
    device: str = "auto"          # latency: "auto" = cuda when available, else cpu
    work_dir: Path = WORK_DIR
    rerun: bool = False
    launch: LaunchConfig = LaunchConfig()
    job_options: dict = dataclasses.field(default_factory=dict)   # bench.job.Job fields
    # --seeds: every training job runs once per seed and accuracy cells hold their mean;
    # empty: one run with the protocol's own seed
    seeds: tuple = ()
    # the settings beyond the protocols' (bench.runner.jobs.variant_tag): None for the
    # protocols' own; records and work dirs of other settings carry the tag
    variant: str | None = None


def model_overrides(row: Row, protocol: Protocol | None) -> dict[str, Any]:
    """Protocol task overrides the model accepts (e.g. num_joints), then the row's own."""
    from ..registry import get_entry
    accepted = set(get_entry(row.model.name).override_names)
    task = protocol.task_overrides() if protocol else {}
    return {**{k: v for k, v in task.items() if k in accepted}, **row.model.overrides}


class RowModels:
    """Builds each (row, protocol) model once, only when a measurement is not cached."""

    def __init__(self, row: Row):
        self.row = row
        self._built: dict[tuple, Any] = {}

    def spec(self, protocol: Protocol | None):
        from ..registry import resolve_spec
        return resolve_spec(self.row.model.name, **model_overrides(self.row, protocol))

    def get(self, protocol: Protocol | None, meta: bool = False):
        """The row's model under ``protocol``. ``meta=True``: built on the meta device
        (shapes only: no initialisation, no memory), for measures that read no values;
        where the build itself needs values, the real model."""
        overrides = model_overrides(self.row, protocol)
        # JSON, not a tuple of items: an override may be a list (of mappings), unhashable
        key = (json.dumps(overrides, sort_keys=True, default=str), meta)
        if key not in self._built:
            from ..registry import create_model
            if meta:
                from ..complexity.meta_trace import META_FAILURES, build_on_meta
                try:
                    self._built[key] = build_on_meta(create_model, self.row.model.name, **overrides)
                except META_FAILURES:
                    self._built[key] = self.get(protocol)
            else:
                self._built[key] = create_model(self.row.model.name, **overrides)
        return self._built[key]

    def on_meta(self, protocol: Protocol | None, measure):
        """``measure(model)`` on the meta-built model, again on the real one when the meta
        model cannot answer (an op without a meta kernel, a value read)."""
        from ..complexity.meta_trace import META_FAILURES
        try:
            return measure(self.get(protocol, meta=True))
        except META_FAILURES:
            return measure(self.get(protocol))


def input_shapes(col: Column, protocol: Protocol | None) -> list[list[int]]:
    if col.input is not None:
        return [list(s) for s in col.input]
    return [list(protocol.input_shape)]

