"""Issue 23: mistaken arguments are refused before anything runs, failed jobs show in the
exit status, finished work is never replaced by less (runs of other settings side by
side, failed attempts beside the good record, --rerun replacing only on success),
storage faults are one line, and SIGTERM / SIGKILL / preemption lose nothing."""
from __future__ import annotations

import errno
import json
import os
import random
import signal
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import bench.results as results_mod
from bench import results as res
from bench.cli import main
from conftest import REPO

EXAMPLE = REPO / "examples" / "user_model"
SUITE = EXAMPLE / "suites" / "tiny_pose.yaml"
ROW = "TinyPoseNet-16"
PROTOCOL = "tiny_coco_64x48"


def cli(args, out: Path, cache: Path) -> int:
    """``hrbench run`` in this process; an argparse refusal's SystemExit is its code."""
    try:
        return main(["run", *map(str, args), "--out", str(out), "--cache-dir", str(cache), "-q"])
    except SystemExit as stop:
        return int(stop.code)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished smoke run of the user example's first row (records, work dir, data)."""
    sys.path.insert(0, str(EXAMPLE))
    out = tmp_path_factory.mktemp("finished")
    cache = tmp_path_factory.mktemp("cache")
    assert cli([SUITE, "--profile", "smoke", "--rows", ROW], out, cache) == 0
    yield out, cache
    sys.path.remove(str(EXAMPLE))


@pytest.fixture()
def state(finished, tmp_path):
    """A copy of the finished state to break: (out, cache, plain run record path)."""
    out, cache = finished
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    (plain,) = (copy / "results" / "runs" / PROTOCOL).glob("*.smoke.json")
    return copy, cache, plain


def _work_dir(out: Path) -> Path:
    """The plain run's work dir: named as its record, without the profile."""
    (plain,) = (out / "results" / "runs" / PROTOCOL).glob("*.smoke.json")
    return out / "work_dirs" / "smoke" / PROTOCOL / plain.name.removesuffix(".smoke.json")


def _one_line(text: str) -> bool:
    return text.strip() != "" and "\n" not in text.strip()


# --------------------------------------------------------------------------- arguments
REFUSED = [
    (["--profile", "smoke", "--epochs", "-3"], "argument --epochs: -3 is not allowed: it must be positive"),
    (["--profile", "smoke", "--epochs", "0"], "it must be positive"),
    (["--profile", "smoke", "--batch-size", "0"], "argument --batch-size"),
    (["--profile", "smoke", "--workers", "-1"], "argument --workers: -1 is not allowed: it must be at least 0"),
    (["--profile", "smoke", "--launcher", "torchrun", "--gpus", "0"], "argument --gpus"),
    (["--profile", "full", "--data-root", "/nonexistent/data"], "--data-root /nonexistent/data does not exist"),
    (["--profile", "released", "--weights-dir", "/nonexistent/w", "--data-root", "{tmp}"],
     "--weights-dir /nonexistent/w does not exist"),
    (["--rows", "Nope*"], "--rows 'Nope*' matches no row (tiny_pose: 'TinyPoseNet-16', 'TinyPoseNet-32')"),
    (["--profile", "smoke", "--seeds", "0", "1", "0"], "--seeds 0 1 0: seed 0 given more than once"),
    (["--epochs", "2"], "--epochs does not apply to --profile complexity"),
    (["--profile", "smoke", "--data-root", "{tmp}"], "--data-root does not apply to --profile smoke"),
    (["--profile", "released", "--weights-dir", "{tmp}", "--epochs", "2"],
     "--epochs does not apply to --profile released"),
    (["--profile", "full", "--gpus", "2"], "--gpus 2 needs --launcher torchrun or slurm"),
    (["--profile", "full", "--launcher", "torchrun", "--nodes", "2"], "--nodes applies to --launcher slurm only"),
    (["--profile", "smoke", "--update-baseline", "--epochs", "1"], "--update-baseline with --epochs"),
    (["--baseline", "x.json"], "--baseline does not apply to --profile complexity"),
]


@pytest.mark.parametrize("extra,message", REFUSED, ids=[m[:40] for _, m in REFUSED])
def test_mistaken_arguments_are_refused_before_anything_runs(extra, message, state, capsys):
    out, cache, plain = state
    before = plain.read_bytes()
    files = sorted(p for p in out.rglob("*") if p.is_file())
    extra = [a.replace("{tmp}", str(out)) for a in extra]
    capsys.readouterr()
    assert cli([SUITE, *extra], out, cache) == 2
    err = capsys.readouterr().err
    assert message in err and _one_line(err), err
    assert plain.read_bytes() == before
    assert sorted(p for p in out.rglob("*") if p.is_file()) == files     # nothing touched


