import io
import math
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from bench.compare import NO_PUBLISHED, NO_TOLERANCE, NOT_MEASURED, NOTED, OUTSIDE, WITHIN
from bench.report import (cell_verdicts, plot_suite, render_index, render_suite_html,
                          render_terminal, suite_table)
from bench.report.tables import NO_RECORD
from bench.suite import load_suite

ROOT = Path(__file__).resolve().parent.parent
AP_REASON = "accuracy needs the full profile (complexity run)"

SUITE = """
suite: demo_table1
paper: lite_hrnet
table: 1
title: Demo table
source: Sec. 4, Table 1
protocols: {coco: coco_test}
columns:
  params: {label: "#Params", unit: M, measure: params, digits: 1, tolerance: {abs: 0.05}}
  coco.mflops: {label: FLOPs, unit: M, measure: flops, protocol: coco,
                convention: lite_hrnet_paper, tolerance: {rel: 0.03}}
  coco.AP: {label: AP, measure: AP, protocol: coco, tolerance: {abs: 1.0, side: below}}
  params_loose: {label: "Params (ungated)", unit: M, measure: params, gate: false,
                 tolerance: {abs: 0.01}}
rows:
  - name: Lite-HRNet-18
    model: litehrnet_18
    published: {params: 1.1, coco.mflops: 205.2, coco.AP: 64.8, params_loose: 1.1}
    note: "<script>alert(1)</script> uses the official fusion"
  - name: Naive Lite-HRNet-18
    model: naive_litehrnet_18
    published: {params: 0.7, coco.mflops: 194.8, coco.AP: 62.5}
    known_deviations: {params: counts the stem twice}
  - name: Wider NLite-HRNet-18
    model: {name: wider_naive_litehrnet_18, drop_pointwise: 2}
    published: {params: 1.3, coco.mflops: 203.0, coco.AP: 63.3}
"""


def measured(value, unit="M", convention=None, canonical=None):
    return {"value": value, "unit": unit, "raw": None, "status": "measured", "reason": "",
            "convention": convention, "source": "measured", "canonical": canonical}


def not_measured(reason):
    return {"value": None, "unit": "", "raw": None, "status": "not_measured", "reason": reason,
            "convention": None, "source": "measured", "canonical": None}


def record(row, key, model, cells):
    return {
        "schema_version": 1, "suite": "demo_table1", "suite_file": "suites/demo_table1.yaml",
        "row": row, "row_key": key, "profile": "complexity",
        "model": {"name": model, "overrides": {}, "key": model,
                  "summary": "fusion=official; block=ccw", "spec": {}},
        "cells": cells, "details": {},
        "provenance": {"commit": "abc1234def", "dirty": True, "python": "3.11.7",
                       "packages": {"torch": "2.13.0", "fvcore": "0.1.5"}, "device": "cpu",
                       "cpu": "test cpu", "host": "testhost", "time": "2026-11-21T20:00:00+00:00"},
        "status": "ok", "error": None, "started_at": "2026-11-21T19:59:58+00:00",
        "finished_at": "2026-11-21T20:00:00+00:00", "wall_time_s": 1.25,
    }


@pytest.fixture
def suite(tmp_path):
    suites = tmp_path / "suites"
    (suites / "protocols").mkdir(parents=True)
    (suites / "protocols" / "coco_test.yaml").write_text(
        "task: pose\ndataset: coco\ninput_size: [256, 192]\nnum_joints: 17\n"
        "fidelity: {kind: paper-text, source: 'Sec. 4.1 says Adam', covers: 'no code'}\n")
    (suites / "demo_table1.yaml").write_text(SUITE)
    return load_suite(suites / "demo_table1.yaml", check_models=False)


@pytest.fixture
def records():
    return [
        record("Lite-HRNet-18", "lite-hrnet-18", "litehrnet_18", {
            "params": measured(1.13),
            "coco.mflops": measured(205.23, convention="lite_hrnet_paper",
                                    canonical={"value": 190.1, "unit": "M", "convention": "fvcore"}),
            "coco.AP": not_measured(AP_REASON),
            "params_loose": measured(1.13)}),
        record("Naive Lite-HRNet-18", "naive-lite-hrnet-18", "naive_litehrnet_18", {
            "params": measured(0.9),
            "coco.mflops": measured(250.0, convention="lite_hrnet_paper"),
            "coco.AP": not_measured(AP_REASON)}),   # params_loose cell missing
        # no record at all for the third row
    ]


