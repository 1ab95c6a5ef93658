"""The plan of a suite run (bench.runner.plan): one spec per (row, accuracy protocol,
seed) with the record the runner writes and why it will not run, computed once; the
launchers run its specs and the cells read them."""
import dataclasses
import shutil

import pytest

import bench.runner.plan as plan_mod
from bench import results as res
from bench.complexity.cache import MeasurementCache
from bench.runner import RunContext, run_suite
from bench.runner.cells import accuracy_cell, measure_row
from bench.runner.plan import plan, specs_for
from bench.runner.released import recorded_rows
from bench.suite import load_suite
from conftest import REPO

ROWS = """  - name: W16
    model: small_hrnet_w16
    released: {mpii: {file: w16.pth, published_at: "https://example.org/w16"}}
  - name: W16 again
    model: small_hrnet_w16
    released: {mpii: {file: other.pth, published_at: "https://example.org/other"}}
"""


def _suite(tmp_path, mpii="mpii_256x256_hrnet"):
    shutil.copytree(REPO / "suites" / "protocols", tmp_path / "protocols", dirs_exist_ok=True)
    path = tmp_path / "mini.yaml"
    path.write_text(f"""suite: mini
paper: hrnet
table: 0
title: mini
protocols: {{mpii: {mpii}, lsp: lspet_128x128_cpu}}
columns:
  params: {{unit: M, measure: params, protocol: mpii, tolerance: {{abs: 0.05}}}}
  mpii.PCKh: {{measure: PCKh@0.5, protocol: mpii, tolerance: {{abs: 1.0, side: below}}}}
  lsp.pck: {{measure: PCK@0.2, protocol: lsp}}
rows:
{ROWS}""")
    return load_suite(path)


@pytest.fixture
def suite(tmp_path):
    return _suite(tmp_path)


def _ctx(tmp_path, profile, **kw):
    return RunContext(profile=profile, results_dir=tmp_path / "results",
                      work_dir=tmp_path / "work", **kw)


def test_one_spec_per_row_protocol_and_seed_at_the_runners_record_paths(suite, tmp_path):
    specs = plan(suite, suite.rows, _ctx(tmp_path, "smoke", seeds=(0, 3)))
    assert [(s.row.name, s.key, s.seed) for s in specs] == [
        (row, key, seed) for row in ("W16", "W16 again") for key in ("mpii", "lsp")
        for seed in (None, 3)]
    runs = tmp_path / "results" / "runs"
    assert [s.record_path for s in specs[:4]] == [
        runs / "mpii_256x256_hrnet" / "small_hrnet_w16.smoke.json",
        runs / "mpii_256x256_hrnet" / "small_hrnet_w16.smoke.seed3.json",
        runs / "lspet_128x128_cpu" / "small_hrnet_w16.smoke.json",
        runs / "lspet_128x128_cpu" / "small_hrnet_w16.smoke.seed3.json"]
    assert all(s.profile.name == "smoke" and s.protocol.name == str(s.record_path.parent.name)
               for s in specs)
    # smoke data is generated: every run runs; its job writes the spec's record
    first, again = specs[:4], specs[4:]
    assert all(s.runs and s.job.record_path == str(s.record_path) for s in first)
    assert [s.job.seed for s in first] == [None, 3, None, 3]
    # the second row of the same model shares the first one's records: it runs nothing
    assert [s.record_path for s in again] == [s.record_path for s in first]
    assert not any(s.runs for s in again) and all(s.job is None for s in again)
    assert not (tmp_path / "work").exists()            # planning writes nothing


def test_reasons_for_missing_data_a_profile_that_trains_nothing_and_server_only(suite, tmp_path):
    data = tmp_path / "datasets"
    data.mkdir()
    full = plan(suite, suite.rows[:1], _ctx(tmp_path, "full", data_root=data))
    assert [s.skip_reason for s in full] == [
        f"no MPII under the data root {data}: expected {data / 'mpii/annot/valid.json'}",
        f"no LSP under the data root {data}: expected {data / 'lspet/joints.mat'}"]
    assert not any(s.runs for s in full)
    # complexity trains nothing: its cells read the full records, and say what is missing
    (mpii, lsp) = plan(suite, suite.rows[:1], _ctx(tmp_path, "complexity"))
    assert mpii.profile.name == "full" and mpii.job is None
    assert mpii.record_path == res.run_record_path("mpii_256x256_hrnet", "small_hrnet_w16",
                                                   "full", tmp_path / "results")
    assert mpii.skip_reason == ("no full-profile result for small_hrnet_w16 on "
                                "mpii_256x256_hrnet; no --data-root given, so no MPII to "
                                "train or evaluate on")
    server = _suite(tmp_path / "server", mpii="mpii_256x256_hrnet_test")
    (test, _) = plan(server, server.rows[:1], _ctx(tmp_path, "smoke"))
    assert "scored by the MPII benchmark server" in test.skip_reason and not test.runs