# --------------------------------------------------------------------------- side by side
def test_other_settings_are_recorded_beside_the_finished_run(state, capsys):
    out, cache, plain = state
    before = plain.read_bytes()
    checkpoint = _work_dir(out) / "latest.pth"
    weights = checkpoint.read_bytes()
    assert cli([SUITE, "--profile", "smoke", "--rows", ROW, "--epochs", "1"], out, cache) == 0
    assert plain.read_bytes() == before and checkpoint.read_bytes() == weights
    side = plain.with_name(plain.name.replace(".smoke.json", ".smoke.epochs=1.json"))
    record = json.loads(side.read_text())
    assert record["status"] == "ok" and record["settings"]["epochs"] == 1
    assert record["work_dir"].endswith(".epochs=1")
    row = json.loads((out / "results" / "tiny_pose" / "tinyposenet-16.smoke.epochs=1.json").read_text())
    assert row["settings_variant"] == "epochs=1"
    assert row["cells"]["coco.AP"]["source"] == str(side)
    plain_row = json.loads((out / "results" / "tiny_pose" / "tinyposenet-16.smoke.json").read_text())
    assert plain_row["settings_variant"] is None
    assert plain_row["runs"]["coco"]["settings"]["epochs"] == 2
    html = (out / "reports" / "tiny_pose.html").read_text()
    assert "smoke (epochs=1)" in html                    # listed with the pipeline checks
    assert "epochs=1 (1 epochs, batch 4 x 1)" in html    # and its settings in the provenance
    assert "protocol settings (2 epochs, batch 4 x 1)" in html
    # run again: done already, side by side with the plain one, which is done too
    capsys.readouterr()
    assert cli([SUITE, "--profile", "smoke", "--rows", ROW, "--epochs", "1"], out, cache) == 0
    assert "done already" in capsys.readouterr().out
    assert cli([SUITE, "--profile", "smoke", "--rows", ROW], out, cache) == 0
    assert plain.read_bytes() == before


def test_a_finished_run_with_other_settings_is_refused_then_replaced_by_rerun(state, capsys):
    out, cache, plain = state
    record = json.loads(plain.read_text())
    record["fingerprint"] = "0123456789abcdef"      # recorded under other settings
    res.write_record(plain, {k: v for k, v in record.items() if k != "schema_version"})
    before = plain.read_bytes()
    capsys.readouterr()
    assert cli([SUITE, "--profile", "smoke", "--rows", ROW], out, cache) == 3
    err = capsys.readouterr().err
    assert f"FAILED JOB tiny_pose: " in err and "holds a finished run with other settings" in err
    assert "--rerun" in err and plain.read_bytes() == before
    assert cli([SUITE, "--profile", "smoke", "--rows", ROW, "--rerun"], out, cache) == 0
    again = json.loads(plain.read_text())
    assert again["status"] == "ok" and again["fingerprint"] != "0123456789abcdef"
    work = _work_dir(out)
    assert not Path(str(work) + ".rerun").exists()     # the staged rerun became the work dir
    assert Path(again["training"]["checkpoint"]).parent == work
    assert Path(again["training"]["checkpoint"]).is_file()