def test_suite_table_shape_values_and_verdicts(suite, records):
    df = suite_table(suite, records)
    assert list(df.index) == ["Lite-HRNet-18", "Naive Lite-HRNet-18", "Wider NLite-HRNet-18"]
    assert list(df["#Params"].columns) == ["published", "measured", "delta", "verdict"]
    top = df.loc["Lite-HRNet-18"]
    assert top[("FLOPs", "published")] == 205.2
    assert top[("FLOPs", "measured")] == 205.23
    assert top[("FLOPs", "delta")] == pytest.approx(0.03)
    assert top[("FLOPs", "verdict")] == WITHIN
    assert top[("Params (ungated)", "verdict")] == NO_TOLERANCE   # 0.03 off, but not gated
    naive = df.loc["Naive Lite-HRNet-18"]
    assert naive[("FLOPs", "verdict")] == OUTSIDE
    assert naive[("#Params", "verdict")] == NOTED
    # canonical figure: its own column, no published value
    canon = "FLOPs (fvcore)"
    assert top[(canon, "measured")] == 190.1 and math.isnan(top[(canon, "published")])
    assert top[(canon, "verdict")] == NO_PUBLISHED
    # the canonical column follows the FLOPs column
    titles = list(dict.fromkeys(df.columns.get_level_values(0)))
    assert titles == ["#Params", "FLOPs", canon, "AP", "Params (ungated)"]


def test_not_measured_cells_carry_their_reason(suite, records):
    df = suite_table(suite, records)
    assert df.loc["Lite-HRNet-18", ("AP", "measured")] == AP_REASON
    assert df.loc["Lite-HRNet-18", ("AP", "verdict")] == NOT_MEASURED
    wider = df.loc["Wider NLite-HRNet-18"]
    for title in ("#Params", "FLOPs", "AP"):
        assert wider[(title, "measured")] == NO_RECORD
        assert wider[(title, "verdict")] == NOT_MEASURED
    assert df.loc["Naive Lite-HRNet-18", ("Params (ungated)", "measured")] == NO_RECORD


def test_failed_record_reports_its_error(suite, records):
    failed = record("Wider NLite-HRNet-18", "wider-nlite-hrnet-18", "wider_naive_litehrnet_18", {})
    failed.update(status="failed", error="RuntimeError: shape mismatch")
    v = {(c["row"], c["column"]): c for c in cell_verdicts(suite, records + [failed])}
    assert v[("Wider NLite-HRNet-18", "params")]["reason"] == "run failed: RuntimeError: shape mismatch"


def test_cell_verdicts_gating(suite, records):
    verdicts = cell_verdicts(suite, records)
    assert len(verdicts) == len(suite.rows) * len(suite.columns)
    by = {(v["row"], v["column"]): v for v in verdicts}
    assert by[("Naive Lite-HRNet-18", "params")]["gated"] is False       # known deviation
    assert by[("Lite-HRNet-18", "params_loose")]["gated"] is False       # gate: false
    assert by[("Lite-HRNet-18", "coco.mflops")]["allowed"] == pytest.approx(0.03 * 205.2)
    failing = [(v["row"], v["column"]) for v in verdicts if v["gated"] and v["status"] == OUTSIDE]
    assert failing == [("Naive Lite-HRNet-18", "coco.mflops")]
    assert by[("Lite-HRNet-18", "params")]["printed_match"] is True       # 1.13 -> 1.1


def test_plots_written(suite, records, tmp_path):
    paths = plot_suite(suite, records, tmp_path / "plots")
    names = sorted(p.name for p in paths)
    # params (two columns) and FLOPs have measured points; AP vs FLOPs has published points
    assert names == sorted(["params.published_vs_measured.png", "params_loose.published_vs_measured.png",
                            "coco.mflops.published_vs_measured.png", "coco.accuracy_vs_flops.png"])
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in (tmp_path / "plots").iterdir() if p.name.startswith(".")]


def test_no_records_no_scatter(suite, tmp_path):
    assert [p.name for p in plot_suite(suite, [], tmp_path)] == ["coco.accuracy_vs_flops.png"]


