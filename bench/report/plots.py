"""Plots of one suite for the HTML report: published vs measured per complexity column
(y = x and the tolerance band), accuracy vs FLOPs per protocol (like Lite-HRNet's
Fig. 4; full-profile accuracy only, with ± 1 std error bars for a mean over seeds), and
measured latency vs FLOPs per protocol (one series per timed batch size), where a model
that is slower than its FLOPs suggest stands above the others. Drawn on Agg canvases
directly, so no pyplot state or display is touched."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..complexity.conventions import CANONICAL
from ..compare import NOTED, OUTSIDE, WITHIN
from ..measures import structure_measure_names
from ..results import safe_name
from ..suite import Column, Suite
from .tables import cell_verdicts

COLOURS = {WITHIN: "tab:green", OUTSIDE: "tab:red", NOTED: "tab:orange"}


def _figure(size=(5.5, 5.0)):
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig: Figure, path: Path) -> Path:
    from ..results import atomic_write
    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=110))
    return path


def _axis_label(col: Column) -> str:
    unit = f" [{col.unit}]" if col.unit else ""
    conv = f", {col.convention}" if col.convention else ""
    return f"{col.title}{unit}{conv}"


def _scatter(suite: Suite, col: Column, points: list[dict], path: Path) -> Path:
    fig, ax = _figure()
    x = np.array([p["published"] for p in points])
    y = np.array([p["measured"] for p in points])
    lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
    log = lo > 0 and hi / lo > 20
    pad = (hi / lo) ** 0.05 if log else 0.05 * (hi - lo or abs(hi) or 1.0)
    lo, hi = (lo / pad, hi * pad) if log else (lo - pad, hi + pad)
    xs = np.geomspace(lo, hi, 200) if log else np.linspace(lo, hi, 200)
    tol = col.tolerance if col.gate else None
    if tol is not None:
        # a "printed" bound depends on the digits: draw the band of the least precise point
        digits = min(p["digits"] for p in points)
        allowed = np.array([tol.allowed(v, digits) for v in xs])
        lower = xs - allowed if tol.side != "above" else np.full_like(xs, lo)
        upper = xs + allowed if tol.side != "below" else np.full_like(xs, hi)
        ax.fill_between(xs, lower, upper, color="tab:blue", alpha=0.12, label="tolerance")
    ax.plot(xs, xs, color="tab:blue", lw=1, label="y = x")
    for p in points:
        ax.scatter(p["published"], p["measured"], color=COLOURS.get(p["status"], "tab:gray"), zorder=3)
        ax.annotate(p["row"], (p["published"], p["measured"]), fontsize=7,
                    xytext=(4, -4), textcoords="offset points", va="top")
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(f"published {_axis_label(col)}")
    ax.set_ylabel("measured")
    ax.set_title(f"{suite.suite}: {col.title}", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def accuracy_points(suite: Suite, flops: Column, acc: Column, verdicts: list[dict]
                    ) -> tuple[list[tuple], list[tuple]]:
    """Points of an accuracy-vs-FLOPs plot: published (row, flops, accuracy) and
    reproduced (row, flops, accuracy, published point or None, std over seeds or None)."""
    cells = {(v["row"], v["column"]): v for v in verdicts}
    published, reproduced = [], []
    for row in suite.rows:
        f, a = cells[(row.name, flops.id)], cells[(row.name, acc.id)]
        pub = (f["published"], a["published"]) if None not in (f["published"], a["published"]) else None
        if pub:
            published.append((row.name, *pub))
        # only comparable (full-profile) accuracy reaches the verdicts' "measured": a
        # smoke or short run is never drawn as a reproduction
        if a["measured"] is not None:
            x = f["measured"] if f["measured"] is not None else f["published"]
            if x is not None:
                reproduced.append((row.name, x, a["measured"], pub, a["std"] if (a["n"] or 0) > 1 else None))
    return published, reproduced


def _accuracy_vs_flops(suite: Suite, flops: Column, acc: Column, verdicts: list[dict],
                       path: Path) -> Path | None:
    published, reproduced = accuracy_points(suite, flops, acc, verdicts)
    if not published and not reproduced:
        return None
    fig, ax = _figure((6.5, 4.8))
    if published:
        ax.scatter([p[1] for p in published], [p[2] for p in published], marker="o",
                   color="tab:blue", label="published", zorder=3)
        for name, x, y in published:
            ax.annotate(name, (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
    if reproduced:
        ax.scatter([r[1] for r in reproduced], [r[2] for r in reproduced], marker="*", s=90,
                   color="tab:red", label="reproduced", zorder=4)
        spread = [r for r in reproduced if r[4] is not None]
        if spread:   # a mean over seeds: ± one standard deviation
            ax.errorbar([r[1] for r in spread], [r[2] for r in spread], yerr=[r[4] for r in spread],
                        fmt="none", ecolor="tab:red", elinewidth=1, capsize=3, zorder=4,
                        label="± 1 std over seeds")
        for name, x, y, pub, _ in reproduced:
            if pub:
                ax.plot([pub[0], x], [pub[1], y], color="gray", lw=0.8, ls="--")
            else:
                ax.annotate(name, (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xlabel(_axis_label(flops))
    ax.set_ylabel(_axis_label(acc))
    ax.set_title(f"{suite.suite}: {acc.title} vs {flops.title} ({flops.protocol})", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _latency_vs_flops(suite: Suite, flops: Column, latencies: list[Column], verdicts: list[dict],
                      path: Path) -> Path | None:
    cells = {(v["row"], v["column"]): v for v in verdicts}
    series = []
    for col in latencies:
        points = []
        for row in suite.rows:
            f, t = cells[(row.name, flops.id)], cells[(row.name, col.id)]
            # the canonical count: rows of one table may be counted under different
            # conventions (per-row ``conventions``), one axis needs one
            x = (f["canonical"] or {}).get("value") or f["measured"]
            if x is not None and t["measured"] is not None and x > 0 and t["measured"] > 0:
                points.append((row.name, x, t["measured"]))
        if points:
            series.append((col, points))
    if not series:
        return None
    fig, ax = _figure((6.5, 4.8))
    for (col, points), marker in zip(series, "os^Dv"):
        ax.scatter([p[1] for p in points], [p[2] for p in points], marker=marker, zorder=3,
                   label=f"{col.title} (batch {col.batch})")
        for name, x, y in points:
            ax.annotate(name, (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    unit = f" [{flops.unit}]" if flops.unit else ""
    ax.set_xlabel(f"{flops.title}{unit}, canonical count ({CANONICAL})")
    ax.set_ylabel("median forward latency [ms]")
    ax.set_title(f"{suite.suite}: latency vs {flops.title} ({flops.protocol})", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


def plot_suite(suite: Suite, records: Iterable[dict], out_dir) -> list[Path]:
    """Write the suite's PNG plots into ``out_dir``; plots without data are skipped."""
    from ..paths import report_path
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    verdicts = cell_verdicts(suite, records)
    paths = []
    for cid, col in suite.columns.items():
        points = [v for v in verdicts if v["column"] == cid
                  and v["published"] is not None and v["measured"] is not None]
        # a hyperparameter read from the model (kernel size, groups) is equal or not: a
        # published-vs-measured scatter says nothing the table does not
        if col.is_complexity and col.measure not in structure_measure_names() and points:
            paths.append(_scatter(suite, col, points, report_path(out_dir, f"{safe_name(cid)}.published_vs_measured.png")))
    for key in suite.protocols:
        flops = next((c for c in suite.columns.values() if c.measure == "flops" and c.protocol == key), None)
        acc = next((c for c in suite.columns.values() if not c.is_complexity and c.protocol == key), None)
        if flops and acc:
            path = _accuracy_vs_flops(suite, flops, acc, verdicts,
                                      report_path(out_dir, f"{safe_name(key)}.accuracy_vs_flops.png"))
            if path:
                paths.append(path)
        latencies = [c for c in suite.columns.values() if c.measure == "latency_ms" and c.protocol == key]
        if flops and latencies:
            path = _latency_vs_flops(suite, flops, latencies, verdicts,
                                     report_path(out_dir, f"{safe_name(key)}.latency_vs_flops.png"))
            if path:
                paths.append(path)
    return paths
