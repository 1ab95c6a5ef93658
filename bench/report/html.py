"""HTML reports: one self-contained page per suite (reports/<suite>.html, its plots in
reports/<suite>/) and reports/index.html listing them with their verdict summaries."""
from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from ..compare import NOT_MEASURED
from ..paths import report_path
from ..results import atomic_write_json, atomic_write_text, safe_name
from ..suite import Suite, discover_suites, load_suite
from .plots import plot_suite
from .tables import (settings_text, canonical_cell, canonical_columns, cell_verdicts, column_titles,
                     conventions_used, fmt, fmt_stat, folded_columns, pipeline_checks, records_by_row,
                     tolerance_text, verdict_summary)

TEMPLATES = Path(__file__).resolve().parent / "templates"
SUMMARY_FILE = "summary.json"
# verdict -> CSS class
CSS = {"within": "ok", "outside": "bad", "known deviation": "noted", "not measured": "nm",
       "not compared": "smoke", "not built": "nb", "not applicable": "plain",
       "not gated": "plain", "no published value": "plain"}


def _env() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _cell(v: dict, col) -> dict[str, Any]:
    d = v["digits"]
    tip = f"{v['status']}: {v['reason']}" if v["reason"] else v["status"]
    if v.get("note"):
        tip += f"; {v['note']}"
    if v["allowed"] is not None:
        tip += f"; allowed {fmt(v['allowed'], d + 1)}"
    if v["printed_match"]:
        tip += "; matches the printed value when rounded"
    if v["n"] and v["n"] > 1:
        tip += f"; mean of {v['n']} seeds ({', '.join(map(str, v['seeds'] or []))})"
        if v["std_allowed"] is not None:
            tip += f"; k std = {fmt(v['std_allowed'], d + 1)}"
    return {"published": fmt(v["published"], d) or "–",
            "measured": fmt_stat(v["measured"], d + 1, v["std"], v["n"]),
            "delta": fmt(v["delta"], d + 1, signed=True), "status": v["status"],
            "css": CSS[v["status"]], "reason": v["reason"], "tip": tip, "canonical": False,
            "note": v.get("note") or ""}


def _provenance(rec: dict) -> dict[str, Any]:
    p = rec.get("provenance") or {}
    packages = p.get("packages") or {}
    return {"row": rec.get("row", ""), "profile": rec.get("profile", ""),
            "settings": settings_text(rec),
            "status": rec.get("status", ""), "error": rec.get("error") or "",
            "commit": (p.get("commit") or "unknown"), "dirty": p.get("dirty"),
            "device": p.get("device") or "", "cpu": p.get("cpu") or "", "host": p.get("host") or "",
            "python": p.get("python") or "", "time": p.get("time") or rec.get("finished_at") or "",
            "wall": "" if rec.get("wall_time_s") is None else f"{rec['wall_time_s']:.1f} s",
            "packages": ", ".join(f"{k} {v}" for k, v in sorted(packages.items())),
            "file": Path(rec["_path"]).name if rec.get("_path") else ""}