def test_html_report_and_index(suite, records, tmp_path):
    out = tmp_path / "reports"
    page = render_suite_html(suite, records, out_dir=out)
    assert page == out / "demo_table1.html"
    html = page.read_text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; uses the official fusion" in html
    assert "abc1234def" in html and "(dirty)" in html and "torch 2.13.0" in html
    assert "fusion=official; block=ccw" in html
    assert "wider_naive_litehrnet_18(drop_pointwise=2)" in html     # model key of a row w/o record
    assert AP_REASON in html and NO_RECORD in html
    assert "counts the stem twice" in html
    assert "Lite-HRNet&#39;s tools/summary_network.py" in html     # convention description
    assert "−1 (only falling short fails)" in html                  # AP tolerance
    # the accuracy column shows its protocol's training fidelity, the others do not
    assert html.count("paper-text: Sec. 4.1 says Adam (no code)") == 1
    srcs = [s.split('"')[0] for s in html.split('<img class="plot" src="')[1:]]
    assert len(srcs) == 4 and all((out / s).is_file() for s in srcs)
    assert not [p for p in out.rglob(".*")]                         # no temp files left

    index = render_index(out_dir=out, suites_dir=tmp_path / "suites").read_text()
    assert 'href="demo_table1.html"' in index
    assert "Demo table" in index and "1 outside" in index
    assert "1 / 5 of 8" in index      # gated: outside / not measured of all gated cells


def test_index_lists_unrendered_suites(suite, tmp_path):
    index = render_index(out_dir=tmp_path / "reports", suites_dir=tmp_path / "suites").read_text()
    assert "demo_table1" in index and "no report yet" in index and "href=" not in index


def test_terminal_report(suite, records):
    text = render_terminal(suite, records)
    for row in suite.rows:
        assert row.name in text
    # one line per row: published / measured and the verdict's mark
    lines = text.splitlines()
    assert any(line.split() == ["Lite-HRNet-18", "1.1", "/", "1.13", "✓", "205.2", "/", "205.23",
                                "✓", "190.10", "1.1", "/", "1.13", "·"] for line in lines)
    assert any("Naive Lite-HRNet-18" in line and "0.7 / 0.90 ~" in line and "194.8 / 250.00 ✗" in line
               for line in lines)
    assert "\x1b[" not in text                                      # plain text, no colours
    failing = text.split("Failing cells")[1].split("Not measured")[0]
    assert "Naive Lite-HRNet-18 / FLOPs: measured 250.00 vs published 194.8 (Δ +55.20" in failing
    assert "Lite-HRNet-18 / #Params" not in failing
    # a column with nothing to compare is folded into one line saying why
    header = next(line for line in lines if line.split()[:1] == ["row"])
    assert "\nAP: no full-profile run\n" in text and "AP" not in header
    assert NO_RECORD in text
    assert "lite_hrnet_paper" in text and "fvcore FlopCountAnalysis" in text
    assert "<script>alert(1)</script> uses the official fusion" in text


def test_terminal_prints_to_a_given_console(suite, records):
    console = Console(file=io.StringIO(), width=100, color_system=None)
    text = render_terminal(suite, records, console=console)
    printed = console.file.getvalue()
    assert "Wider NLite-HRNet-18" in printed and "✗ Naive Lite-HRNet-18 / FLOPs" in printed
    assert "✗ Naive Lite-HRNet-18 / FLOPs" in text


def test_report_imports_without_torch():
    code = "import sys; sys.modules['torch'] = None; import bench.report"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_a_row_restricted_to_some_columns_leaves_the_others_not_applicable(tmp_path):
    """Row.columns: the cells the row does not fill are neither measured nor gated, and
    the report shows them empty rather than as missing measurements."""
    from bench.compare import NOT_APPLICABLE
    suites = tmp_path / "suites"
    (suites / "protocols").mkdir(parents=True)
    (suites / "protocols" / "coco_test.yaml").write_text(
        "task: pose\ndataset: coco\ninput_size: [256, 192]\nnum_joints: 17\n"
        "fidelity: {kind: paper-text, source: 'Sec. 4.1 says Adam', covers: 'no code'}\n")
    text = SUITE.replace("    model: litehrnet_18\n", "    model: litehrnet_18\n    columns: [params]\n")
    text = text.replace("published: {params: 1.1, coco.mflops: 205.2, coco.AP: 64.8, params_loose: 1.1}",
                        "published: {params: 1.1}")
    (suites / "demo_table1.yaml").write_text(text)
    restricted = load_suite(suites / "demo_table1.yaml", check_models=False)
    recs = [record("Lite-HRNet-18", "lite-hrnet-18", "litehrnet_18", {"params": measured(1.13)})]
    verdicts = {v["column"]: v for v in cell_verdicts(restricted, recs) if v["row"] == "Lite-HRNet-18"}
    assert verdicts["params"]["status"] == WITHIN
    for cid in ("coco.mflops", "coco.AP", "params_loose"):
        assert verdicts[cid]["status"] == NOT_APPLICABLE and not verdicts[cid]["gated"]
    html = render_suite_html(restricted, recs, out_dir=tmp_path / "reports").read_text()
    first_row = html.split('<th class="sticky">Lite-HRNet-18</th>')[1].split("</tr>")[0]
    assert "not measured" not in first_row and ">1.13<" in first_row
    terminal = render_terminal(restricted, recs)
    assert NO_RECORD not in terminal.split("Naive Lite-HRNet-18")[0]


