"""The smoke gate: ``--check --profile smoke`` compares a smoke run's metrics (and the
same measures scored on the decoded targets, and the first and final losses) with the
committed baseline ``results/baselines/<suite>.smoke.json``, within ``SMOKE_TOLERANCE``;
``--update-baseline`` writes that baseline. Baselines are single-seed: they hold (and the
gate compares) the run of the protocol's own seed, also when ``--seeds`` runs more.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from .. import results as res
from ..env import provenance
from ..profiles import SMOKE
from ..suite import Suite

# smoke gate: how far a metric may move from the committed baseline before --check fails
SMOKE_TOLERANCE = {"metric_abs": 0.5, "loss_rel": 0.005}


def baseline_path(suite: Suite, results_dir: Path = res.RESULTS_DIR) -> Path:
    from ..paths import results_path
    return results_path(results_dir, "baselines", f"{res.safe_name(suite.suite)}.smoke.json")


def smoke_metrics(suite: Suite, records: Sequence[dict],
                  finished_only: bool = False) -> dict[str, dict[str, dict]]:
    """row key -> protocol key -> {accuracy measures of that protocol's columns, the
    same measures scored by the decoded target heatmaps (``target.<measure>``, the
    evaluation half of the pipeline), first_loss, final_loss} from smoke row records."""
    out: dict[str, dict[str, dict]] = {}
    for rec in records:
        if rec.get("profile") != SMOKE:
            continue
        for key, run in (rec.get("runs") or {}).items():
            if finished_only and run.get("status") != "ok":
                continue
            measures = [c.measure for c in suite.columns.values()
                        if not c.is_complexity and c.protocol == key]
            metrics = run.get("metrics") or {}
            values = {m: metrics.get(m) for m in measures}
            targets = run.get("target_metrics") or {}
            values.update({f"target.{m}": targets.get(m) for m in measures})
            training = run.get("training") or {}
            values["first_loss"] = training.get("first_loss")
            values["final_loss"] = training.get("final_loss")
            out.setdefault(rec["row_key"], {})[key] = values
    return out


def write_smoke_baseline(suite: Suite, records: Sequence[dict], path: Path) -> Path:
    """Write (or update: rows not in ``records`` are kept) the suite's smoke baseline."""
    rows = {}
    if Path(path).is_file():
        try:
            rows = json.loads(Path(path).read_text()).get("rows") or {}
        except ValueError:
            rows = {}
    # a run that did not finish (or a seed --seeds left out) keeps its earlier entry
    for row_key, protocols in smoke_metrics(suite, records, finished_only=True).items():
        rows[row_key] = {**(rows.get(row_key) or {}), **protocols}
    rows = {row.key: rows[row.key] for row in suite.rows if row.key in rows}
    res.atomic_write_json(path, {
        "suite": suite.suite, "profile": SMOKE,
        "about": "metrics of the smoke profile (generated data, fixed seeds, CPU); "
                 "run_suite.py --check --profile smoke fails when a metric moves beyond "
                 "the tolerance. Regenerate with --profile smoke --update-baseline after "
                 "an intended change, and say why in the commit.",
        "tolerance": SMOKE_TOLERANCE,
        "rows": rows,
        "provenance": provenance(),
    })
    return Path(path)


def smoke_gate_failures(suite: Suite, records: Sequence[dict], path: Path) -> list[str]:
    """Messages for every smoke metric that left the baseline's tolerance (or is missing)."""
    path = Path(path)
    if not path.is_file():
        return [f"CHECK FAILED {suite.suite}: no smoke baseline at {path}; create it with "
                f"--profile smoke --update-baseline"]
    try:
        base = json.loads(path.read_text())
        tol = {**SMOKE_TOLERANCE, **(base.get("tolerance") or {})}
        expected_rows = base["rows"]
    except (ValueError, KeyError, TypeError) as err:
        return [f"CHECK FAILED {suite.suite}: unreadable smoke baseline {path}: {err}"]
    current = smoke_metrics(suite, records)
    failures = []
    # the baseline holds the run of each protocol's own seed (with --seeds, the others are
    # recorded beside it but not gated): a run of it that did not finish is one failure
    unfinished = {(rec.get("row_key"), key): run for rec in records if rec.get("profile") == SMOKE
                  for key, run in (rec.get("runs") or {}).items() if run.get("status") != "ok"}
    for row_key, protocols in current.items():
        if row_key not in expected_rows:
            failures.append(f"CHECK FAILED {suite.suite}: row {row_key!r} has no entry in {path}")
            continue
        for key, values in protocols.items():
            run = unfinished.get((row_key, key))
            expected = expected_rows[row_key].get(key, {})
            if run is not None and any(v is not None for v in expected.values()):
                failures.append(f"CHECK FAILED {suite.suite}: row {row_key!r}, {key}: the smoke "
                                f"run ({run.get('record')}) is {run.get('status')}: "
                                f"{run.get('error') or 'no error text'}")
                continue
            for name in sorted(set(values) | set(expected)):
                got, want = values.get(name), expected.get(name)
                if got is None and want is None:
                    continue
                if got is None or want is None:
                    failures.append(f"CHECK FAILED {suite.suite}: row {row_key!r}, {key}.{name}: "
                                    f"baseline {want}, measured {got}")
                    continue
                allowed = tol["loss_rel"] * abs(want) if name.endswith("loss") else tol["metric_abs"]
                if abs(got - want) > allowed + 1e-12:
                    failures.append(
                        f"CHECK FAILED {suite.suite}: row {row_key!r}, {key}.{name}: baseline "
                        f"{want:.6g}, measured {got:.6g}, allowed ±{allowed:.3g} ({path})")
    return failures



def find_baseline(suite: Suite, results_dir: Path = res.RESULTS_DIR) -> Path:
    """The baseline ``--check --profile smoke`` compares with: ``baseline_path`` when it
    exists; for a suite HRBench ships without one there, the baseline shipped beside it
    (an installed package holds them); otherwise ``baseline_path`` (whose absence the
    gate reports)."""
    from ..paths import SHIPPED_BASELINES_DIR, is_shipped_suite
    own = baseline_path(suite, results_dir)
    shipped = SHIPPED_BASELINES_DIR / own.name
    if not own.is_file() and suite.path and is_shipped_suite(suite.path) and shipped.is_file():
        return shipped
    return own
