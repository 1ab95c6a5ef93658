"""The runner end to end: records, reasons for unmeasured cells, the CI gate."""
import json
import shutil

import pytest

import bench.complexity.flops as flops_mod
from bench import results as res
from bench.complexity.cache import MeasurementCache
from bench.cli import main
from bench.runner import run_suite
from bench.suite import load_suite
from conftest import REPO

SUITES = REPO / "suites"


@pytest.fixture(scope="module")
def shared_cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("runner-cache")


def run_cli(args, tmp_path, cache_dir):
    return main([*map(str, args), "--results-dir", str(tmp_path / "results"),
                 "--reports-dir", str(tmp_path / "reports"), "--cache-dir", str(cache_dir)])


def test_table6_check_passes_then_fails_when_a_published_value_moves_10_percent(
        tmp_path, shared_cache_dir, capsys):
    assert run_cli([SUITES / "lite_hrnet_table6.yaml", "--check"], tmp_path, shared_cache_dir) == 0
    out = capsys.readouterr().out
    assert "check passed: lite_hrnet_table6" in out
    assert (tmp_path / "reports" / "lite_hrnet_table6.html").is_file()
    assert (tmp_path / "reports" / "index.html").is_file()

    copy = tmp_path / "copy"
    shutil.copytree(SUITES / "protocols", copy / "protocols")
    text = (SUITES / "lite_hrnet_table6.yaml").read_text()
    (copy / "lite_hrnet_table6.yaml").write_text(
        text.replace("coco.mflops: 205.2", "coco.mflops: 225.7", 1))   # +10%
    code = run_cli([copy / "lite_hrnet_table6.yaml", "--check", "-q"], tmp_path, shared_cache_dir)
    err = capsys.readouterr().err
    assert code == 1
    assert "row 'Lite-HRNet-18', column 'coco.mflops': published 225.7, measured 205.2" in err
    assert err.count("CHECK FAILED") == 1


def test_records_hold_cells_provenance_and_reasons(tmp_path, shared_cache_dir):
    data_root = tmp_path / "datasets"
    data_root.mkdir()
    run = run_suite(SUITES / "lite_hrnet_table6.yaml", results_dir=tmp_path / "results",
                    data_root=data_root, cache=MeasurementCache(shared_cache_dir), rows="Lite-HRNet-18")
    (path,) = run.record_paths
    assert path == tmp_path / "results" / "lite_hrnet_table6" / "lite-hrnet-18.complexity.json"
    record = json.loads(path.read_text())
    assert record["schema_version"] == res.SCHEMA_VERSION and record["status"] == "ok"
    assert record["model"]["summary"] == "block=ccw; fusion=official"
    flops = record["cells"]["coco.mflops"]
    assert flops["raw"] == 215202112 and flops["convention"] == "lite_hrnet_paper"
    assert flops["canonical"]["convention"] == "fvcore" and flops["canonical"]["raw"] > 0
    assert record["details"]["coco.mflops"]["not_counted"]["module::Sigmoid"] == 64
    ap = record["cells"]["coco.AP"]
    assert ap["status"] == "not_measured" and ap["value"] is None
    assert f"no COCO under the data root {data_root}" in ap["reason"]
    assert {"commit", "dirty", "packages", "device", "time"} <= set(record["provenance"])
    assert not list(path.parent.glob(".*.tmp"))


def test_accuracy_cells_read_full_run_records(tmp_path, shared_cache_dir):
    suite = load_suite(SUITES / "lite_hrnet_table6.yaml")
    run_path = res.run_record_path("coco_256x192_lite_hrnet", "litehrnet_30", "full", tmp_path / "results")
    res.write_record(run_path, {"status": "ok", "metrics": {"AP": 67.0, "AP50": 88.1}})
    run = run_suite(suite, results_dir=tmp_path / "results", cache=MeasurementCache(shared_cache_dir),
                    rows="Lite-HRNet-30")
    cells = run.records[0]["cells"]
    assert cells["coco.AP"]["value"] == 67.0 and cells["coco.AP"]["source"] == str(run_path)
    assert cells["coco.AR"]["status"] == "not_measured"
    from bench.report import cell_verdicts
    verdict = next(v for v in cell_verdicts(suite, run.records)
                   if v["row"] == "Lite-HRNet-30" and v["column"] == "coco.AP")
    assert verdict["status"] == "within" and verdict["delta"] == pytest.approx(-0.2)