# --- cached rendering: a page is drawn again only when its inputs changed -------------

def _outputs(out: Path) -> dict[str, int]:
    """mtime (ns) of every file a render writes."""
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in sorted(out.rglob("*")) if p.is_file()}


def test_cached_render_skips_unchanged_inputs(suite, records, tmp_path):
    import copy
    from bench.report import render_suite_report
    out = tmp_path / "reports"
    first = render_suite_report(suite, records, out)
    assert first.rendered and first.path == out / "demo_table1.html"
    assert (out / "demo_table1" / ".fingerprint").is_file()
    # records rewritten by a warm run: same content, new timestamps and wall times
    rewritten = copy.deepcopy(records)
    for rec in rewritten:
        rec.update(started_at="2027-01-01T00:00:00+00:00", finished_at="2027-01-01T00:00:01+00:00",
                   wall_time_s=9.5)
        rec["provenance"]["time"] = "2027-01-01T00:00:01+00:00"
    kept = {**measured(12.5, unit="ms"), "source": "kept from the record of 2026-11-21T20:00:00+00:00 (commit abc1234def)"}
    records[1]["cells"]["latency"] = kept
    render_suite_report(suite, records, out)
    before = _outputs(out)
    # a latency cell kept from the previous record cites that record's (rewritten) time
    rewritten[1]["cells"]["latency"] = {**kept, "source": kept["source"].replace("2026-11-21T20", "2027-01-01T00")}
    again = render_suite_report(suite, reversed(rewritten), out)
    assert again.skipped and again.path == first.path
    assert _outputs(out) == before
    # a missing output draws the page again
    next(iter((out / "demo_table1").glob("*.png"))).unlink()
    assert render_suite_report(suite, records, out).rendered


def test_cached_render_redraws_on_changed_record_suite_or_protocol(suite, records, tmp_path):
    import copy
    from bench.report import render_suite_report
    out = tmp_path / "reports"
    assert render_suite_report(suite, records, out).rendered
    page = out / "demo_table1.html"
    assert render_suite_report(suite, records, out).skipped
    # a record's measured value
    changed = copy.deepcopy(records)
    changed[0]["cells"]["params"] = measured(1.37)
    mtime = page.stat().st_mtime_ns
    assert render_suite_report(suite, changed, out).rendered
    assert page.stat().st_mtime_ns != mtime and ">1.37<" in page.read_text()
    assert render_suite_report(suite, changed, out).skipped
    # a published value in the suite file
    path = Path(suite.path)
    path.write_text(path.read_text().replace("coco.mflops: 205.2,", "coco.mflops: 206.2,"))
    edited = load_suite(path, check_models=False)
    assert render_suite_report(edited, changed, out).rendered
    assert ">206.2<" in page.read_text()
    assert render_suite_report(edited, changed, out).skipped
    # the content of a protocol the suite uses
    proto = path.parent / "protocols" / "coco_test.yaml"
    proto.write_text(proto.read_text().replace("[256, 192]", "[384, 288]"))
    assert render_suite_report(load_suite(path, check_models=False), changed, out).rendered


