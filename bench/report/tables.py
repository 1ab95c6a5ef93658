"""Published vs measured, cell by cell: the verdicts every report format and
``run_suite.py --check`` read, and the paper-shaped pandas table built from them."""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Iterable, Optional

import pandas as pd

from ..complexity.conventions import CONVENTIONS
from ..compare import (NO_PUBLISHED, NO_TOLERANCE, NOT_APPLICABLE, NOT_BUILT, NOT_COMPARED, NOT_MEASURED, NOTED, OUTSIDE, WITHIN,
                       Verdict, compare_cell, decimals_of)
from ..results import CELL_ERROR, CELL_MEASURED
from ..suite import Column, Suite

NO_RECORD = "no result record for this row (run the suite)"
FIELDS = ("published", "measured", "delta", "verdict")
STATUSES = (WITHIN, OUTSIDE, NOTED, NOT_COMPARED, NOT_MEASURED, NO_TOLERANCE, NO_PUBLISHED, NOT_BUILT, NOT_APPLICABLE)
# which record a cell is read from when several profiles measured it
PROFILE_PRIORITY = ("full", "short", "smoke", "complexity")


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


def cell_value(cell: Optional[dict]) -> Optional[float]:
    """The measured number of a cell, or None when it holds none."""
    if not cell or cell.get("status", CELL_MEASURED) != CELL_MEASURED:
        return None
    value = cell.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _profile_rank(rec: dict) -> int:
    p = rec.get("profile")
    return PROFILE_PRIORITY.index(p) if p in PROFILE_PRIORITY else len(PROFILE_PRIORITY)


def _best_cell(recs: list[dict], cid: str) -> tuple[Optional[dict], Optional[dict]]:
    """(cell, record) for one column: a measured cell wins over any other, and among
    measured ones the furthest-going profile (full, short, smoke, complexity)."""
    fallback = None
    for rec in sorted(recs, key=_profile_rank):
        cell = (rec.get("cells") or {}).get(cid)
        if cell is None:
            continue
        if cell_value(cell) is not None:
            return cell, rec
        fallback = fallback or (cell, rec)
    return fallback or (None, recs[0] if recs else None)


def _reason(cell: Optional[dict], rec: Optional[dict]) -> str:
    if rec is not None and rec.get("status") == "failed" and (cell is None or not cell.get("reason")):
        return f"run failed: {rec.get('error') or 'no error text'}"
    if cell is None:
        return NO_RECORD
    text = cell.get("reason") or ""
    if cell.get("status") == CELL_ERROR:
        return f"error: {text or 'no error text'}"
    if cell.get("status", CELL_MEASURED) == CELL_MEASURED:   # measured, but no finite value
        return text or f"no value in the record (got {cell.get('value')!r})"
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
            cell, rec = _best_cell(recs, cid)
            measured = cell_value(cell)
            published = suite.published(row, cid)
            digits = suite.printed_digits(row, cid)
            if digits is None:
                digits = decimals_of(published) if published is not None else 2
            deviation = row.known_deviations.get(cid, "")
            profile = (cell or {}).get("profile") if not col.is_complexity else None
            if not row.built:
                v = Verdict(NOT_BUILT, reason=f"not built: {row.not_built}")
            elif not suite.applies(row, cid):
                v = Verdict(NOT_APPLICABLE, reason="the row does not fill this column")
            else:
                v = compare_cell(published, measured, col.tolerance if col.gate else None, digits,
                                 deviation, "" if measured is not None else _reason(cell, rec),
                                 profile=profile)
            out.append({
                "row": row.name, "row_key": row.key, "column": cid, "title": col.title,
                "unit": col.unit, "is_complexity": col.is_complexity,
                "published": published, "measured": measured, "delta": v.delta,
                "allowed": v.allowed, "status": v.status, "printed_match": v.printed_match,
                "digits": digits,
                "reason": v.reason,
                "gated": bool(col.gate and col.tolerance is not None and published is not None
                              and not deviation and row.built),
                "canonical": (cell or {}).get("canonical"),
                "profile": (cell or {}).get("profile") or (rec.get("profile") if rec else None),
            })
    return out


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


