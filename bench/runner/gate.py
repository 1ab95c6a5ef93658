"""The CI gate (``--check``): gated cells against the published values and their
tolerances (complexity cells always, accuracy cells with the full and released
profiles), and the message for each failure.
"""
from __future__ import annotations

from typing import Sequence

from ..suite import Suite


def gate_failures(suite: Suite, records: Sequence[dict]) -> list[dict]:
    """Gated cells that are not within tolerance: outside it, or not measured (a
    measurement that broke must fail the gate, not pass it silently). Complexity cells
    always; accuracy cells only when the records come from the full profile."""
    from ..compare import WITHIN
    return [v for v in gated_cells(suite, records) if v["status"] != WITHIN]


def gated_cells(suite: Suite, records: Sequence[dict]) -> list[dict]:
    """Every cell ``--check`` judges for these records (passing or not): the verdicts of
    ``gate_failures`` before the failing ones are picked (JUnit has one test per cell)."""
    from ..report import cell_verdicts
    # released: the authors' weights must give the published numbers too; a cell whose
    # weights file is missing was skipped (one message said so) and is not gated
    # (a run with other settings than the protocols', e.g. --epochs 5, is not the paper's
    # recipe: its accuracy is not gated)
    full = any(r.get("profile") in ("full", "released") and not r.get("settings_variant")
               for r in records)
    ran = {r.get("row_key") for r in records}      # --rows: gate the rows that ran
    return [v for v in cell_verdicts(suite, records)
            if v["gated"] and v["row_key"] in ran and not v.get("skipped")
            and (suite.columns[v["column"]].is_complexity or full)]


def failure_line(suite: Suite, f: dict) -> str:
    measured = "not measured" if f["measured"] is None else f"{f['measured']:.6g}"
    line = (f"CHECK FAILED {suite.suite}: row {f['row']!r}, column {f['column']!r}: "
            f"published {f['published']}, measured {measured}")
    if f.get("allowed") is not None:
        line += f", allowed ±{f['allowed']:g}"
    if f.get("reason"):
        line += f" ({f['reason']})"
    return line