def test_a_broken_measurement_fails_its_cell_and_the_gate_but_keeps_the_rest(
        tmp_path, monkeypatch, capsys):
    real = flops_mod.count_flops

    def flaky(model, shape, convention="fvcore"):
        if getattr(model, "registry_name", "") == "litehrnet_30":
            raise RuntimeError("simulated counter crash")
        return real(model, shape, convention)

    monkeypatch.setattr(flops_mod, "count_flops", flaky)
    code = main([str(SUITES / "lite_hrnet_table1.yaml"), "--check", "--no-cache", "-q",
                 "--results-dir", str(tmp_path / "results"), "--reports-dir", str(tmp_path / "reports")])
    captured = capsys.readouterr()
    assert code == 3            # a failed row outranks the gate's 1 (README exit table)
    assert "FAILED ROW lite_hrnet_table1: 'Lite-HRNet-30': cells failed: " in captured.err
    assert "row 'Lite-HRNet-30', column 'mflops'" in captured.err
    assert "simulated counter crash" in captured.err
    ok = json.loads((tmp_path / "results" / "lite_hrnet_table1" / "lite-hrnet-18.complexity.json").read_text())
    bad = json.loads((tmp_path / "results" / "lite_hrnet_table1" / "lite-hrnet-30.complexity.json").read_text())
    assert ok["status"] == "ok" and ok["cells"]["mflops"]["raw"] == 286710400
    assert bad["status"] == "failed" and bad["cells"]["params"]["status"] == "measured"