def test_missing_released_weights_skip_with_one_notice_and_no_record(suite, tmp_path):
    from bench.tasks.pose.synthetic import write_mpii
    write_mpii(tmp_path / "data" / "mpii", num_train=2, num_val=2)
    (tmp_path / "weights").mkdir()
    ctx = _ctx(tmp_path, "released", data_root=tmp_path / "data", weights_dir=tmp_path / "weights")
    w16, w16_lsp, again, again_lsp = plan(suite, suite.rows, ctx)
    assert w16.skip_reason == (f"released weights of 'W16' (mpii): w16.pth is not in "
                               f"{tmp_path / 'weights'} (nor in a folder below it); the "
                               "authors publish it at https://example.org/w16")
    assert w16.weights_missing and w16.notice == f"skipped: {w16.skip_reason}"
    assert w16_lsp.skip_reason == "'W16' names no released weights for 'lsp'"
    # the same model on the same protocol: one record, the first row's file
    assert again.record_path == w16.record_path and again.skip_reason == w16.skip_reason
    assert again.notice.startswith("warning: 'W16 again' (mpii) names other.pth, but another "
                                   "row of mini with the same model and protocol names w16.pth")
    assert recorded_rows(suite.rows, [w16, w16_lsp, again, again_lsp]) == []
    col = suite.columns["mpii.PCKh"]
    cell = accuracy_cell(col, w16.protocol, suite.rows[0], ctx, [w16, w16_lsp])
    assert cell["reason"] == w16.skip_reason and cell["skipped"] == "released weights file missing"

    (tmp_path / "weights" / "w16.pth").write_bytes(b"weights")
    (w16, *_) = plan(suite, suite.rows, ctx)
    from bench.checkpoints import file_sha256
    weights = tmp_path / "weights" / "w16.pth"
    assert w16.runs and w16.job.eval_only and w16.job.checkpoint == str(weights)
    assert w16.weights_sha256 == file_sha256(weights)
    assert w16.record_path == res.run_record_path("mpii_256x256_hrnet", "small_hrnet_w16",
                                                  "released", tmp_path / "results")


def test_the_cells_and_the_runs_read_the_plans_reasons(suite, tmp_path):
    ctx = _ctx(tmp_path, "smoke", cache=MeasurementCache(enabled=False))
    row = suite.rows[0]
    specs = [dataclasses.replace(s, job=None, skip_reason=f"planned away: {s.key}")
             for s in specs_for(plan(suite, [row], ctx), row)]
    col = suite.columns["mpii.PCKh"]
    cell = accuracy_cell(col, suite.protocol_for(row, "mpii"), row, ctx, specs)
    assert cell["status"] == res.CELL_NOT_MEASURED and cell["reason"] == "planned away: mpii"
    record = measure_row(suite, row, ctx, specs=specs)
    assert record["cells"]["lsp.pck"]["reason"] == "planned away: lsp"
    assert record["runs"]["mpii"]["error"] == "planned away: mpii"
    assert record["model"]["summary"].startswith("widths=16/32/64/128")    # the model's spec
    # a record, once there, is what the cell reads
    res.write_record(specs[0].record_path, {"status": "ok", "metrics": {"PCKh@0.5": 51.0}})
    cell = accuracy_cell(col, suite.protocol_for(row, "mpii"), row, ctx, specs)
    assert cell["value"] == 51.0 and cell["source"] == str(specs[0].record_path)


def test_a_suite_run_plans_once(suite, tmp_path, monkeypatch):
    calls = []
    original = plan_mod.accuracy_protocols

    def counted(suite, row):
        calls.append(row.name)
        return original(suite, row)

    monkeypatch.setattr(plan_mod, "accuracy_protocols", counted)
    data = tmp_path / "datasets"
    data.mkdir()
    run = run_suite(suite, profile="full", results_dir=tmp_path / "results", data_root=data,
                    cache=MeasurementCache(enabled=False), work_dir=tmp_path / "work",
                    log=lambda line: None)
    assert calls == ["W16", "W16 again"]          # once per row, by the plan
    assert [r["cells"]["mpii.PCKh"]["reason"] for r in run.records] == [
        f"no MPII under the data root {data}: expected {data / 'mpii/annot/valid.json'}"] * 2
    assert run.failed_jobs == [] and not (tmp_path / "work").exists()