def column_titles(suite: Suite) -> dict[str, str]:
    """Display title per column id; ids are appended where two titles collide."""
    titles = [c.title for c in suite.columns.values()]
    return {cid: c.title if titles.count(c.title) == 1 else f"{c.title} [{cid}]"
            for cid, c in suite.columns.items()}


def canonical_columns(suite: Suite, verdicts: list[dict]) -> dict[str, str]:
    """Columns with a canonical figure in some record -> the extra column's title."""
    titles = column_titles(suite)
    out = {}
    for v in verdicts:
        if v["canonical"] and v["column"] not in out:
            out[v["column"]] = f"{titles[v['column']]} ({v['canonical'].get('convention') or 'canonical'})"
    return {cid: out[cid] for cid in suite.columns if cid in out}


def canonical_cell(v: dict) -> tuple[Any, str]:
    """(display value, verdict) of the canonical figure of one cell."""
    canon = v["canonical"] or {}
    value = canon.get("value")
    if value is not None:
        return float(value), NO_PUBLISHED
    return (v["reason"] if v["status"] == NOT_MEASURED else "no canonical figure"), NOT_MEASURED


def suite_table(suite: Suite, records: Iterable[dict]) -> pd.DataFrame:
    """The paper's table: rows in suite order (indexed by name), columns (title, field)
    with fields published / measured / delta / verdict. A cell that was not measured holds
    the reason as its measured value."""
    verdicts = cell_verdicts(suite, records)
    titles = column_titles(suite)
    canon = canonical_columns(suite, verdicts)
    keys = []
    for cid in suite.columns:
        keys += [(titles[cid], f) for f in FIELDS]
        if cid in canon:
            keys += [(canon[cid], f) for f in FIELDS]
    data: dict[str, dict[tuple, Any]] = {row.name: {} for row in suite.rows}
    nan = float("nan")
    for v in verdicts:
        cells = data[v["row"]]
        title = titles[v["column"]]
        cells[(title, "published")] = nan if v["published"] is None else v["published"]
        cells[(title, "measured")] = v["measured"] if v["measured"] is not None else v["reason"]
        cells[(title, "delta")] = nan if v["delta"] is None else v["delta"]
        cells[(title, "verdict")] = v["status"]
        if v["column"] in canon:
            value, status = canonical_cell(v)
            ctitle = canon[v["column"]]
            cells.update({(ctitle, "published"): nan, (ctitle, "measured"): value,
                          (ctitle, "delta"): nan, (ctitle, "verdict"): status})
    columns = pd.MultiIndex.from_tuples(keys, names=["column", "field"])
    return pd.DataFrame([[data[r.name][k] for k in keys] for r in suite.rows],
                        index=pd.Index([r.name for r in suite.rows], name="row"), columns=columns)


# --- formatting shared by the terminal and HTML renderers --------------------------------

def fmt(value: Optional[float], digits: int, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def tolerance_text(col: Column) -> str:
    """E.g. "±0.05 M", "−1 % (only falling short fails)", "not gated"."""
    tol = col.tolerance
    if tol is None:
        return "none"
    bounds = ([f"{tol.abs:g} {col.unit}".strip()] if tol.abs is not None else []) + \
             ([f"{tol.rel * 100:g}%"] if tol.rel is not None else []) + \
             (["half a printed digit"] if tol.printed else [])
    text = {"both": "±", "below": "−", "above": "+"}[tol.side] + " or ".join(bounds)
    if len(bounds) > 1:
        text += " (the larger)"
    text += {"both": "", "below": " (only falling short fails)",
             "above": " (only exceeding fails)"}[tol.side]
    return text if col.gate else f"{text}, not gated"


def conventions_used(suite: Suite, verdicts: list[dict]) -> dict[str, Any]:
    """Counting conventions named by the suite's columns or the records' canonical figures."""
    names = [c.convention for c in suite.columns.values() if c.convention]
    names += [v["canonical"].get("convention") for v in verdicts if v["canonical"]]
    return {n: CONVENTIONS.get(n) for n in dict.fromkeys(n for n in names if n)}
