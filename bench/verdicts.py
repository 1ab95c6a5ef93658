"""Published vs measured, cell by cell, and the CI gate's policy: the one verdict layer
that the reports (``bench.report``), ``--check`` and the JUnit / summary files of
``bench.ci`` all read. Plain Python on the records (no pandas, no rich), so the gate
stays light."""
from __future__ import annotations

import dataclasses
import math
from collections import Counter
from typing import Any, Iterable, Optional, Sequence

from .compare import (COMPARED_PROFILES, NO_PUBLISHED, NO_TOLERANCE, NOT_APPLICABLE, NOT_BUILT,
                      NOT_COMPARED, NOT_MEASURED, NOTED, OUTSIDE, WITHIN, Verdict, compare_cell,
                      decimals_of)
from .profiles import PRIORITY, has
from .records import CELL_ERROR, CELL_MEASURED, Cell, as_cell
from .suite import Column, Suite

NO_RECORD = "no result record for this row (run the suite)"
NO_COMPARABLE_RUN = "no full-profile run"
STATUSES = (WITHIN, OUTSIDE, NOTED, NOT_COMPARED, NOT_MEASURED, NO_TOLERANCE, NO_PUBLISHED, NOT_BUILT, NOT_APPLICABLE)
# which record a cell is read from when several profiles measured it
PROFILE_PRIORITY = PRIORITY


def records_by_row(suite: Suite, records: Iterable[dict]) -> dict[str, list[dict]]:
    """Group records of this suite by row key (records of other suites are ignored)."""
    keys = {row.name: row.key for row in suite.rows}
    out: dict[str, list[dict]] = {}
    for rec in records:
        if rec.get("suite", suite.suite) != suite.suite:
            continue
        key = rec.get("row_key") or keys.get(rec.get("row", ""))
        if key:
            out.setdefault(key, []).append(rec)
    return out


def cell_value(cell: Optional[Cell]) -> Optional[float]:
    """The measured number of a cell, or None when it holds none."""
    cell = as_cell(cell)
    if cell is None or cell.status != CELL_MEASURED:
        return None
    value = cell.value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def profile_rank(rec: dict) -> int:
    p = rec.get("profile")
    return PROFILE_PRIORITY.index(p) if p in PROFILE_PRIORITY else len(PROFILE_PRIORITY)


def cell_profile(cell: Optional[Cell], rec: Optional[dict]) -> Optional[str]:
    """The profile of the run that measured a cell: an accuracy cell names it (a
    complexity-profile record reads full runs), other cells are their record's."""
    cell = as_cell(cell)
    if cell is not None and cell.profile:
        return cell.profile
    return rec.get("profile") if rec else None


def comparable(cell: Optional[Cell], rec: Optional[dict]) -> bool:
    """Whether the cell's number may stand beside the paper's: it comes from a profile of
    COMPARED_PROFILES (complexity, full, released weights), not from a pipeline check
    (smoke, short), which the reports show apart."""
    return cell_profile(cell, rec) in COMPARED_PROFILES


def _best_cell(recs: list[dict], cid: str, comparable_only: bool = False
               ) -> tuple[Optional[Cell], Optional[dict]]:
    """(cell, record) for one column: a measured cell wins over any other, and among
    measured ones the furthest-going profile (full, short, smoke, complexity);
    ``comparable_only`` leaves out cells of pipeline checks (smoke, short)."""
    fallback = None
    for rec in sorted(recs, key=profile_rank):
        cell = as_cell((rec.get("cells") or {}).get(cid))
        if cell is None or (comparable_only and not comparable(cell, rec)):
            continue
        if cell_value(cell) is not None:
            return cell, rec
        fallback = fallback or (cell, rec)
    if fallback:
        return fallback
    if comparable_only:   # the record that should have held the cell, if any
        recs = [r for r in recs if r.get("profile") in COMPARED_PROFILES]
    return None, (sorted(recs, key=profile_rank)[0] if recs else None)