def _context(suite: Suite, records: list[dict], plots: list[str]) -> dict[str, Any]:
    # runs with other settings than the protocols' (--epochs, --batch-size, --amp) are
    # listed with the pipeline checks and in the provenance, never set against the paper
    every = records
    records = [r for r in records if not r.get("settings_variant")]
    verdicts = cell_verdicts(suite, records)
    checks = pipeline_checks(suite, every)
    titles = column_titles(suite)
    canon = canonical_columns(suite, verdicts)
    by_row = records_by_row(suite, records)
    cells = defaultdict(dict)
    for v in verdicts:
        cells[v["row"]][v["column"]] = v
    columns = []
    for cid, col in suite.columns.items():
        columns.append({"title": titles[cid], "unit": col.unit, "canonical": False})
        if cid in canon:
            columns.append({"title": canon[cid], "unit": col.unit, "canonical": True})
    rows = []
    for row in suite.rows:
        out = []
        for cid, col in suite.columns.items():
            v = cells[row.name][cid]
            out.append(_cell(v, col))
            if cid in canon:
                value, status = canonical_cell(v)
                measured = fmt(value, 2) if isinstance(value, float) else ""
                out.append({"published": "", "measured": measured, "delta": "", "status": status,
                            "css": "canon" if measured else "nm", "reason": "" if measured else value,
                            "tip": value if not measured else "canonical figure, no published value",
                            "canonical": True})
        models = [r.get("model") or {} for r in by_row.get(row.key, [])]
        rows.append({
            "name": row.name, "group": row.group, "note": row.note, "cells": out,
            "model_key": next((m["key"] for m in models if m.get("key")),
                              row.model.key if row.built else ""),
            "not_built": row.not_built,
            "summary": next((m["summary"] for m in models if m.get("summary")), ""),
            "deviations": [(titles.get(c, c), why) for c, why in row.known_deviations.items()],
        })
    column_info = [{"id": cid, "title": titles[cid], "unit": col.unit, "measure": col.measure,
                    "protocol": (f"{col.protocol} ({suite.protocols[col.protocol].name})"
                                 if col.protocol else "explicit input" if col.input else ""),
                    "convention": col.convention or "", "digits": col.digits,
                    "tolerance": tolerance_text(col), "fidelity": _fidelity(suite, col)}
                   for cid, col in suite.columns.items()]
    conventions = [{"name": n, "description": c.description if c else "unknown convention",
                    "units": "" if c is None else ("binary (2^20, 2^30)" if c.unit_base == 1024 else "decimal")}
                   for n, c in conventions_used(suite, verdicts).items()]
    return {"suite": suite, "columns": columns, "rows": rows, "column_info": column_info,
            "conventions": conventions, "summary": verdict_summary(verdicts),
            "css": CSS, "plots": plots, "pipeline": _pipeline(suite, checks, titles),
            "not_measured": _not_measured(suite, verdicts, titles, bool(checks)),
            "newest": newest_record(records),
            "profiles": sorted({r.get("profile") for r in records if r.get("profile")}),
            "provenance": [_provenance(r) for r in every if r.get("suite", suite.suite) == suite.suite]}


def _fidelity(suite: Suite, col) -> str:
    """An accuracy column's training fidelity: how far its protocol's recipe is shown
    to be the authors' (``bench.protocol.Fidelity``)."""
    if col.is_complexity or not col.protocol:
        return ""
    fidelity = suite.protocols[col.protocol].fidelity
    return fidelity.line if fidelity else "not stated"


def _not_measured(suite: Suite, verdicts: list[dict], titles: dict[str, str],
                  checked: bool) -> list[tuple[str, str]]:
    """(why, which cells) under the table: a column with nothing to compare as one line
    (folded_columns), the other unmeasured cells grouped by their reason."""
    hint = " (smoke / short runs: see the pipeline checks below)" if checked else ""
    folded = folded_columns(suite, verdicts, hint)
    columns: dict[str, list[str]] = defaultdict(list)
    for cid, text in folded.items():
        columns[text].append(titles[cid])
    out = [(text, f"{', '.join(names)} (every row)") for text, names in columns.items()]
    cells: dict[str, list[str]] = defaultdict(list)
    for v in verdicts:
        if v["status"] == NOT_MEASURED and v["column"] not in folded:
            cells[v["reason"]].append(f"{v['row']} / {titles[v['column']]}")
    return out + [(text, ", ".join(names)) for text, names in cells.items()]


def _pipeline(suite: Suite, checks: list[dict], titles: dict[str, str]) -> dict[str, Any]:
    """The pipeline checks section (``pipeline_checks``): smoke and short runs' accuracy,
    losses and target oracle per row, apart from the published values."""
    ids = [cid for cid in suite.columns if any(cid in c["cells"] for c in checks)]
    rows = []
    for c in checks:
        row = next(r for r in suite.rows if r.key == c["row_key"])
        cells = []
        for cid in ids:
            cell = c["cells"].get(cid)
            if cell is None:
                cells.append({"text": "", "reason": ""})
                continue
            digits = (suite.printed_digits(row, cid) or 1) + 1
            cells.append({"text": fmt_stat(cell["value"], digits, cell["std"], cell["n"]),
                          "reason": cell["reason"]})
        runs = []
        for key, run in c["runs"].items():
            loss = ""
            if run["first_loss"] is not None and run["final_loss"] is not None:
                loss = f"{run['first_loss']:.4g} → {run['final_loss']:.4g}"
            target = ", ".join(f"{m} {v:.1f}" for m, v in run["target"].items()
                               if isinstance(v, (int, float)) and not m.startswith("IoU."))
            runs.append({"key": key, "status": run["status"], "error": run["error"],
                         "last_attempt": run["last_attempt"],
                         "loss": loss, "target": target, "seeds": ", ".join(map(str, run["seeds"]))})
        rows.append({"row": c["row"], "profile": c["profile"], "status": c["status"],
                     "cells": cells, "runs": runs})
    return {"columns": [{"title": titles[cid], "unit": suite.columns[cid].unit} for cid in ids],
            "rows": rows, "profiles": sorted({c["profile"] for c in checks})}