def test_a_failed_attempt_keeps_the_good_record_and_exits_3(state, capsys):
    out, cache, plain = state
    before = plain.read_bytes()
    good = json.loads(before)
    checkpoint = _work_dir(out) / "latest.pth"
    weights = checkpoint.read_bytes()
    images = sorted((out / "work_dirs" / "smoke_data" / "coco" / "images" / "train2017").glob("*.jpg"))
    assert images
    for image in images:
        image.write_bytes(b"not an image")
    capsys.readouterr()
    code = cli([SUITE, "--profile", "smoke", "--rows", ROW, "--rerun", "--junit-xml",
                out / "gate.xml", "--summary-json", out / "gate.json"], out, cache)
    err = capsys.readouterr().err
    assert code == 3, err
    assert "FAILED JOB tiny_pose: " in err and "train2017" in err and "1 job(s) and 0 row(s) failed" in err
    # the good record and its checkpoint stay; the attempt is recorded beside them
    assert plain.read_bytes() == before and checkpoint.read_bytes() == weights
    attempt = json.loads(res.attempt_path(plain).read_text())
    assert attempt["status"] == "failed" and "train2017" in attempt["error"]
    row = json.loads((out / "results" / "tiny_pose" / "tinyposenet-16.smoke.json").read_text())
    cell = row["cells"]["coco.AP"]
    assert cell["value"] == good["metrics"]["AP"]
    assert cell["note"].startswith("last attempt failed: ") and "train2017" in cell["note"]
    assert row["runs"]["coco"]["last_attempt"]["status"] == "failed"
    assert "last attempt failed" in (out / "reports" / "tiny_pose.html").read_text()
    # CI outputs list the failed job
    (case,) = [c for c in ET.parse(out / "gate.xml").getroot().iter("testcase")
               if c.find("error") is not None]
    assert case.get("name").startswith("job ") and "train2017" in case.find("error").get("message")
    summary = json.loads((out / "gate.json").read_text())
    assert summary["exit_code"] == 3 and not summary["passed"]
    (failed,) = summary["suites"]["tiny_pose"]["failed_jobs"]
    assert failed["record"] == str(res.attempt_path(plain))


def test_a_failed_run_without_a_good_record_is_its_record(state, capsys):
    out, cache, plain = state
    for image in (out / "work_dirs" / "smoke_data" / "coco" / "images" / "train2017").glob("*.jpg"):
        image.write_bytes(b"")
    assert cli([SUITE, "--profile", "smoke", "--rows", ROW, "--batch-size", "2"], out, cache) == 3
    side = plain.with_name(plain.name.replace(".smoke.json", ".smoke.batch=2.json"))
    assert json.loads(side.read_text())["status"] == "failed"
    assert not res.attempt_path(side).exists()


# --------------------------------------------------------------------------- storage
def _full_disk(monkeypatch, suffix: str):
    real = os.replace

    def replace(src, dst):
        if str(dst).endswith(suffix):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)
    monkeypatch.setattr(results_mod.os, "replace", replace)


def test_a_full_disk_is_one_line_exit_4_and_nothing_half_written(state, monkeypatch, capsys):
    out, cache, _ = state
    record = out / "results" / "tiny_pose" / "tinyposenet-16.complexity.json"
    assert cli([SUITE, "--rows", ROW], out, cache) == 0
    before = record.read_bytes()
    _full_disk(monkeypatch, ".complexity.json")
    capsys.readouterr()
    assert cli([SUITE, "--rows", ROW, "--no-cache"], out, cache) == 4
    err = capsys.readouterr().err
    assert _one_line(err) and f"cannot write {record}: No space left on device" in err
    assert record.read_bytes() == before
    assert not list(record.parent.glob(".*.tmp"))


def test_a_checkpoint_that_cannot_be_written_fails_the_job_with_exit_4(state, monkeypatch, capsys):
    out, cache, plain = state
    _full_disk(monkeypatch, "latest.pth")
    capsys.readouterr()
    assert cli([SUITE, "--profile", "smoke", "--rows", ROW, "--epochs", "1"], out, cache) == 4
    err = capsys.readouterr().err
    assert "latest.pth: No space left on device" in err and "FAILED JOB" in err
    side = plain.with_name(plain.name.replace(".smoke.json", ".smoke.epochs=1.json"))
    failed = json.loads(side.read_text())
    assert failed["error_kind"] == "storage" and failed["error_path"].endswith("latest.pth")
    assert not list(Path(failed["error_path"]).parent.glob(".*.tmp"))


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path):
    path = tmp_path / "r.json"
    res.atomic_write_text(path, "old")

    def broken(fh):
        fh.write(b"half")
        raise OSError(errno.EROFS, "Read-only file system")
    with pytest.raises(res.StorageError, match=f"cannot write {path}: Read-only file system"):
        res.atomic_write(path, broken)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


# --------------------------------------------------------------------------- signals
DRIVER = """
import sys, time
from bench.training import loop
real = loop.Trainer.train_step
def slow(self, batch):
    out = real(self, batch)
    print(f"step {self.global_iter}", flush=True)
    time.sleep(float(sys.argv[2]))
    return out
loop.Trainer.train_step = slow
from bench.launch import main
sys.exit(main([sys.argv[1]]))
"""