def test_cached_render_force_and_index(suite, records, tmp_path):
    from bench.report import render_index_cached, render_suite_report
    out, suites_dir = tmp_path / "reports", tmp_path / "suites"
    render_suite_report(suite, records, out)
    assert render_index_cached(out, suites_dir).rendered
    index_mtime = (out / "index.html").stat().st_mtime_ns
    assert render_index_cached(out, suites_dir).skipped
    page_mtime = (out / "demo_table1.html").stat().st_mtime_ns
    assert render_suite_report(suite, records, out, force=True).rendered
    assert (out / "demo_table1.html").stat().st_mtime_ns != page_mtime
    # same summary: the index stays; --force-report draws it anyway
    assert render_index_cached(out, suites_dir).skipped
    assert (out / "index.html").stat().st_mtime_ns == index_mtime
    assert render_index_cached(out, suites_dir, force=True).rendered
    # a changed summary (a cell now outside) draws the index again
    records[0]["cells"]["params"] = measured(2.0)
    assert render_suite_report(suite, records, out).rendered
    assert render_index_cached(out, suites_dir).rendered


def test_cli_force_report(suite, records, tmp_path, monkeypatch, capsys):
    """run_suite.py: an unchanged suite's page is not drawn again; --force-report does."""
    import json
    from types import SimpleNamespace
    from bench import cli, pipeline
    results = tmp_path / "results"
    (results / "demo_table1").mkdir(parents=True)
    for rec in records:
        (results / "demo_table1" / f"{rec['row_key']}.complexity.json").write_text(json.dumps(rec))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pipeline, "run_suite",
                        lambda *a, **k: SimpleNamespace(records=records, wall_time_s=0.0))
    argv = [suite.path, "-q", "--no-cache", "--results-dir", str(results),
            "--reports-dir", str(tmp_path / "reports"), "--cache-dir", str(tmp_path / "cache")]
    page = tmp_path / "reports" / "demo_table1.html"
    assert cli.main(argv) == 0 and page.is_file() and (tmp_path / "reports" / "index.html").is_file()
    mtime = page.stat().st_mtime_ns
    capsys.readouterr()
    assert cli.main(argv) == 0
    assert "(unchanged)" in capsys.readouterr().out and page.stat().st_mtime_ns == mtime
    assert cli.main(argv + ["--force-report"]) == 0
    assert "(unchanged)" not in capsys.readouterr().out and page.stat().st_mtime_ns != mtime


# --- pipeline checks, means over seeds, the index ------------------------------------

def _accuracy(value, profile, **extra):
    return {"value": value, "unit": "", "raw": value, "status": "measured", "convention": None,
            "source": "runs/x.json", "profile": profile, **extra}


def test_smoke_accuracy_is_never_a_reproduction(suite, records, tmp_path):
    """A smoke run's AP stands in the pipeline checks only: not in the published-vs-measured
    cells, the accuracy plot or the terminal table (whose AP column folds into one line)."""
    from bench.report import pipeline_checks
    from bench.report.plots import accuracy_points
    smoke = record("Lite-HRNet-18", "lite-hrnet-18", "litehrnet_18", {"coco.AP": _accuracy(0.0, "smoke")})
    smoke["profile"] = "smoke"
    smoke["runs"] = {"coco": {"status": "ok", "training": {"first_loss": 0.0019, "final_loss": 0.0016},
                              "target_metrics": {"AP": 100.0, "APM": 100.0}}}
    recs = records + [smoke]
    v = {(c["row"], c["column"]): c for c in cell_verdicts(suite, recs)}[("Lite-HRNet-18", "coco.AP")]
    assert v["status"] == NOT_MEASURED and v["measured"] is None
    assert v["reason"] == (f"{AP_REASON} (smoke run: see the pipeline checks, not comparable "
                           "with the paper)")
    (check,) = pipeline_checks(suite, recs)
    assert check["row"] == "Lite-HRNet-18" and check["profile"] == "smoke"
    assert check["cells"]["coco.AP"]["value"] == 0.0
    assert check["runs"]["coco"]["target"] == {"AP": 100.0}     # the suite's own measures
    flops, ap = suite.columns["coco.mflops"], suite.columns["coco.AP"]
    published, reproduced = accuracy_points(suite, flops, ap, cell_verdicts(suite, recs))
    assert len(published) == 3 and reproduced == []

    html = render_suite_html(suite, recs, out_dir=tmp_path / "reports").read_text()
    results = html.split('<table class="results">')[1].split("</table>")[0]
    checks = html.split('id="pipeline-checks"')[1].split("</table>")[0]
    assert ">0.00<" not in results and "num smoke" not in results
    assert "Pipeline checks (smoke: not comparable with the paper)" in html
    assert ">0.00<" in checks and "0.0019 → 0.0016; oracle AP 100.0" in checks

    text = render_terminal(suite, recs)
    assert "AP: no full-profile run (smoke runs: see the pipeline checks in the report)" in text
    assert "Pipeline checks (" not in text and "0.00" not in text.split()
    after_smoke = render_terminal(suite, recs, profile="smoke")
    assert "Pipeline checks (smoke: not comparable with the paper):" in after_smoke
    assert "  Lite-HRNet-18 [smoke]: AP 0.00; coco loss 0.0019 → 0.0016" in after_smoke
    assert "AP: no full-profile run (smoke runs: listed below)" in after_smoke


