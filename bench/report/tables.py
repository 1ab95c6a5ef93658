"""The paper-shaped pandas table and the display helpers of the reports, built from the
verdicts of ``bench.verdicts``."""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Optional

import pandas as pd

from ..complexity.conventions import CONVENTIONS
from ..compare import COMPARED_PROFILES, NO_PUBLISHED, NOT_APPLICABLE, NOT_BUILT, NOT_MEASURED
from ..records import as_cell
from ..suite import Suite
# the verdicts themselves live below the reporter (bench.verdicts); re-exported here
from ..verdicts import (NO_COMPARABLE_RUN, NO_RECORD, PROFILE_PRIORITY, STATUSES,  # noqa: F401
                        cell_profile, cell_reason, cell_value, cell_verdicts, comparable,
                        fmt, profile_rank, records_by_row, tolerance_text, verdict_summary)

FIELDS = ("published", "measured", "delta", "verdict")


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
        for rec in sorted(by_row.get(row.key, []), key=profile_rank):
            # runs with other settings are checks too, whatever their profile
            if rec.get("profile") in COMPARED_PROFILES and not rec.get("settings_variant"):
                continue
            cells = {}
            for cid in accuracy:
                if not suite.applies(row, cid):
                    continue
                cell = as_cell((rec.get("cells") or {}).get(cid))
                value = cell_value(cell)
                cells[cid] = {"value": value, "std": cell.std if value is not None else None,
                              "n": cell.n if value is not None else None,
                              "reason": "" if value is not None else cell_reason(cell, rec)}
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

def conventions_used(suite: Suite, verdicts: list[dict]) -> dict[str, Any]:
    """Counting conventions named by the suite's columns or the records' canonical figures."""
    names = [c.convention for c in suite.columns.values() if c.convention]
    names += [v["canonical"].get("convention") for v in verdicts if v["canonical"]]
    return {n: CONVENTIONS.get(n) for n in dict.fromkeys(n for n in names if n)}