def newest_record(records: Iterable[dict]) -> str:
    """The date (YYYY-MM-DD) of the newest record, from its finish time."""
    times = [str(r.get("finished_at") or (r.get("provenance") or {}).get("time") or "")
             for r in records]
    return max((t[:10] for t in times if t), default="")


def render_suite_html(suite: Suite, records: Iterable[dict], out_dir="reports") -> Path:
    """Write ``<out_dir>/<suite>.html`` with its plots (and a summary.json the index
    reads) under ``<out_dir>/<suite>/``; returns the page's path."""
    records = list(records)
    out_dir = Path(out_dir)
    name = safe_name(suite.suite)
    assets = report_path(out_dir, name)
    assets.mkdir(parents=True, exist_ok=True)
    pngs = plot_suite(suite, [r for r in records if not r.get("settings_variant")], assets)
    for stale in set(assets.glob("*.png")) - set(pngs):
        stale.unlink()
    ctx = _context(suite, records, [f"{quote(name)}/{quote(p.name)}" for p in pngs])
    page = report_path(out_dir, f"{name}.html")
    atomic_write_text(page, _env().get_template("suite.html.j2").render(**ctx))
    atomic_write_json(report_path(assets, SUMMARY_FILE), {
        "suite": suite.suite, "title": suite.title, "paper": suite.paper, "table": suite.table,
        "profiles": ctx["profiles"], "newest_record": ctx["newest"], **ctx["summary"]})
    return page


def render_index(out_dir="reports", suites_dir="suites") -> Path:
    """Write ``<out_dir>/index.html``: every suite page present with its verdict summary,
    and the suites of ``suites_dir`` that have no page yet."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries: dict[str, dict[str, Any]] = {}
    for page in sorted(out_dir.glob("*.html")):
        if page.name == "index.html":
            continue
        summary_path = out_dir / page.stem / SUMMARY_FILE
        try:
            summary = json.loads(summary_path.read_text())
        except (OSError, ValueError):
            summary = {}
        entries[page.stem] = {"name": summary.get("suite", page.stem), "href": quote(page.name),
                              "summary": summary, "error": ""}
    if Path(suites_dir).is_dir():
        for path in discover_suites(Path(suites_dir)):
            try:
                s = load_suite(path, check_models=False)
            except (ValueError, OSError) as err:
                entries.setdefault(path.stem, {"name": path.stem, "href": "", "summary": {},
                                               "error": str(err)})
                continue
            entry = entries.setdefault(safe_name(s.suite), {"name": s.suite, "href": "",
                                                            "summary": {}, "error": ""})
            entry["summary"] = {"title": s.title, "paper": s.paper, "table": s.table, **entry["summary"]}
    ordered = sorted(entries.values(), key=lambda e: (str(e["summary"].get("paper", "~")),
                                                       _natural(e["name"])))
    papers: dict[str, list[dict]] = {}
    for e in ordered:
        e["tally"] = _totals([e])
        papers.setdefault(str(e["summary"].get("paper") or "unknown paper"), []).append(e)
    groups = [{"paper": paper, "entries": group, "totals": _totals(group)}
              for paper, group in papers.items()]
    path = report_path(out_dir, "index.html")
    atomic_write_text(path, _env().get_template("index.html.j2").render(
        groups=groups, totals=_totals(ordered), statuses=INDEX_STATUSES, css=CSS))
    return path


# the verdicts index.html counts per suite, in this order; the rest are summed as "other"
INDEX_STATUSES = ("within", "outside", "known deviation", "not measured", "not built")


def _natural(name: str) -> list:
    """Sort key putting table2 before table10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _totals(entries: list[dict]) -> dict[str, Any]:
    """Summed verdict counts (INDEX_STATUSES and "other") and the newest record's date."""
    out = {status: 0 for status in INDEX_STATUSES + ("other",)}
    newest = ""
    for e in entries:
        for status, n in (e["summary"].get("counts") or {}).items():
            out[status if status in INDEX_STATUSES else "other"] += n
        newest = max(newest, str(e["summary"].get("newest_record") or ""))
    out["newest_record"] = newest
    return out
