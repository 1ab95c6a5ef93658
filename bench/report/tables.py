"""Published vs measured, cell by cell: the verdicts every report format and
``run_suite.py --check`` read, and the paper-shaped pandas table built from them."""
from __future__ import annotations

import dataclasses
import math
from collections import Counter, defaultdict
from typing import Any, Iterable, Optional

import pandas as pd

from ..complexity.conventions import CONVENTIONS
from ..compare import (COMPARED_PROFILES, NO_PUBLISHED, NO_TOLERANCE, NOT_APPLICABLE, NOT_BUILT, NOT_COMPARED, NOT_MEASURED, NOTED, OUTSIDE, WITHIN,
                       Verdict, compare_cell, decimals_of)
from ..results import CELL_ERROR, CELL_MEASURED
from ..suite import Column, Suite

NO_RECORD = "no result record for this row (run the suite)"
NO_COMPARABLE_RUN = "no full-profile run"
FIELDS = ("published", "measured", "delta", "verdict")
STATUSES = (WITHIN, OUTSIDE, NOTED, NOT_COMPARED, NOT_MEASURED, NO_TOLERANCE, NO_PUBLISHED, NOT_BUILT, NOT_APPLICABLE)
# which record a cell is read from when several profiles measured it
PROFILE_PRIORITY = ("full", "released", "short", "smoke", "complexity")


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


def cell_profile(cell: Optional[dict], rec: Optional[dict]) -> Optional[str]:
    """The profile of the run that measured a cell: an accuracy cell names it (a
    complexity-profile record reads full runs), other cells are their record's."""
    return (cell or {}).get("profile") or (rec or {}).get("profile")


def comparable(cell: Optional[dict], rec: Optional[dict]) -> bool:
    """Whether the cell's number may stand beside the paper's: it comes from a profile of
    COMPARED_PROFILES (complexity, full, released weights), not from a pipeline check
    (smoke, short), which the reports show apart."""
    return cell_profile(cell, rec) in COMPARED_PROFILES


def _best_cell(recs: list[dict], cid: str, comparable_only: bool = False
               ) -> tuple[Optional[dict], Optional[dict]]:
    """(cell, record) for one column: a measured cell wins over any other, and among
    measured ones the furthest-going profile (full, short, smoke, complexity);
    ``comparable_only`` leaves out cells of pipeline checks (smoke, short)."""
    fallback = None
    for rec in sorted(recs, key=_profile_rank):
        cell = (rec.get("cells") or {}).get(cid)
        if cell is None or (comparable_only and not comparable(cell, rec)):
            continue
        if cell_value(cell) is not None:
            return cell, rec
        fallback = fallback or (cell, rec)
    if fallback:
        return fallback
    if comparable_only:   # the record that should have held the cell, if any
        recs = [r for r in recs if r.get("profile") in COMPARED_PROFILES]
    return None, (sorted(recs, key=_profile_rank)[0] if recs else None)


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
            profile = (cell or {}).get("profile") if not col.is_complexity else None
            std = (cell or {}).get("std") if measured is not None else None
            k = suite.tolerance_std_for(row, cid) if col.gate else None
            std_allowed = k * std if k is not None and std is not None else None
            reason = "" if measured is not None else _reason(cell, rec)
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
                                f"this cell has {(cell or {}).get('n') or 1}")
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
                "canonical": (cell or {}).get("canonical"),
                # a good number whose latest attempt failed: "last attempt failed: why"
                "note": (cell or {}).get("note") or "",
                "profile": (cell or {}).get("profile") or (rec.get("profile") if rec else None),
                # what the cell is compared with: "paper" or "model zoo" (released
                # weights), and the paper's own value
                "reference": reference, "paper": suite.published(row, cid),
                # a released-weights cell whose file was not found: skipped, not gated
                "skipped": (cell or {}).get("skipped") if measured is None else None,
                # an accuracy mean over seeds (--seeds): spread and count
                "std": std, "n": (cell or {}).get("n") if measured is not None else None,
                "seeds": (cell or {}).get("seeds") if measured is not None else None,
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


def settings_text(rec: dict) -> str:
    """What a row record's training runs ran with: the protocols' own settings or the
    options given (``settings_variant``), with epochs (or iterations), the batch per
    process x processes and AMP where not off; "" for a record without runs."""
    runs = [run.get("settings") for run in (rec.get("runs") or {}).values() if run.get("settings")]
    variant = rec.get("settings_variant")
    if not runs:
        return variant or ""
    parts = []
    for st in runs[:1]:
        length = (f"{st['iterations']} iterations" if st.get("iterations")
                  else f"{st.get('epochs')} epochs")
        parts.append(f"{length}, batch {st.get('batch_per_process')} x {st.get('world_size')}"
                     + (f", amp {st['amp']}" if st.get("amp") not in (None, "off") else ""))
    return f"{variant or 'protocol settings'} ({'; '.join(parts)})"