def _seeded(suite_text: str, tmp_path: Path):
    suites = tmp_path / "seeded"
    (suites / "protocols").mkdir(parents=True)
    (suites / "protocols" / "coco_test.yaml").write_text(
        "task: pose\ndataset: coco\ninput_size: [256, 192]\nnum_joints: 17\n"
        "fidelity: {kind: paper-text, source: 'Sec. 4.1 says Adam', covers: 'no code'}\n")
    (suites / "demo_table1.yaml").write_text(suite_text)
    return load_suite(suites / "demo_table1.yaml", check_models=False)


def test_means_over_seeds_show_std_and_n_and_tolerance_std_widens_the_bound(tmp_path, records):
    """AP 64.8 published; three seeds average 63.2 ± 1.0: 1.6 below the mean is outside
    the 1.0 tolerance, within 2 std (2.0), outside 1 std (the tolerance, 1.0, is larger)."""
    from bench.report.plots import accuracy_points
    ap = _accuracy(63.2, "full", n=3, std=1.0, seeds=[0, 1, 2], values=[62.2, 63.2, 64.2])
    recs = [dict(records[0], cells={**records[0]["cells"], "coco.AP": ap}), records[1]]
    plain = _seeded(SUITE, tmp_path / "plain")
    v = next(v for v in cell_verdicts(plain, recs) if v["column"] == "coco.AP")
    assert (v["status"], v["n"], v["std"], v["seeds"]) == (OUTSIDE, 3, 1.0, [0, 1, 2])
    assert v["measured"] == 63.2 and v["delta"] == pytest.approx(-1.6) and v["allowed"] == 1.0

    two = _seeded(SUITE.replace("tolerance: {abs: 1.0, side: below}}",
                                "tolerance: {abs: 1.0, side: below}, tolerance_std: 2}"), tmp_path / "two")
    v = next(v for v in cell_verdicts(two, recs) if v["column"] == "coco.AP" and v["row"] == "Lite-HRNet-18")
    assert v["status"] == WITHIN and v["allowed"] == 2.0 and v["std_allowed"] == 2.0 and v["gated"]
    # a row can ask for its own k: 1 std (1.0) does not widen the 1.0 tolerance
    one = _seeded(SUITE.replace("tolerance: {abs: 1.0, side: below}}",
                                "tolerance: {abs: 1.0, side: below}, tolerance_std: 2}").replace(
        "    note: \"<script>", "    tolerance_std: {coco.AP: 1}\n    note: \"<script>"), tmp_path / "one")
    v = next(v for v in cell_verdicts(one, recs) if v["column"] == "coco.AP" and v["row"] == "Lite-HRNet-18")
    assert v["status"] == OUTSIDE and v["allowed"] == 1.0

    # a column gated by the spread alone: one seed cannot be judged, so it is not gated
    only_std = _seeded(SUITE.replace("tolerance: {abs: 1.0, side: below}}", "tolerance_std: 2}"),
                       tmp_path / "only")
    single = [dict(records[0], cells={**records[0]["cells"], "coco.AP": _accuracy(63.2, "full")})]
    v = next(v for v in cell_verdicts(only_std, single) if v["column"] == "coco.AP" and v["row"] == "Lite-HRNet-18")
    assert v["status"] == NO_TOLERANCE and not v["gated"]
    assert v["reason"] == "tolerance_std 2 needs runs with several seeds (--seeds); this cell has 1"
    v = next(v for v in cell_verdicts(only_std, recs) if v["column"] == "coco.AP" and v["row"] == "Lite-HRNet-18")
    assert v["status"] == WITHIN and v["gated"] and v["allowed"] == 2.0

    html = render_suite_html(two, recs, out_dir=tmp_path / "reports").read_text()
    assert ">63.20 ± 1.00 (n=3)<" in html and "mean of 3 seeds (0, 1, 2); k std = 2.00" in html
    assert "−1 or 2 std of the mean over seeds (the larger) (only falling short fails)" in html
    assert "64.8 / 63.20 ± 1.00 n=3 ✓" in render_terminal(two, recs)
    _, reproduced = accuracy_points(two, two.columns["coco.mflops"], two.columns["coco.AP"],
                                    cell_verdicts(two, recs))
    assert reproduced == [("Lite-HRNet-18", 205.23, 63.2, (205.2, 64.8), 1.0)]
    assert (tmp_path / "reports" / "demo_table1" / "coco.accuracy_vs_flops.png").is_file()


