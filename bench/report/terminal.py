"""The terminal report of one suite (``run_suite.py`` prints it): a rich table of
published / measured / delta per cell, then failing cells, notes and conventions."""
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
                     conventions_used, fmt, verdict_summary)

MARKS = {WITHIN: "✓", OUTSIDE: "✗", NOTED: "~", NOT_MEASURED: "–", NO_TOLERANCE: "·",
         NO_PUBLISHED: "·", NOT_COMPARED: "s", NOT_BUILT: "n",
         NOT_APPLICABLE: ""}
STYLES = {WITHIN: "green", OUTSIDE: "bold red", NOTED: "yellow", NOT_MEASURED: "dim",
          NO_TOLERANCE: "", NO_PUBLISHED: "", NOT_COMPARED: "cyan", NOT_BUILT: "dim italic",
          NOT_APPLICABLE: "dim"}


def _cell_text(v: dict, col) -> Text:
    d = v["digits"]
    pub = fmt(v["published"], d) or "n/a"
    mark = MARKS[v["status"]]
    if v["status"] == NOT_APPLICABLE:
        return Text("", style=STYLES[v["status"]])
    if v["status"] == NOT_BUILT:
        return Text(f"{pub}\n{mark} not built", style=STYLES[v["status"]])
    if v["measured"] is None:
        return Text(f"{pub} / –\n{mark} not measured", style=STYLES[v["status"]])
    if v["status"] == NOT_COMPARED:
        second = f"{mark} {v.get('profile') or 'smoke'}, not compared"
    else:
        second = f"{mark} Δ {fmt(v['delta'], d + 1, signed=True)}" if v["delta"] is not None else mark
    return Text(f"{pub} / {fmt(v['measured'], d + 1)}\n{second}", style=STYLES[v["status"]])


def _renderables(suite: Suite, records: list[dict]) -> list:
    verdicts = cell_verdicts(suite, records)
    titles = column_titles(suite)
    canon = canonical_columns(suite, verdicts)
    profiles = sorted({r.get("profile") for r in records if r.get("profile")})

    table = Table(title=Text(f"{suite.suite}: {suite.title}"), box=box.SIMPLE, show_lines=True,
                  caption=Text("cells: published / measured, then the verdict and Δ = measured − "
                               "published;  ✓ within  ✗ outside  ~ known deviation  – not measured"
                               "  · not gated  n not built (published only)"))
    table.add_column(Text("row"))
    for cid, col in suite.columns.items():
        unit = f" [{col.unit}]" if col.unit else ""
        table.add_column(Text(titles[cid] + unit), justify="right")
        if cid in canon:
            table.add_column(Text(canon[cid] + unit), justify="right")
    by_row = defaultdict(dict)
    for v in verdicts:
        by_row[v["row"]][v["column"]] = v
    for row in suite.rows:
        cells = [Text(row.name)]
        for cid, col in suite.columns.items():
            v = by_row[row.name][cid]
            cells.append(_cell_text(v, col))
            if cid in canon:
                value, _ = canonical_cell(v)
                cells.append(Text(fmt(value, 2) if isinstance(value, float) else "–", style="dim"))
        table.add_row(*cells)

    lines = [Text(f"paper: {suite.paper}, table {suite.table}"
                  + (f" ({suite.source})" if suite.source else "")
                  + (f"; profile: {', '.join(profiles)}" if profiles else "; no result records"))]
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
        if v["status"] == NOT_MEASURED:
            missing[v["reason"]].append(f"{v['row']} / {titles[v['column']]}")
    if missing:
        lines.append(Text("\nNot measured:", style="bold"))
        for reason, cells in missing.items():
            shown = ", ".join(cells[:4]) + (f" and {len(cells) - 4} more" if len(cells) > 4 else "")
            lines.append(Text(f"  – {reason}: {shown}"))
    notes = [f"  {row.name}: not built: {row.not_built}" for row in suite.rows if not row.built]
    notes += [f"  {row.name}: {row.note}" for row in suite.rows if row.note]
    notes += [f"  ~ {row.name} / {titles.get(cid, cid)}: {why}"
              for row in suite.rows for cid, why in row.known_deviations.items()]
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


def render_terminal(suite: Suite, records: Iterable[dict], console: Optional[Console] = None) -> str:
    """Render the suite report; print it to ``console`` when given. Returns the report as
    plain text (no colour codes), whatever the terminal."""
    records = list(records)
    parts = _renderables(suite, records)
    width = console.width if console is not None else shutil.get_terminal_size((160, 24)).columns
    plain = Console(file=io.StringIO(), width=max(width, 80), color_system=None,
                    force_terminal=False, highlight=False, emoji=False)
    for part in parts:
        plain.print(part)
    if console is not None:
        for part in parts:
            console.print(part)
    return plain.file.getvalue()