def cell_reason(cell: Optional[Cell], rec: Optional[dict]) -> str:
    """Why a cell holds no number (a failed run, no record, an error, a recorded reason)."""
    cell = as_cell(cell)
    if rec is not None and rec.get("status") == "failed" and (cell is None or not cell.reason):
        return f"run failed: {rec.get('error') or 'no error text'}"
    if cell is None:
        return NO_RECORD
    text = cell.reason or ""
    if cell.status == CELL_ERROR:
        return f"error: {text or 'no error text'}"
    if cell.status == CELL_MEASURED:   # measured, but no finite value
        return text or f"no value in the record (got {cell.value!r})"
    return text or "not measured (no reason recorded)"


def cell_verdicts(suite: Suite, records: Iterable[dict]) -> list[dict[str, Any]]:
    """One dict per (row, column), in suite order. ``gated`` says whether the cell takes
    part in --check: the column is gated and has a tolerance, the paper printed a value
    and the row does not list the cell as a known deviation."""
    by_row = records_by_row(suite, records)
    out = []
    for row in suite.rows:
        recs = by_row.get(row.key, [])
        for cid, col in suite.columns.items():
            # smoke and short accuracy never stands beside the paper's (pipeline_checks)
            cell, rec = _best_cell(recs, cid, comparable_only=not col.is_complexity)
            measured = cell_value(cell)
            # a cell scored from the authors' released weights is compared with their
            # model zoo's number for those weights where it prints one (Suite.reference)
            published, reference = suite.reference(
                row, cid, None if col.is_complexity else cell_profile(cell, rec))
            digits = suite.printed_digits(row, cid)
            if digits is None:
                digits = decimals_of(published) if published is not None else 2
            deviation = row.known_deviations.get(cid, "")
            profile = cell.profile if cell is not None and not col.is_complexity else None
            std = cell.std if measured is not None else None
            k = suite.tolerance_std_for(row, cid) if col.gate else None
            std_allowed = k * std if k is not None and std is not None else None
            reason = "" if measured is not None else cell_reason(cell, rec)
            if measured is None and not col.is_complexity:
                reason = _accuracy_reason(recs, cid, reason if cell or rec or not recs
                                          else NO_COMPARABLE_RUN)
            tolerance = col.tolerance if col.gate else None
            if not row.built:
                v = Verdict(NOT_BUILT, reason=f"not built: {row.not_built}")
            elif not suite.applies(row, cid):
                v = Verdict(NOT_APPLICABLE, reason="the row does not fill this column")
            elif measured is not None and tolerance is None and k is not None and std_allowed is None:
                v = compare_cell(published, measured, None, digits, deviation)
                if v.status == NO_TOLERANCE:
                    v = Verdict(NO_TOLERANCE, v.delta, None, v.printed_match,
                                f"tolerance_std {k:g} needs runs with several seeds (--seeds); "
                                f"this cell has {(cell.n if cell else None) or 1}")
            else:
                v = compare_cell(published, measured, tolerance, digits, deviation, reason,
                                 profile=profile, std_allowed=std_allowed)
            if reference == "model zoo" and measured is not None and not v.reason:
                paper = suite.published(row, cid)
                v = dataclasses.replace(v, reason=(
                    f"released weights, compared with the authors' model-zoo value "
                    f"{fmt(published, digits)}" + ("" if paper is None or paper == published
                                                   else f" (the paper prints {fmt(paper, digits)})")))
            out.append({
                "row": row.name, "row_key": row.key, "column": cid, "title": col.title,
                "unit": col.unit, "is_complexity": col.is_complexity,
                "published": published, "measured": measured, "delta": v.delta,
                "allowed": v.allowed, "status": v.status, "printed_match": v.printed_match,
                "digits": digits,
                "reason": v.reason,
                "gated": bool(col.gate and published is not None and not deviation and row.built
                              and (col.tolerance is not None
                                   or (k is not None and (measured is None or std_allowed is not None)))),
                "canonical": cell.canonical.model_dump() if cell and cell.canonical else None,
                # a good number whose latest attempt failed: "last attempt failed: why"
                "note": (cell.note if cell else None) or "",
                "profile": cell_profile(cell, rec),
                # what the cell is compared with: "paper" or "model zoo" (released
                # weights), and the paper's own value
                "reference": reference, "paper": suite.published(row, cid),
                # a released-weights cell whose file was not found: skipped, not gated
                "skipped": cell.skipped if cell is not None and measured is None else None,
                # an accuracy mean over seeds (--seeds): spread and count
                "std": std, "n": cell.n if measured is not None else None,
                "seeds": cell.seeds if measured is not None else None,
                "std_allowed": std_allowed,
            })
    return out


