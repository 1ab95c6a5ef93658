"""Variance over seeds (--seeds): one training job per seed, records keyed by seed (the
protocol's own seed keeps the plain path), accuracy cells holding mean, std and n, the
smoke gate comparing the protocol's seed only."""
import json
import statistics

import pytest

from bench import results as res
from bench.cli import main
from bench.runner.cells import accuracy_cell
from bench.runner.context import RunContext
from bench.runner.jobs import build_job, job_seeds
from bench.runner.smoke_gate import smoke_gate_failures, write_smoke_baseline
from bench.suite import load_suite
from conftest import REPO

SUITES = REPO / "suites"


@pytest.fixture(scope="module")
def table6():
    return load_suite(SUITES / "lite_hrnet_table6.yaml", check_models=False)


def test_the_protocols_own_seed_keeps_the_plain_record_path(table6, tmp_path):
    protocol = table6.protocols["coco"]
    assert protocol.seed == 0
    assert job_seeds(protocol) == [None] and job_seeds(protocol, (0, 1, 2)) == [None, 1, 2]
    assert job_seeds(protocol.model_copy(update={"seed": 5}), (0, 5, 0)) == [0, None]
    assert res.run_record_path("coco_x", "m", "smoke", tmp_path) == tmp_path / "runs/coco_x/m.smoke.json"
    assert res.run_record_path("coco_x", "m", "smoke", tmp_path, seed=1) == \
        tmp_path / "runs/coco_x/m.smoke.seed1.json"
    row = next(r for r in table6.rows if r.name == "Lite-HRNet-18")
    ctx = RunContext(profile="smoke", results_dir=tmp_path / "results", work_dir=tmp_path / "work")
    plain, seeded = build_job(row, protocol, ctx, None), build_job(row, protocol, ctx, None, seed=2)
    assert plain.seed is None and plain.record_path.endswith("litehrnet_18.smoke.json")
    assert seeded.seed == 2 and seeded.record_path.endswith("litehrnet_18.smoke.seed2.json")
    assert seeded.work_dir == str(tmp_path / "work/smoke/coco_256x192_lite_hrnet/litehrnet_18.seed2")
    assert seeded.resolved()["seed"] == 2 and plain.resolved()["seed"] == 0
    assert seeded.fingerprint() != plain.fingerprint()
    # asking for seed 0 explicitly is the plain job: its records stay "done"
    assert build_job(row, protocol, ctx, None, *job_seeds(protocol, (0,))).fingerprint() == plain.fingerprint()


def _run(table6, results, seed, metrics, status="ok"):
    path = res.run_record_path("coco_256x192_lite_hrnet", "litehrnet_18", "full", results, seed=seed)
    res.write_record(path, {"status": status, "metrics": metrics, "error": "boom" if status != "ok" else None})
    return path


def test_accuracy_cells_hold_the_mean_std_and_n_of_the_seeds(table6, tmp_path):
    results = tmp_path / "results"
    row = next(r for r in table6.rows if r.name == "Lite-HRNet-18")
    col, protocol = table6.columns["coco.AP"], table6.protocols["coco"]
    _run(table6, results, None, {"AP": 64.0})
    _run(table6, results, 1, {"AP": 65.0})
    _run(table6, results, 2, {"AP": 63.5})
    cell = accuracy_cell(col, protocol, row, RunContext(profile="complexity", results_dir=results))
    assert cell["value"] == 64.0 and "n" not in cell            # no --seeds: the plain run only
    cell = accuracy_cell(col, protocol, row, RunContext(profile="complexity", results_dir=results,
                                                        seeds=(0, 1, 2)))
    assert cell["value"] == pytest.approx(64.1666667) and cell["n"] == 3
    assert cell["std"] == pytest.approx(statistics.stdev([64.0, 65.0, 63.5]))
    assert cell["seeds"] == [0, 1, 2] and cell["values"] == [64.0, 65.0, 63.5]
    assert cell["profile"] == "full" and cell["sources"][1].endswith("litehrnet_18.full.seed1.json")
    # a seed without a result: the mean of the others, the missing one named with its reason
    _run(table6, results, 2, {}, status="failed")
    cell = accuracy_cell(col, protocol, row, RunContext(profile="complexity", results_dir=results,
                                                        seeds=(0, 1, 2, 3)))
    assert cell["value"] == 64.5 and cell["n"] == 2 and cell["std"] == pytest.approx(0.7071068)
    assert cell["missing_seeds"]["2"] == ("the full run of litehrnet_18 (seed 2) on "
                                          "coco_256x192_lite_hrnet failed: boom")
    assert cell["missing_seeds"]["3"].startswith("no full-profile result for litehrnet_18 on "
                                                 "coco_256x192_lite_hrnet with seed 3; no --data-root")
    # no seed with a result: not measured, every seed's reason
    cell = accuracy_cell(col, protocol, row, RunContext(profile="complexity", results_dir=results,
                                                        seeds=(2, 3)))
    assert cell["status"] == "not_measured" and cell["reason"].startswith("seed 2: the full run")


