"""HTML reports: one self-contained page per suite (reports/<suite>.html, its plots in
reports/<suite>/) and reports/index.html listing them with their verdict summaries."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from ..results import atomic_write_json, atomic_write_text, safe_name
from ..suite import Suite, discover_suites, load_suite
from .plots import plot_suite
from .tables import (canonical_cell, canonical_columns, cell_verdicts, column_titles,
                     conventions_used, fmt, records_by_row, tolerance_text,
                     verdict_summary)

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
    if v["allowed"] is not None:
        tip += f"; allowed {fmt(v['allowed'], d + 1)}"
    if v["printed_match"]:
        tip += "; matches the printed value when rounded"
    return {"published": fmt(v["published"], d) or "–", "measured": fmt(v["measured"], d + 1),
            "delta": fmt(v["delta"], d + 1, signed=True), "status": v["status"],
            "css": CSS[v["status"]], "reason": v["reason"], "tip": tip, "canonical": False}


def _provenance(rec: dict) -> dict[str, Any]:
    p = rec.get("provenance") or {}
    packages = p.get("packages") or {}
    return {"row": rec.get("row", ""), "profile": rec.get("profile", ""),
            "status": rec.get("status", ""), "error": rec.get("error") or "",
            "commit": (p.get("commit") or "unknown"), "dirty": p.get("dirty"),
            "device": p.get("device") or "", "cpu": p.get("cpu") or "", "host": p.get("host") or "",
            "python": p.get("python") or "", "time": p.get("time") or rec.get("finished_at") or "",
            "wall": "" if rec.get("wall_time_s") is None else f"{rec['wall_time_s']:.1f} s",
            "packages": ", ".join(f"{k} {v}" for k, v in sorted(packages.items())),
            "file": Path(rec["_path"]).name if rec.get("_path") else ""}


def _context(suite: Suite, records: list[dict], plots: list[str]) -> dict[str, Any]:
    verdicts = cell_verdicts(suite, records)
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
                    "tolerance": tolerance_text(col)} for cid, col in suite.columns.items()]
    conventions = [{"name": n, "description": c.description if c else "unknown convention",
                    "units": "" if c is None else ("binary (2^20, 2^30)" if c.unit_base == 1024 else "decimal")}
                   for n, c in conventions_used(suite, verdicts).items()]
    return {"suite": suite, "columns": columns, "rows": rows, "column_info": column_info,
            "conventions": conventions, "summary": verdict_summary(verdicts),
            "css": CSS, "plots": plots,
            "profiles": sorted({r.get("profile") for r in records if r.get("profile")}),
            "provenance": [_provenance(r) for r in records if r.get("suite", suite.suite) == suite.suite]}


def render_suite_html(suite: Suite, records: Iterable[dict], out_dir="reports") -> Path:
    """Write ``<out_dir>/<suite>.html`` with its plots (and a summary.json the index
    reads) under ``<out_dir>/<suite>/``; returns the page's path."""
    records = list(records)
    out_dir = Path(out_dir)
    name = safe_name(suite.suite)
    assets = out_dir / name
    assets.mkdir(parents=True, exist_ok=True)
    pngs = plot_suite(suite, records, assets)
    for stale in set(assets.glob("*.png")) - set(pngs):
        stale.unlink()
    ctx = _context(suite, records, [f"{quote(name)}/{quote(p.name)}" for p in pngs])
    page = out_dir / f"{name}.html"
    atomic_write_text(page, _env().get_template("suite.html.j2").render(**ctx))
    atomic_write_json(assets / SUMMARY_FILE, {
        "suite": suite.suite, "title": suite.title, "paper": suite.paper, "table": suite.table,
        "profiles": ctx["profiles"], **ctx["summary"]})
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
    ordered = sorted(entries.values(), key=lambda e: (str(e["summary"].get("paper", "~")), e["name"]))
    path = out_dir / "index.html"
    atomic_write_text(path, _env().get_template("index.html.j2").render(entries=ordered, css=CSS))
    return path
