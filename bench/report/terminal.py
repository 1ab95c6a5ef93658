"""The terminal report of one suite (``run_suite.py`` prints it): a compact rich table
(one line per row: published / measured and the verdict per cell; columns with nothing to
compare folded into one line that says why), then the pipeline checks of a smoke or short
run, failing cells, notes and conventions."""
from __future__ import annotations

import io
import shutil
from collections import defaultdict
from typing import Iterable, Optional

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from ..compare import NO_PUBLISHED, NO_TOLERANCE, NOT_APPLICABLE, NOT_BUILT, NOT_COMPARED, NOT_MEASURED, NOTED, OUTSIDE, WITHIN
from ..suite import Suite
from .tables import (canonical_cell, canonical_columns, cell_verdicts, column_titles,
                     conventions_used, fmt, fmt_stat, folded_columns, pipeline_checks,
                     verdict_summary)

MARKS = {WITHIN: "✓", OUTSIDE: "✗", NOTED: "~", NOT_MEASURED: "–", NO_TOLERANCE: "·",
         NO_PUBLISHED: "·", NOT_COMPARED: "s", NOT_BUILT: "n",
         NOT_APPLICABLE: ""}
STYLES = {WITHIN: "green", OUTSIDE: "bold red", NOTED: "yellow", NOT_MEASURED: "dim",
          NO_TOLERANCE: "", NO_PUBLISHED: "", NOT_COMPARED: "cyan", NOT_BUILT: "dim italic",
          NOT_APPLICABLE: "dim"}


def _cell_text(v: dict) -> Text:
    """One line: "published / measured mark" (the Δ and bound of a failing cell are
    listed under the table)."""
    d = v["digits"]
    pub = fmt(v["published"], d) or "n/a"
    mark = MARKS[v["status"]]
    style = STYLES[v["status"]]
    if v["status"] == NOT_APPLICABLE:
        return Text("", style=style)
    if v["status"] == NOT_BUILT:
        return Text(f"{pub} {mark}", style=style)
    if v["measured"] is None:
        return Text(f"{pub} / – {mark}", style=style)
    measured = fmt(v["measured"], d + 1)
    if v["std"] is not None and (v["n"] or 0) > 1:     # a mean over seeds
        measured += f" ± {fmt(v['std'], d + 1)} n={v['n']}"
    return Text(f"{pub} / {measured} {mark}", style=style)


def _pipeline_lines(suite: Suite, checks: list[dict], titles: dict[str, str]) -> list[Text]:
    """One line per (row, profile) of the pipeline checks: accuracy values, the losses."""
    lines = []
    for c in checks:
        values = []
        for cid, cell in c["cells"].items():
            if cell["value"] is None:
                continue
            digits = suite.printed_digits(next(r for r in suite.rows if r.key == c["row_key"]), cid)
            values.append(f"{titles[cid]} {fmt_stat(cell['value'], (digits or 1) + 1, cell['std'], cell['n'])}")
        losses = [f"{key} loss {run['first_loss']:.3g} → {run['final_loss']:.3g}"
                  for key, run in c["runs"].items()
                  if run["first_loss"] is not None and run["final_loss"] is not None]
        failed = [f"{key} {run['status']}" for key, run in c["runs"].items() if run["status"] != "ok"]
        seeds = sorted({s for run in c["runs"].values() for s in run["seeds"]}, key=str)
        if seeds:
            failed.append(f"seeds {', '.join(seeds)}")
        text = ", ".join(values) or "no accuracy"
        extra = "; ".join(losses + failed)
        lines.append(Text(f"  {c['row']} [{c['profile']}]: {text}" + (f"; {extra}" if extra else "")))
    return lines