def _smoke_record(run):
    return {"profile": "smoke", "row_key": "lite-hrnet-18", "runs": {"coco": run}}


def test_the_smoke_gate_and_baseline_use_the_protocols_seed_only(table6, tmp_path):
    baseline = tmp_path / "base.json"
    ok = {"status": "ok", "metrics": {"AP": 0.1, "AP50": 0.2, "AP75": 0.0, "AR": 0.3},
          "target_metrics": {"AP": 100.0, "AP50": 100.0, "AP75": 100.0, "AR": 100.0},
          "training": {"first_loss": 2e-3, "final_loss": 1.5e-3}, "seed": 0,
          "seeds": {"0": {}, "1": {}}}
    write_smoke_baseline(table6, [_smoke_record(ok)], baseline)
    assert json.loads(baseline.read_text())["rows"]["lite-hrnet-18"]["coco"]["AP"] == 0.1
    assert smoke_gate_failures(table6, [_smoke_record(ok)], baseline) == []
    # --seeds 1 2 leave out seed 0: one clear failure, and the baseline keeps its entry
    left_out = {"status": "not run", "record": "runs/coco/litehrnet_18.smoke.json",
                "error": "--seeds 1 2 leave out the protocol's own seed 0", "seeds": {"1": {}, "2": {}}}
    assert smoke_gate_failures(table6, [_smoke_record(left_out)], baseline) == [
        "CHECK FAILED lite_hrnet_table6: row 'lite-hrnet-18', coco: the smoke run "
        "(runs/coco/litehrnet_18.smoke.json) is not run: --seeds 1 2 leave out the protocol's own seed 0"]
    write_smoke_baseline(table6, [_smoke_record(left_out)], baseline)
    assert json.loads(baseline.read_text())["rows"]["lite-hrnet-18"]["coco"]["AP"] == 0.1


def test_seeds_on_the_smoke_profile_write_one_record_per_seed_and_the_report_shows_mean_and_std(
        tmp_path, capsys):
    """`--seeds 0 1` on the smoke profile of the cheapest suite (LSP, one row, one protocol):
    two run records, the row's cells hold the mean ± std over both, and the report and the
    terminal show it among the pipeline checks."""
    args = [str(SUITES / "lsp_sanity.yaml"), "--profile", "smoke", "--seeds", "0", "1",
            "--results-dir", str(tmp_path / "results"), "--reports-dir", str(tmp_path / "reports"),
            "--work-dir", str(tmp_path / "work"), "--cache-dir", str(tmp_path / "cache")]
    assert main(args) == 0
    out = capsys.readouterr().out
    runs = tmp_path / "results" / "runs" / "lspet_128x128_cpu"
    assert sorted(p.name for p in runs.iterdir()) == ["small_hrnet_w16.smoke.json",
                                                      "small_hrnet_w16.smoke.seed1.json"]
    first, second = (json.loads((runs / n).read_text()) for n in sorted(p.name for p in runs.iterdir()))
    assert (first["settings"]["seed"], second["settings"]["seed"]) == (0, 1)
    assert first["training"]["first_loss"] != second["training"]["first_loss"]   # other weights
    record = json.loads((tmp_path / "results" / "lsp_sanity" / "small-hrnet-w16.smoke.json").read_text())
    pck = record["cells"]["pck"]
    values = [first["metrics"]["PCK@0.2"], second["metrics"]["PCK@0.2"]]
    assert pck["n"] == 2 and pck["seeds"] == [0, 1] and pck["values"] == values
    assert pck["value"] == pytest.approx(statistics.fmean(values))
    assert pck["std"] == pytest.approx(statistics.stdev(values))
    assert sorted(record["runs"]["lsp"]["seeds"]) == ["0", "1"]
    shown = f"{pck['value']:.2f} ± {pck['std']:.2f} (n=2)"
    html = (tmp_path / "reports" / "lsp_sanity.html").read_text()
    assert f">{shown}<" in html.split('id="pipeline-checks"')[1]
    assert shown not in html.split('id="pipeline-checks"')[0]
    assert f"Small HRNet-W16 [smoke]: PCK@0.2 {shown}" in out
    # a second run finds both seeds done
    assert main(args + ["-q"]) == 0
    again = capsys.readouterr().out
    assert "done already: small_hrnet_w16 on lspet_128x128_cpu (smoke)" in again
    assert "done already: small_hrnet_w16 on lspet_128x128_cpu (smoke, seed 1)" in again