@pytest.fixture(scope="module")
def lsp_job(tmp_path_factory):
    """A small LSP training job (3 epochs of 6 steps) and a driver that runs it slowly
    enough to be signalled mid-run; returns a function making a job file in a folder."""
    from bench.tasks.pose.synthetic import write_all
    from bench.suite import load_protocol
    from bench.job import Job
    root = tmp_path_factory.mktemp("lsp")
    write_all(root / "data", seed=0)
    driver = root / "driver.py"
    driver.write_text(DRIVER)

    def make(folder: Path) -> Path:
        job = Job(model="small_hrnet_w16", overrides={"num_joints": 14},
                  protocol=load_protocol("lspet_128x128_cpu").model_dump(mode="json"),
                  profile="full", work_dir=str(folder / "work"), data_root=str(root / "data"),
                  record_path=str(folder / "run.json"), epochs=3, batch_size=2, num_workers=0,
                  device="cpu", max_iters_per_epoch=6)
        path = folder / "job.json"
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(job.to_json())
        return path
    return make, driver


def _start(driver: Path, job: Path, delay: float = 0.0):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2"}
    return subprocess.Popen([sys.executable, str(driver), str(job), str(delay)], cwd=job.parent,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_step(proc, step: int) -> bool:
    """Read the driver's output until it has done ``step`` steps (False: it ended first)."""
    for line in proc.stdout:
        if line.startswith("step ") and int(line.split()[1]) >= step:
            return True
    return False


def _same_run(a: dict, b: dict) -> None:
    import torch
    assert a["status"] == b["status"] == "ok"
    assert a["metrics"] == b["metrics"]
    assert a["training"]["epoch_losses"] == b["training"]["epoch_losses"]
    assert a["training"]["iterations"] == b["training"]["iterations"] == 18
    wa = torch.load(a["training"]["checkpoint"], weights_only=True)["model"]
    wb = torch.load(b["training"]["checkpoint"], weights_only=True)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def straight(lsp_job, tmp_path_factory):
    make, driver = lsp_job
    job = make(tmp_path_factory.mktemp("straight"))
    proc = _start(driver, job)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return json.loads((job.parent / "run.json").read_text())


def test_sigterm_checkpoints_at_a_step_boundary_and_the_rerun_resumes_to_the_same_record(
        lsp_job, straight, tmp_path):
    make, driver = lsp_job
    job = make(tmp_path / "term")
    proc = _start(driver, job, delay=0.3)
    assert _wait_for_step(proc, 8)                      # mid second epoch
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 5, err
    assert "interrupted: stopped by SIGTERM at iteration" in err
    assert not (job.parent / "run.json").exists()       # a stop is not a failed run
    log = [json.loads(line) for line in (job.parent / "work" / "log.jsonl").read_text().splitlines()]
    (stop,) = [e for e in log if e["event"] == "preempted"]
    assert 8 <= stop["global_iter"] < 18 and stop["global_iter"] % 6 != 0   # not an epoch end
    proc = _start(driver, job)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    resumed = json.loads((job.parent / "run.json").read_text())
    assert resumed["training"]["resumed_from"]["global_iter"] == stop["global_iter"]
    _same_run(resumed, straight)


def test_five_sigkills_at_random_steps_end_with_the_uninterrupted_record(lsp_job, straight, tmp_path):
    make, driver = lsp_job
    job = make(tmp_path / "kill")
    chooser = random.Random(23)
    kills = 0
    while kills < 5:
        proc = _start(driver, job, delay=0.1)
        if not _wait_for_step(proc, chooser.randint(1, 17)):
            proc.wait(timeout=120)
            break                                        # it finished before the kill
        proc.kill()
        proc.wait(timeout=60)
        kills += 1
    assert kills >= 3
    proc = _start(driver, job)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    _same_run(json.loads((job.parent / "run.json").read_text()), straight)


def test_a_slurm_preemption_hands_over_to_submitits_requeue_after_the_checkpoint():
    from bench.launch import requeue_after_checkpoint
    from bench.training.preemption import Preempted, catching, request, requested
    called = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: called.append(signum))
    try:
        with catching():
            assert requested() is None
            os.kill(os.getpid(), signal.SIGUSR2)        # the handler only sets a flag
            assert requested() == signal.SIGUSR2 and called == []
        assert requested() is None and signal.getsignal(signal.SIGUSR2) is not request
        # a SIGTERM stop goes to submitit's requeueing SIGUSR2 handler as well
        requeue_after_checkpoint(Preempted(signal.SIGTERM, 7, "latest.pth"))
        assert called == [signal.SIGUSR2]
    finally:
        signal.signal(signal.SIGUSR2, previous)