def test_bad_suite_exits_2_before_any_work(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    shutil.copytree(SUITES / "protocols", tmp_path / "protocols")
    bad.write_text((SUITES / "lite_hrnet_table1.yaml").read_text().replace("litehrnet_30", "litehrnet_3"))
    assert main([str(bad), "--results-dir", str(tmp_path / "results")]) == 2
    assert f"{bad}:" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "record.json"
    res.atomic_write_json(path, {"v": 1})

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(res.os, "fsync", boom)   # fails after the new text is written
    with pytest.raises(OSError):
        res.atomic_write_json(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


# --- training profiles ------------------------------------------------------------------

@pytest.fixture(scope="module")
def smoke_work_dir(tmp_path_factory):
    """One work dir for the module: the generated smoke data is written once."""
    return tmp_path_factory.mktemp("smoke-work")


def smoke_cli(args, tmp_path, cache_dir, work_dir):
    return run_cli([*args, "--profile", "smoke", "--work-dir", work_dir, "-q",
                    "--rows", "Lite-HRNet-18"], tmp_path, cache_dir)


def test_smoke_check_passes_against_the_committed_baseline_and_fails_when_it_is_edited(
        tmp_path, shared_cache_dir, smoke_work_dir, capsys):
    committed = REPO / "results" / "baselines" / "lite_hrnet_table6.smoke.json"
    suite_file = SUITES / "lite_hrnet_table6.yaml"
    assert smoke_cli([suite_file, "--check", "--baseline", committed], tmp_path,
                     shared_cache_dir, smoke_work_dir) == 0
    assert "check passed" in capsys.readouterr().out

    record = json.loads((tmp_path / "results" / "lite_hrnet_table6" / "lite-hrnet-18.smoke.json").read_text())
    coco = record["runs"]["coco"]
    assert record["profile"] == "smoke" and coco["status"] == "ok"
    assert record["cells"]["coco.AP"]["profile"] == "smoke"
    assert coco["training"]["iterations"] == 6 and coco["settings"]["batch_per_process"] == 4

    edited = json.loads(committed.read_text())
    loss = edited["rows"]["lite-hrnet-18"]["mpii"]["final_loss"]
    edited["rows"]["lite-hrnet-18"]["mpii"]["final_loss"] = loss * 1.05   # tolerance is 0.5%
    edited["rows"]["lite-hrnet-18"]["coco"]["target.AP"] -= 1.0           # tolerance is 0.5
    bad = tmp_path / "edited.smoke.json"
    bad.write_text(json.dumps(edited))
    assert smoke_cli([suite_file, "--check", "--baseline", bad], tmp_path,
                     shared_cache_dir, smoke_work_dir) == 1
    err = capsys.readouterr().err
    assert "row 'lite-hrnet-18', mpii.final_loss: baseline" in err
    assert "coco.target.AP: baseline 99" in err


def test_smoke_accuracy_is_reported_as_a_pipeline_check_not_a_reproduction(
        tmp_path, shared_cache_dir, smoke_work_dir):
    assert smoke_cli([SUITES / "lite_hrnet_table6.yaml"], tmp_path, shared_cache_dir,
                     smoke_work_dir) == 0
    from bench.report import cell_verdicts, pipeline_checks
    suite = load_suite(SUITES / "lite_hrnet_table6.yaml")
    recs = list(res.suite_records(suite.suite, "smoke", tmp_path / "results"))
    v = next(v for v in cell_verdicts(suite, recs)
             if v["row"] == "Lite-HRNet-18" and v["column"] == "mpii.PCKh")
    assert v["status"] == "not measured" and v["measured"] is None
    assert v["reason"] == "no full-profile run (smoke run: see the pipeline checks, not comparable with the paper)"
    (check,) = pipeline_checks(suite, recs)
    assert check["row"] == "Lite-HRNet-18" and check["cells"]["mpii.PCKh"]["value"] is not None
    assert check["runs"]["mpii"]["target"] == {"PCKh@0.5": 100.0}
    html = (tmp_path / "reports" / "lite_hrnet_table6.html").read_text()
    assert 'class="num smoke"' not in html.split('<table class="results">')[1].split("</table>")[0]
    assert "Pipeline checks (smoke: not comparable with the paper)" in html


def test_done_jobs_are_not_rerun_unless_asked(tmp_path, shared_cache_dir, smoke_work_dir, capsys):
    suite_file = SUITES / "lite_hrnet_table6.yaml"
    assert smoke_cli([suite_file], tmp_path, shared_cache_dir, smoke_work_dir) == 0
    run = tmp_path / "results" / "runs" / "mpii_256x256_lite_hrnet" / "litehrnet_18.smoke.json"
    first = json.loads(run.read_text())["finished_at"], run.stat().st_mtime_ns
    capsys.readouterr()
    assert smoke_cli([suite_file], tmp_path, shared_cache_dir, smoke_work_dir) == 0
    assert "done already: litehrnet_18 on mpii_256x256_lite_hrnet (smoke)" in capsys.readouterr().out
    assert (json.loads(run.read_text())["finished_at"], run.stat().st_mtime_ns) == first
    assert smoke_cli([suite_file, "--rerun"], tmp_path, shared_cache_dir, smoke_work_dir) == 0
    assert run.stat().st_mtime_ns != first[1]


def test_full_profile_without_the_dataset_names_the_expected_path(tmp_path, shared_cache_dir):
    run = run_suite(load_suite(SUITES / "lite_hrnet_table6.yaml"), profile="full",
                    results_dir=tmp_path / "results", data_root=tmp_path / "datasets",
                    cache=MeasurementCache(shared_cache_dir), rows="Lite-HRNet-18",
                    work_dir=tmp_path / "work")
    cell = run.records[0]["cells"]["mpii.PCKh"]
    assert cell["status"] == "not_measured"
    assert cell["reason"] == (f"no MPII under the data root {tmp_path / 'datasets'}: expected "
                              f"{tmp_path / 'datasets' / 'mpii/annot/valid.json'}")
    assert run.records[0]["runs"]["mpii"]["status"] == "not run"
    assert not (tmp_path / "work").exists()          # nothing was started


def test_update_baseline_needs_the_smoke_profile(tmp_path, capsys):
    assert main([str(SUITES / "lite_hrnet_table6.yaml"), "--update-baseline"]) == 2
    assert "--update-baseline does not apply to --profile complexity" in capsys.readouterr().err


def _mini_suite(tmp_path, rows: str, protocol: str = "mpii_256x256_hrnet", extra_columns: str = ""):
    shutil.copytree(SUITES / "protocols", tmp_path / "protocols", dirs_exist_ok=True)
    path = tmp_path / "mini.yaml"
    path.write_text(f"""suite: mini
paper: hrnet
table: 0
title: mini
protocols: {{mpii: {protocol}}}
columns:
  params: {{unit: M, measure: params, protocol: mpii, tolerance: {{abs: 0.05}}}}
  mpii.PCKh: {{measure: PCKh@0.5, protocol: mpii, tolerance: {{abs: 1.0, side: below}}}}
{extra_columns}rows:
{rows}""")
    return load_suite(path)


def test_server_only_protocols_say_who_scores_them_and_start_no_job(tmp_path, shared_cache_dir):
    suite = _mini_suite(tmp_path, "  - {name: W16, model: small_hrnet_w16}\n",
                        protocol="mpii_256x256_hrnet_test")
    run = run_suite(suite, profile="smoke", results_dir=tmp_path / "results",
                    cache=MeasurementCache(shared_cache_dir), work_dir=tmp_path / "work")
    cell = run.records[0]["cells"]["mpii.PCKh"]
    assert cell["status"] == "not_measured"
    assert "scored by the MPII benchmark server" in cell["reason"]
    assert run.records[0]["runs"]["mpii"]["status"] == "not run"


def test_missing_pretrained_weights_skip_the_job_naming_the_file_and_row(tmp_path, shared_cache_dir):
    data = tmp_path / "data"
    for f in ("mpii/annot/valid.json", "mpii/annot/gt_valid.mat"):
        (data / f).parent.mkdir(parents=True, exist_ok=True)
        (data / f).write_text("")
    (data / "mpii" / "images").mkdir()
    suite = _mini_suite(tmp_path, "  - {name: W16, model: small_hrnet_w16, "
                                  "pretrained: $HRBENCH_TEST_NOWHERE/w16.pth}\n")
    logged = []
    run = run_suite(suite, profile="short", results_dir=tmp_path / "results", data_root=data,
                    cache=MeasurementCache(shared_cache_dir), work_dir=tmp_path / "work",
                    log=logged.append)
    reason = run.records[0]["cells"]["mpii.PCKh"]["reason"]
    assert reason.startswith("pretrained weights not found: $HRBENCH_TEST_NOWHERE/w16.pth")
    assert "'W16'" in reason and str(tmp_path / "mini.yaml") in reason
    assert any(line.startswith("error: pretrained weights not found") for line in logged)
    assert run.records[0]["runs"]["mpii"]["record"].endswith("small_hrnet_w16_imagenet.short.json")
    assert not (tmp_path / "work").exists()


def test_not_built_rows_are_not_measured_and_the_report_shows_them(tmp_path, shared_cache_dir):
    from bench.report import render_suite_html, render_terminal
    suite = _mini_suite(tmp_path, "  - {name: CPN, not_built: outside the five papers, "
                                  "published: {params: 27.0, mpii.PCKh: 90.0}}\n"
                                  "  - {name: W16, model: small_hrnet_w16}\n")
    run = run_suite(suite, results_dir=tmp_path / "results", cache=MeasurementCache(shared_cache_dir))
    assert [r["row"] for r in run.records] == ["W16"]
    html = render_suite_html(suite, run.records, tmp_path / "reports").read_text()
    assert "not built: outside the five papers" in html
    text = render_terminal(suite, run.records)
    assert "n not built" in text and "CPN: not built: outside the five papers" in text


def test_latency_columns_time_their_batch_and_the_report_plots_latency_vs_flops(
        tmp_path, shared_cache_dir):
    from bench.report import render_suite_html
    suite = _mini_suite(tmp_path, "  - {name: W16, model: small_hrnet_w16}\n", extra_columns=(
        "  mpii.gflops: {unit: G, measure: flops, protocol: mpii, convention: hrnet_paper}\n"
        "  mpii.b1: {unit: ms, measure: latency_ms, protocol: mpii, gate: false}\n"
        "  mpii.b2: {unit: ms, measure: latency_ms, protocol: mpii, batch: 2, gate: false}\n"))
    run = run_suite(suite, results_dir=tmp_path / "results", latency=True, device="cpu",
                    cache=MeasurementCache(shared_cache_dir))
    cells, details = run.records[0]["cells"], run.records[0]["details"]
    assert cells["mpii.b1"]["batch"] == 1 and cells["mpii.b2"]["batch"] == 2
    assert details["mpii.b2"]["input_shape"] == [2, 3, 256, 256]
    assert details["mpii.b1"]["iters"] >= 3 and cells["mpii.b1"]["value"] > 0
    render_suite_html(suite, run.records, tmp_path / "reports")
    assert (tmp_path / "reports" / "mini" / "mpii.latency_vs_flops.png").is_file()
    # a later run without --latency keeps the timed cells instead of dropping them
    again = run_suite(suite, results_dir=tmp_path / "results", cache=MeasurementCache(shared_cache_dir))
    kept = again.records[0]["cells"]["mpii.b2"]
    assert kept["value"] == cells["mpii.b2"]["value"]
    assert kept["source"].startswith("kept from the record of")
    # and a third keeps naming the run that timed it, not the record that kept it
    third = run_suite(suite, results_dir=tmp_path / "results", cache=MeasurementCache(shared_cache_dir))
    assert third.records[0]["cells"]["mpii.b2"]["source"] == kept["source"]
    assert run.records[0]["finished_at"] in kept["source"]


def test_segmentation_smoke_rows_pass_their_committed_baseline(tmp_path, shared_cache_dir,
                                                                smoke_work_dir, capsys):
    """GSTO Table 4's W18 rows through the runner: smoke jobs on generated Cityscapes,
    mIoU cells filled (not compared), the target oracle at 100, the baseline gate passing."""
    committed = REPO / "results" / "baselines" / "gsto_table4.smoke.json"
    suite_file = SUITES / "gsto_table4.yaml"
    assert run_cli([suite_file, "--check", "--baseline", committed, "--profile", "smoke",
                    "--work-dir", smoke_work_dir, "-q", "--rows", "*W18*"],
                   tmp_path, shared_cache_dir) == 0
    assert "check passed: gsto_table4" in capsys.readouterr().out
    record = json.loads((tmp_path / "results" / "gsto_table4" /
                         "gsto-hrnet-w18-small-v2.smoke.json").read_text())
    run = record["runs"]["cityscapes"]
    assert run["status"] == "ok" and run["target_metrics"]["mIoU"] == 100.0
    assert record["cells"]["cityscapes.mIoU"]["profile"] == "smoke"
    assert 0.0 <= record["cells"]["cityscapes.mIoU"]["value"] <= 100.0