def test_tolerance_std_is_validated_by_the_suite_schema(tmp_path):
    from bench.suite import SuiteError
    bad = SUITE.replace("tolerance: {abs: 0.05}}", "tolerance: {abs: 0.05}, tolerance_std: 2}", 1)
    with pytest.raises(SuiteError, match=r"demo_table1.yaml:9: columns.params.tolerance_std: "
                                         r"tolerance_std applies to accuracy columns"):
        _seeded(bad, tmp_path / "a")
    bad = SUITE.replace("tolerance: {abs: 1.0, side: below}}", "tolerance: {abs: 1.0, side: below}, tolerance_std: 0}")
    with pytest.raises(SuiteError, match=r":12: columns.coco.AP.tolerance_std: Input should be greater than 0"):
        _seeded(bad, tmp_path / "b")
    bad = SUITE.replace("    known_deviations: {params: counts the stem twice}",
                        "    tolerance_std: {coco.mflops: 2}")
    with pytest.raises(SuiteError, match=r":23: rows\[1\].tolerance_std.coco.mflops: 'coco.mflops' is "
                                         r"not an accuracy column"):
        _seeded(bad, tmp_path / "c")


def test_index_groups_suites_by_paper_with_counts_and_the_newest_record(suite, records, tmp_path):
    out = tmp_path / "reports"
    render_suite_html(suite, records, out_dir=out)
    other = _seeded(SUITE.replace("suite: demo_table1", "suite: demo_table2").replace(
        "paper: lite_hrnet", "paper: hrnet"), tmp_path / "other")
    late = [dict(records[0], suite="demo_table2", finished_at="2026-12-24T08:00:00+00:00")]
    render_suite_html(other, late, out_dir=out)
    html = render_index(out_dir=out, suites_dir=tmp_path / "suites").read_text()
    assert html.index('id="paper-hrnet"') < html.index('id="paper-lite_hrnet"')
    lite = html.split('id="paper-lite_hrnet"')[1]
    row = lite.split('href="demo_table1.html"')[1].split("</tr>")[0]
    # within, outside, known deviation, not measured, not built, other; gated; newest
    cells = [c.split(">")[-1] for c in row.split("</td>")[:-1]]
    assert cells[2:] == ["2", "1", "1", "7", "0", "1", "1 / 5 of 8", "2026-11-21", "complexity"]
    assert "2026-12-24" in html.split('id="paper-hrnet"')[1].split("</table>")[0]
    assert "newest record 2026-12-24" in html


def test_committed_reports_show_no_pipeline_check_as_a_reproduction():
    """Every committed suite page: no smoke or short number among the published-vs-measured
    cells (the summary counts none as "not compared")."""
    import json
    pages = sorted((ROOT / "reports").glob("*.html"))
    summaries = sorted((ROOT / "reports").glob("*/summary.json"))
    assert len(summaries) == len(pages) - 1 > 40
    for path in summaries:
        counts = json.loads(path.read_text())["counts"]
        assert "not compared" not in counts, path
    for page in pages:
        if page.name != "index.html":
            results = page.read_text().split('<table class="results">')[1].split("</table>")[0]
            assert "num smoke" not in results, page


def test_the_verdicts_and_the_gate_import_neither_pandas_nor_rich():
    """The verdict layer sits below the reporter: --check, ci's JUnit / summary files and
    the verdicts need no table or terminal library."""
    code = ("import sys, bench.verdicts, bench.ci; "
            "from bench.verdicts import gate_failures, cell_verdicts, tolerance_text; "
            "bad = [m for m in ('pandas', 'rich', 'matplotlib', 'torch') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)
