"""``hrbench status`` (bench.status): each planned job's state from its run record and its
training log, without torch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import results as res
from bench.cli import main
from bench.runner.context import RunContext
from bench.runner.plan import plan
from bench.status import (DONE, FAILED, INTERRUPTED, NOT_STARTED, RUNNING, SKIPPED,
                          suite_status)
from bench.suite import load_suite
from conftest import REPO

SUITE = REPO / "suites" / "lite_hrnet_table6.yaml"


def _log(path: Path, entries: list[dict], age_s: float = 0.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e) + "\n" for e in entries) + '{"event": "tra')
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))


@pytest.fixture()
def jobs(tmp_path):
    suite = load_suite(SUITE, check_models=False)
    ctx = RunContext(profile="smoke", results_dir=tmp_path / "results",
                     work_dir=tmp_path / "work")
    specs = plan(suite, [r for r in suite.rows if r.built], ctx, jobs=False)
    assert len(specs) >= 5 and all(s.work_dir is not None for s in specs)
    return suite, specs, tmp_path


def test_states_from_records_and_logs(jobs):
    suite, specs, tmp = jobs
    done, failed, stopped, running = specs[:4]
    res.write_record(done.record_path, {"kind": "run", "status": "ok", "metrics": {"AP": 1.0}})
    res.write_record(failed.record_path, {"kind": "run", "status": "failed",
                                          "error": "RuntimeError: out of memory"})
    start = {"event": "start", "global_iter": 0, "world_size": 2, "iters_per_epoch": 50,
             "settings": {"epochs": 4, "batch_size": 8}}
    _log(stopped.work_dir / "log.jsonl", [
        start, {"event": "train", "epoch": 0, "iter": 50, "global_iter": 50, "loss": 0.5,
                "time": 100.0},
        {"event": "epoch", "epoch": 0, "global_iter": 50, "loss": 0.6, "time": 105.0,
         "epoch_time_s": 12.0},
        {"event": "train", "epoch": 1, "iter": 20, "global_iter": 70, "loss": 0.4, "time": 110.0},
        {"event": "preempted", "global_iter": 72, "signal": 15}], age_s=3600)
    _log(running.work_dir / "log.jsonl", [
        start, {"event": "train", "epoch": 1, "iter": 10, "global_iter": 60, "loss": 0.45,
                "time": 1000.0},
        {"event": "train", "epoch": 1, "iter": 30, "global_iter": 80, "loss": 0.25,
         "time": 1010.0}])
    by = {(s.row, s.protocol): s for s in suite_status(suite, "smoke", tmp / "results",
                                                       tmp / "work")}
    state = lambda spec: by[(spec.row.name, spec.protocol.name)]   # noqa: E731
    assert state(done).state == DONE
    assert state(failed).state == FAILED and state(failed).detail == "RuntimeError: out of memory"
    s = state(stopped)
    assert s.state == INTERRUPTED
    assert s.detail == "last finished epoch 1; preempted at iteration 72; the same command resumes it"
    r = state(running)
    # 20 steps of 8 x 2 images in 10 s; 200 - 80 steps left at 2 steps/s
    assert (r.state, r.epoch, r.epochs, r.iteration, r.iterations) == (RUNNING, 2, 4, 80, 200)
    assert r.loss == 0.25 and r.images_per_s == pytest.approx(32.0) and r.eta_s == pytest.approx(60.0)
    assert all(by[(x.row.name, x.protocol.name)].state == NOT_STARTED for x in specs[4:])
    # a good record wins over a later failed attempt beside it
    res.store_run_record(done.record_path, {"kind": "run", "status": "failed", "error": "x"})
    again = suite_status(suite, "smoke", tmp / "results", tmp / "work")
    kept = next(s for s in again if (s.row, s.protocol) == (done.row.name, done.protocol.name))
    assert (kept.state, kept.detail) == (DONE, "last attempt failed: x")


def test_jobs_that_will_not_run_say_why(tmp_path):
    suite = load_suite(SUITE, check_models=False)
    statuses = suite_status(suite, "full", tmp_path / "results", tmp_path / "work",
                            data_root=tmp_path / "nothing")
    assert statuses and all(s.state == SKIPPED for s in statuses)
    root = tmp_path / "nothing"
    assert {s.detail for s in statuses} == {
        f"no COCO under the data root {root}: expected {root}/coco/annotations/"
        "person_keypoints_val2017.json",
        f"no MPII under the data root {root}: expected {root}/mpii/annot/valid.json"}


def test_the_command_imports_no_torch(tmp_path):
    code = ("import sys; from bench.cli import main; "
            f"rc = main(['status', {str(SUITE)!r}, '--profile', 'smoke', '--out', {str(tmp_path)!r}]); "
            "print(rc, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "0 False"
    assert "lite_hrnet_table6: 14 jobs" in out.stdout and "not started" in out.stdout


def test_watch_refreshes_until_interrupted(tmp_path, monkeypatch, capsys):
    calls = []

    def sleep(seconds):
        calls.append(seconds)
        if len(calls) == 2:
            raise KeyboardInterrupt
    monkeypatch.setattr(time, "sleep", sleep)
    assert main(["status", str(SUITE), "--profile", "smoke", "--out", str(tmp_path),
                 "--watch", "0.1"]) == 0
    assert calls == [0.5, 0.5]            # never faster than twice a second


def test_bad_input_is_an_argument_error(tmp_path, capsys):
    assert main(["status", str(tmp_path / "missing.yaml")]) == 2
    with pytest.raises(SystemExit) as stop:
        main(["status", str(SUITE), "--profile", "complexity"])
    assert stop.value.code == 2