def _accuracy_reason(recs: list[dict], cid: str, reason: str) -> str:
    """Why an accuracy cell has no number to compare, and where the numbers of the
    pipeline checks are when they measured it."""
    checks = sorted({cell_profile(c, r) for r in recs
                     for c in [(r.get("cells") or {}).get(cid)]
                     if cell_value(c) is not None and not comparable(c, r)}, key=str)
    if checks:
        reason += f" ({', '.join(checks)} run: see the pipeline checks, not comparable with the paper)"
    return reason


def verdict_summary(verdicts: list[dict]) -> dict[str, Any]:
    """Counts per status (in a fixed order) and the gated cells that would fail --check."""
    counts = Counter(v["status"] for v in verdicts)
    return {
        "cells": len(verdicts),
        "counts": {s: counts[s] for s in STATUSES if counts[s]},
        "gated": sum(v["gated"] for v in verdicts),
        "gated_outside": sum(v["gated"] and v["status"] == OUTSIDE for v in verdicts),
        "gated_not_measured": sum(v["gated"] and v["status"] == NOT_MEASURED for v in verdicts),
    }


def fmt(value: Optional[float], digits: int, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def tolerance_text(col: Column) -> str:
    """E.g. "±0.05 M", "−1 % (only falling short fails)", "not gated"."""
    tol = col.tolerance
    spread = (f"{col.tolerance_std:g} std of the mean over seeds"
              if col.tolerance_std is not None else None)
    if tol is None:
        text = f"±{spread}" if spread else "none"
        return text if col.gate or not spread else f"{text}, not gated"
    bounds = ([f"{tol.abs:g} {col.unit}".strip()] if tol.abs is not None else []) + \
             ([f"{tol.rel * 100:g}%"] if tol.rel is not None else []) + \
             (["half a printed digit"] if tol.printed else []) + ([spread] if spread else [])
    text = {"both": "±", "below": "−", "above": "+"}[tol.side] + " or ".join(bounds)
    if len(bounds) > 1:
        text += " (the larger)"
    text += {"both": "", "below": " (only falling short fails)",
             "above": " (only exceeding fails)"}[tol.side]
    return text if col.gate else f"{text}, not gated"



# --- the gate (--check) ----------------------------------------------------------------
def gate_failures(suite: Suite, records: Sequence[dict]) -> list[dict]:
    """Gated cells that are not within tolerance: outside it, or not measured (a
    measurement that broke must fail the gate, not pass it silently). Complexity cells
    always; accuracy cells only when the records come from the full profile."""
    return [v for v in gated_cells(suite, records) if v["status"] != WITHIN]


def gated_cells(suite: Suite, records: Sequence[dict]) -> list[dict]:
    """Every cell ``--check`` judges for these records (passing or not): the verdicts of
    ``gate_failures`` before the failing ones are picked (JUnit has one test per cell)."""
    # released: the authors' weights must give the published numbers too; a cell whose
    # weights file is missing was skipped (one message said so) and is not gated
    # (a run with other settings than the protocols', e.g. --epochs 5, is not the paper's
    # recipe: its accuracy is not gated)
    full = any(has(r.get("profile"), "gates_accuracy") and not r.get("settings_variant")
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



__all__ = ["NO_RECORD", "NO_COMPARABLE_RUN", "STATUSES", "PROFILE_PRIORITY", "records_by_row",
           "cell_value", "cell_profile", "cell_reason", "profile_rank", "comparable", "cell_verdicts", "verdict_summary",
           "fmt", "tolerance_text", "gate_failures", "gated_cells", "failure_line"]