def pipeline_checks(suite: Suite, records: Iterable[dict]) -> list[dict[str, Any]]:
    """The accuracy that runs of the pipeline-check profiles (smoke, short) measured, one
    entry per (row, profile) in suite order: shown apart from the published values, never
    compared with them. Each entry: row, profile, status, ``cells`` (column -> value, std,
    n, reason) and ``runs`` (protocol key -> status, first and final loss, the target
    oracle's scores, seeds)."""
    accuracy = [cid for cid, c in suite.columns.items() if not c.is_complexity]
    if not accuracy:
        return []
    by_row = records_by_row(suite, records)
    out = []
    for row in suite.rows:
        for rec in sorted(by_row.get(row.key, []), key=_profile_rank):
            # runs with other settings are checks too, whatever their profile
            if rec.get("profile") in COMPARED_PROFILES and not rec.get("settings_variant"):
                continue
            cells = {}
            for cid in accuracy:
                if not suite.applies(row, cid):
                    continue
                cell = (rec.get("cells") or {}).get(cid)
                value = cell_value(cell)
                cells[cid] = {"value": value, "std": (cell or {}).get("std") if value is not None else None,
                              "n": (cell or {}).get("n") if value is not None else None,
                              "reason": "" if value is not None else _reason(cell, rec)}
            runs = {}
            for key, run in (rec.get("runs") or {}).items():
                training = run.get("training") or {}
                targets = run.get("target_metrics") or {}
                measures = [c.measure for c in suite.columns.values()
                            if not c.is_complexity and c.protocol == key]
                attempt = run.get("last_attempt") or {}
                runs[key] = {"status": run.get("status"), "error": run.get("error") or "",
                             "last_attempt": (f"last attempt failed: {attempt.get('error')}"
                                              if attempt.get("status") == "failed" else ""),
                             "first_loss": training.get("first_loss"),
                             "final_loss": training.get("final_loss"),
                             # the target oracle on the suite's own measures
                             "target": {m: targets[m] for m in measures if m in targets},
                             "seeds": sorted(run.get("seeds") or {}, key=str)}
            if cells or runs:
                profile = rec.get("profile")
                if rec.get("settings_variant"):
                    profile = f"{profile} ({rec['settings_variant']})"
                out.append({"row": row.name, "row_key": row.key, "profile": profile,
                            "status": rec.get("status"), "cells": cells, "runs": runs})
    return out


def folded_columns(suite: Suite, verdicts: list[dict], hint: str = "") -> dict[str, str]:
    """Columns without a single number to show -> why, in one short text: an accuracy
    column with no comparable (full-profile) result, or any column no row measured.
    ``hint`` is appended to the accuracy columns' text (where the pipeline checks are)."""
    by_col = defaultdict(list)
    for v in verdicts:
        by_col[v["column"]].append(v)
    out = {}
    for cid, col in suite.columns.items():
        cells = [v for v in by_col[cid] if v["status"] not in (NOT_BUILT, NOT_APPLICABLE)]
        if not cells or any(v["measured"] is not None for v in cells):
            continue
        reasons = list(dict.fromkeys(v["reason"] for v in cells))
        if not col.is_complexity:
            text = NO_COMPARABLE_RUN
            if len(reasons) == 1 and not reasons[0].startswith(NO_COMPARABLE_RUN):
                text += f": {reasons[0]}"
            out[cid] = text + hint
        else:
            out[cid] = reasons[0] if len(reasons) == 1 else \
                f"not measured ({len(reasons)} reasons: see the report)"
    return out


def fmt_stat(value: Optional[float], digits: int, std: Optional[float] = None,
             n: Optional[int] = None) -> str:
    """A value, and for a mean over several seeds "mean ± std (n=N)"."""
    text = fmt(value, digits)
    if text and std is not None and n and n > 1:
        text += f" ± {std:.{digits}f} (n={n})"
    return text


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


def conventions_used(suite: Suite, verdicts: list[dict]) -> dict[str, Any]:
    """Counting conventions named by the suite's columns or the records' canonical figures."""
    names = [c.convention for c in suite.columns.values() if c.convention]
    names += [v["canonical"].get("convention") for v in verdicts if v["canonical"]]
    return {n: CONVENTIONS.get(n) for n in dict.fromkeys(n for n in names if n)}