def _renderables(suite: Suite, records: list[dict], profile: Optional[str] = None) -> list:
    verdicts = cell_verdicts(suite, records)
    titles = column_titles(suite)
    canon = canonical_columns(suite, verdicts)
    profiles = sorted({r.get("profile") for r in records if r.get("profile")})
    checks = pipeline_checks(suite, records)
    shown_checks = [c for c in checks if profile is not None and c["profile"] == profile]
    checked = sorted({c["profile"] for c in checks})
    hint = ""
    if checked:
        where = "listed below" if shown_checks else "see the pipeline checks in the report"
        hint = f" ({', '.join(checked)} runs: {where})"
    folded = folded_columns(suite, verdicts, hint)

    table = Table(title=Text(f"{suite.suite}: {suite.title}"), box=box.SIMPLE_HEAD,
                  show_lines=False, pad_edge=False)
    # nothing is cut off: a terminal too narrow for one line per row wraps the cells
    table.add_column(Text("row"))
    shown = [cid for cid in suite.columns if cid not in folded]
    for cid in shown:
        col = suite.columns[cid]
        unit = f" [{col.unit}]" if col.unit else ""
        table.add_column(Text(titles[cid] + unit), justify="right")
        if cid in canon:   # right after its column: the convention alone says which
            convention = (canon[cid].rsplit("(", 1)[-1].rstrip(")") if "(" in canon[cid]
                          else canon[cid])
            table.add_column(Text(f"({convention}){unit}"), justify="right")
    by_row = defaultdict(dict)
    for v in verdicts:
        by_row[v["row"]][v["column"]] = v
    for row in suite.rows:
        cells = [Text(row.name)]
        for cid in shown:
            v = by_row[row.name][cid]
            cells.append(_cell_text(v))
            if cid in canon:
                value, _ = canonical_cell(v)
                cells.append(Text(fmt(value, 2) if isinstance(value, float) else "–", style="dim"))
        table.add_row(*cells)

    spread = " (mean ± std over seeds)" if any(v["std"] is not None for v in verdicts) else ""
    lines = [Text(f"published / measured{spread}:  ✓ within  ✗ outside  ~ known deviation  "
                  "– not measured  · not gated  n not built", style="dim")]
    if folded:
        by_text = defaultdict(list)
        for cid, text in folded.items():
            by_text[text].append(titles[cid])
        lines += [Text(f"{', '.join(names)}: {text}") for text, names in by_text.items()]
    lines.append(Text(f"paper: {suite.paper}, table {suite.table}"
                      + (f" ({suite.source})" if suite.source else "")
                      + (f"; profile: {', '.join(profiles)}" if profiles else "; no result records")))
    if shown_checks:
        lines.append(Text(f"\nPipeline checks ({profile}: not comparable with the paper):", style="bold"))
        lines += _pipeline_lines(suite, shown_checks, titles)
    failing = [v for v in verdicts if v["status"] == OUTSIDE]
    if failing:
        lines.append(Text("\nFailing cells (outside tolerance):", style="bold red"))
        for v in failing:
            d = v["digits"]
            gate = "" if v["gated"] else " (not gated)"
            lines.append(Text(f"  ✗ {v['row']} / {titles[v['column']]}: measured "
                              f"{fmt(v['measured'], d + 1)} vs published {fmt(v['published'], d)} "
                              f"(Δ {fmt(v['delta'], d + 1, signed=True)}, allowed "
                              f"{fmt(v['allowed'], d + 1)}){gate}"))
    missing = defaultdict(list)
    for v in verdicts:
        if v["status"] == NOT_MEASURED and v["column"] not in folded:
            missing[v["reason"]].append(f"{v['row']} / {titles[v['column']]}")
    if missing:
        lines.append(Text("\nNot measured:", style="bold"))
        for reason, cells in missing.items():
            shown = ", ".join(cells[:4]) + (f" and {len(cells) - 4} more" if len(cells) > 4 else "")
            lines.append(Text(f"  – {reason}: {shown}"))
    notes = [f"  {row.name}: not built: {row.not_built.strip()}" for row in suite.rows if not row.built]
    notes += [f"  {row.name}: {row.note.strip()}" for row in suite.rows if row.note]
    notes += [f"  ~ {row.name} / {titles.get(cid, cid)}: {why.strip()}"
              for row in suite.rows for cid, why in row.known_deviations.items()]
    # released weights are compared with the model zoo's number for them (Suite.reference)
    notes += [f"  r {v['row']} / {titles[v['column']]}: released weights, shown against the "
              f"model zoo's {fmt(v['published'], v['digits'])}; the paper prints "
              f"{fmt(v['paper'], v['digits'])}"
              for v in verdicts if v.get("reference") == "model zoo"
              and v.get("paper") is not None and v["paper"] != v["published"]]
    if notes or suite.notes:
        lines.append(Text("\nNotes:", style="bold"))
        lines += [Text(f"  {suite.notes.strip()}")] if suite.notes else []
        lines += [Text(n) for n in notes]
    conventions = conventions_used(suite, verdicts)
    if conventions:
        lines.append(Text("\nCounting conventions:", style="bold"))
        for name, conv in conventions.items():
            if conv is None:
                lines.append(Text(f"  {name}: unknown convention"))
            else:
                units = "binary M/G (2**20, 2**30)" if conv.unit_base == 1024 else "decimal M/G"
                lines.append(Text(f"  {name} ({units}): {conv.description}"))
    s = verdict_summary(verdicts)
    lines.append(Text("\n" + ", ".join(f"{n} {status}" for status, n in s["counts"].items())
                      + f"; gated cells: {s['gated']}, outside: {s['gated_outside']}, "
                        f"not measured: {s['gated_not_measured']}"))
    return [table, Group(*lines)]


def render_terminal(suite: Suite, records: Iterable[dict], console: Optional[Console] = None,
                    profile: Optional[str] = None) -> str:
    """Render the suite report; print it to ``console`` when given. Returns the report as
    plain text (no colour codes), whatever the terminal. ``profile`` is the profile just
    run: when it is a pipeline check (smoke, short) its numbers are listed under the
    table; otherwise the table only says where they are."""
    records = list(records)
    parts = _renderables(suite, records, profile)
    width = console.width if console is not None else shutil.get_terminal_size((160, 24)).columns
    plain = Console(file=io.StringIO(), width=max(width, 80), color_system=None,
                    force_terminal=False, highlight=False, emoji=False)
    for part in parts:
        plain.print(part)
    if console is not None:
        for part in parts:
            console.print(part)
    return plain.file.getvalue()
