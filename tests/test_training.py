"""The training pipeline: optimiser and schedule rules, the sampler, the loop (loss
falls, exact resumption, NaN stop), jobs (settings, evaluate-only, the LSP mean-pose
baseline), and the launchers (torchrun with two CPU processes, submitit)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from bench import create_model
from bench.tasks.pose.codecs import gaussian_targets
from bench.tasks.pose.data.mpii import MPIIDataset
from bench.tasks.pose.synthetic import write_lsp, write_mpii
from bench.suite import load_protocol
from bench.training.checkpoint import load_checkpoint
from bench.tasks import get_task
from bench.job import Job
from bench.training.loop import Trainer, TrainingDiverged, TrainSettings
from bench.tasks.pose.losses import joints_mse
from bench.training.optim import build_optimizer
from bench.training.sampler import EpochSampler
from bench.training.schedule import PolyWarmupSchedule, StepWarmupSchedule, build_schedule

SMALL = {"input_size": (64, 64), "heatmap_size": (16, 16), "sigma": 1.0}


@pytest.fixture(scope="module")
def mpii_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "mpii"
    write_mpii(root, num_train=12, num_val=6, seed=3)
    return root


def tiny_protocol(**changes) -> dict:
    """The Lite-HRNet MPII recipe at 64x64 (fast on a CPU)."""
    p = load_protocol("mpii_256x256_lite_hrnet").model_dump(mode="json")
    p.update(input_size=[64, 64], heatmap_size=[16, 16], sigma=1.0)
    p["evaluation"]["batch_size"] = 4
    p.update(changes)
    return p


def settings(**changes) -> TrainSettings:
    base = dict(epochs=2, batch_size=4, lr=1e-3, optimizer={"type": "adam", "lr": 1e-3},
                schedule={"epochs": 2, "milestones": [1], "gamma": 0.1}, num_workers=0,
                log_interval=1, seed=7)
    base.update(changes)
    return TrainSettings(**base)


# ------------------------------------------------------------------ optimiser, schedule
@pytest.mark.parametrize("kind", ["adam", "sgd", "adamw"])
def test_weight_decay_is_applied_when_configured(kind):
    for wd, shrinks in ((0.0, False), (0.1, True)):
        p = torch.nn.Parameter(torch.ones(3))
        opt = build_optimizer([p], {"type": kind, "lr": 0.1, "weight_decay": wd})
        p.grad = torch.zeros(3)
        opt.step()
        assert bool((p.detach() < 1).all()) == shrinks, (kind, wd)


def test_unknown_optimizer_is_named():
    with pytest.raises(ValueError, match="unknown optimizer type 'rmsprop'"):
        build_optimizer([torch.nn.Parameter(torch.ones(1))], {"type": "rmsprop", "lr": 1})


def test_build_schedule_step_and_poly():
    step = build_schedule({"epochs": 210, "milestones": [170, 200], "gamma": 0.1,
                           "warmup": {"type": "linear", "iters": 500, "ratio": 0.001}}, 2e-3, 100)
    assert step == StepWarmupSchedule(2e-3, (170, 200), 0.1, 500, 0.001)
    assert step.lr(0, 0) == pytest.approx(2e-6)
    assert step.lr(180, 10**6) == pytest.approx(2e-4)
    poly = build_schedule({"epochs": 10, "policy": "poly", "power": 0.9}, 0.01, 50)
    assert isinstance(poly, PolyWarmupSchedule) and poly.total_iters == 500
    assert poly.lr(5, 250) == pytest.approx(0.01 * 0.5 ** 0.9)
    assert poly.lr(9, 500) == 0.0


def test_lr_is_scaled_with_the_batch_and_the_record_says_so():
    job = Job("litehrnet_18", tiny_protocol(), work_dir="unused", batch_size=16)
    s = job.resolved(world_size=2)                   # 32 images against the paper's 8 x 32
    assert s["batch_total"] == 32 and s["batch_reference"] == 256
    assert s["lr"] == pytest.approx(2e-3 * 32 / 256) and s["lr_scaled"] is True
    same = Job("litehrnet_18", tiny_protocol(), work_dir="unused", batch_size=32).resolved(8)
    assert same["lr"] == pytest.approx(2e-3) and same["lr_scaled"] is False


def test_short_profile_scales_epochs_and_milestones():
    s = Job("litehrnet_18", tiny_protocol(), work_dir="x", profile="short").resolved()
    assert s["epochs"] == 21 and s["schedule"]["milestones"] == [17, 20]


# ------------------------------------------------------------------ sampler
def test_epoch_sampler_shards_cover_the_epoch_and_resume_mid_epoch():
    shards = [EpochSampler(10, seed=1, rank=r, world_size=3) for r in range(3)]
    for s in shards:
        s.set_epoch(4)
    seen = sum((list(s) for s in shards), [])
    assert len(seen) == 12 and set(seen) == set(range(10))       # padded by wrapping
    a, b = EpochSampler(10, seed=1), EpochSampler(10, seed=1)
    a.set_epoch(0)
    b.set_epoch(1)
    assert list(a) != list(b) and sorted(a) == list(range(10))
    full = list(a)
    a.set_epoch(0, start=6)
    assert list(a) == full[6:] and len(a) == 4


# ------------------------------------------------------------------ the loop
def test_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    model = create_model("small_hrnet_w16", num_joints=16)
    # a fixed synthetic batch: one Gaussian per joint
    rng = np.random.default_rng(0)
    joints = rng.uniform(8, 56, size=(4, 16, 2))
    targets = np.stack([gaussian_targets(j, np.ones(16), (64, 64), (16, 16), 1.0)[0]
                        for j in joints])
    x, y = torch.randn(4, 3, 64, 64), torch.from_numpy(targets)
    opt = build_optimizer(model, {"type": "adam", "lr": 2e-3})
    losses = []
    for _ in range(40):
        loss = joints_mse(model(x), y, torch.ones(4, 16, 1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def _trainer(mpii_root, work_dir, **kw):
    torch.manual_seed(0)
    model = create_model("small_hrnet_w16", num_joints=16)
    ds = MPIIDataset(mpii_root, "train", train=True, seed=7, flip_prob=0.5, rotation_factor=30,
                     scale_factor=0.25, **SMALL)
    pose = get_task("pose")
    protocol = tiny_protocol()
    return Trainer(model, ds, settings(**kw), work_dir, torch.device("cpu"),
                   fingerprint="job-a", log_fn=lambda _m: None,
                   loss_fn=lambda out, batch: pose.loss(out, batch, protocol))


def test_an_interrupted_run_resumes_to_the_same_weights(mpii_root, tmp_path):
    straight = _trainer(mpii_root, tmp_path / "a")
    summary = straight.train()
    assert summary["finished"] and summary["iterations"] == 6      # 2 epochs x 12 // 4

    first = _trainer(mpii_root, tmp_path / "b")
    first.stop_at_iter = 4                                          # mid second epoch
    assert first.train()["finished"] is False
    resumed = _trainer(mpii_root, tmp_path / "b")
    summary_b = resumed.train()
    assert summary_b["resumed_from"]["global_iter"] == 4
    assert summary_b["final_loss"] == summary["final_loss"]
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    log = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    train_iters = [e["global_iter"] for e in log if e["event"] == "train"]
    assert train_iters == [1, 2, 3, 4, 5, 6]                        # nothing logged twice


def test_a_checkpoint_of_another_job_is_refused(mpii_root, tmp_path):
    _trainer(mpii_root, tmp_path).train()
    other = _trainer(mpii_root, tmp_path)
    other.fingerprint = "job-b"
    with pytest.raises(RuntimeError, match="belongs to another job"):
        other.train()


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(mpii_root, tmp_path):
    trainer = _trainer(mpii_root, tmp_path, epochs=3, schedule={"epochs": 3})
    calls = {"n": 0}
    plain = trainer.loss_fn

    def poisoned(outputs, batch):
        calls["n"] += 1
        terms = plain(outputs, batch)
        return {k: v * float("nan") if calls["n"] == 5 else v       # epoch 2, iteration 2
                for k, v in terms.items()}
    trainer.loss_fn = poisoned
    with pytest.raises(TrainingDiverged, match=r"the loss is nan.*last good checkpoint is kept: "
                       r".*latest\.pth"):
        trainer.train()
    state = load_checkpoint(tmp_path / "latest.pth")
    assert state["epoch"] == 1 and state["global_iter"] == 3
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_a_diverging_loss_stops_the_run(mpii_root, tmp_path):
    trainer = _trainer(mpii_root, tmp_path, epochs=12, schedule={"epochs": 12},
                       divergence_factor=10.0)
    plain = trainer.loss_fn
    trainer.loss_fn = lambda out, batch: {
        k: v * (1e4 if trainer.global_iter >= 22 else 1) for k, v in plain(out, batch).items()}
    with pytest.raises(TrainingDiverged, match="diverged"):
        trainer.train()


def test_mixed_precision_and_channels_last_train_on_cpu(mpii_root, tmp_path):
    summary = _trainer(mpii_root, tmp_path, amp="bf16", channels_last=True, epochs=1,
                       schedule={"epochs": 1}).train()
    assert summary["finished"] and math.isfinite(summary["final_loss"])
    with pytest.raises(ValueError, match="amp must be one of"):
        settings(amp="fp8")


# ------------------------------------------------------------------ jobs
def test_a_job_trains_evaluates_and_writes_its_record(mpii_root, tmp_path):
    job = Job("small_hrnet_w16", tiny_protocol(), work_dir=str(tmp_path / "w"),
                  profile="smoke", data_root=str(mpii_root.parent),
                  overrides={"num_joints": 16}, record_path=str(tmp_path / "rec.json"))
    rec = job()
    assert rec["status"] == "ok", rec.get("traceback")
    on_disk = json.loads((tmp_path / "rec.json").read_text())
    assert on_disk["fingerprint"] == job.fingerprint() and on_disk["settings"]["lr_scaled"]
    assert set(rec["metrics"]) >= {"PCKh@0.5", "PCKh@0.1", "AUC", "Head", "rank"}
    assert rec["target_metrics"]["PCKh@0.5"] == 100.0      # decoded targets hit every joint
    assert rec["training"]["iterations"] == 6 and rec["val_samples"] == 6
    assert (tmp_path / "w" / "log.jsonl").is_file()


def test_a_failing_job_writes_a_failed_record_with_the_reason(tmp_path):
    job = Job("small_hrnet_w16", tiny_protocol(), work_dir=str(tmp_path / "w"),
                  profile="smoke", data_root=str(tmp_path / "nothing"),
                  record_path=str(tmp_path / "rec.json"))
    rec = job()
    assert rec["status"] == "failed"
    assert "MPII annotation file not found: expected" in rec["error"]
    assert str(tmp_path / "nothing" / "mpii" / "annot" / "train.json") in rec["error"]


def test_evaluate_only_loads_an_official_style_checkpoint(mpii_root, tmp_path):
    torch.manual_seed(1)
    model = create_model("small_hrnet_w16", num_joints=16)
    wrapped = {"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}
    torch.save(wrapped, tmp_path / "official.pth")
    job = Job("small_hrnet_w16", tiny_protocol(), work_dir=str(tmp_path / "w"),
                  data_root=str(mpii_root.parent), overrides={"num_joints": 16},
                  eval_only=True, checkpoint=str(tmp_path / "official.pth"), device="cpu",
                  num_workers=0)
    rec = job()
    assert rec["status"] == "ok", rec.get("traceback")
    from bench.training.evaluate import evaluate
    val = get_task("pose").build_dataset(tiny_protocol(), mpii_root.parent, train=False)
    direct = evaluate(get_task("pose"), model, val, tiny_protocol(), torch.device("cpu"),
                      num_workers=0)
    assert rec["metrics"]["PCKh@0.5"] == pytest.approx(direct["PCKh@0.5"])
    assert "training" not in rec and rec["weights"].endswith("official.pth")


def test_lsp_jobs_report_the_mean_pose_baseline(tmp_path):
    write_lsp(tmp_path / "lspet", num_images=30, seed=2)
    p = load_protocol("lspet_128x128_cpu").model_dump(mode="json")
    p.update(input_size=[64, 64], heatmap_size=[16, 16])
    job = Job("small_hrnet_w16", p, work_dir=str(tmp_path / "w"), profile="smoke",
                  data_root=str(tmp_path), overrides={"num_joints": 14})
    rec = job()
    assert rec["status"] == "ok", rec.get("traceback")
    base = rec["baselines"]["mean_pose"]["PCK@0.2"]
    assert 0 <= base <= 100 and rec["metrics"]["MeanPose-PCK@0.2"] == base


# ------------------------------------------------------------------ launchers
def test_torchrun_two_cpu_processes_gather_the_whole_validation_set(mpii_root, tmp_path):
    from bench.launch import LaunchConfig, run_jobs
    job = Job("small_hrnet_w16", tiny_protocol(), work_dir=str(tmp_path / "w"),
                  profile="smoke", data_root=str(mpii_root.parent), overrides={"num_joints": 16},
                  record_path=str(tmp_path / "rec.json"), batch_size=2)
    [rec] = run_jobs([job], LaunchConfig("torchrun", nproc_per_node=2))
    assert rec["status"] == "ok", rec.get("traceback")
    assert rec["settings"]["world_size"] == 2 and rec["settings"]["batch_total"] == 4
    assert rec["val_samples"] == 6 and rec["target_metrics"]["PCKh@0.5"] == 100.0
    assert rec["training"]["iterations"] == 6                # 12 samples / (2 ranks x 2)


def test_the_slurm_launcher_runs_through_submitit(mpii_root, tmp_path):
    pytest.importorskip("submitit")
    from bench.launch import LaunchConfig, run_jobs
    job = Job("small_hrnet_w16", tiny_protocol(), work_dir=str(tmp_path / "w"),
                  profile="smoke", data_root=str(mpii_root.parent), overrides={"num_joints": 16},
                  record_path=str(tmp_path / "rec.json"))
    cfg = LaunchConfig("slurm", slurm_cluster="debug", slurm_folder=str(tmp_path / "slurm"))
    [rec] = run_jobs([job], cfg)
    assert rec["status"] == "ok" and json.loads((tmp_path / "rec.json").read_text())["status"] == "ok"
    with pytest.raises(ValueError, match="unknown launcher 'mpi'"):
        LaunchConfig("mpi")


def test_a_job_starts_from_imagenet_weights_named_by_its_protocol(mpii_root, tmp_path):
    """``pretrained:`` loads the backbone (ImageNet-classifier keys dropped) before
    training, and the record says what was loaded; a wrong file fails the job clearly."""
    source = create_model("small_hrnet_w16", num_joints=16)
    with torch.no_grad():
        for t in source.state_dict().values():
            if t.is_floating_point():
                t.uniform_(-0.01, 0.01)
    imagenet = {k: v for k, v in source.state_dict().items() if not k.startswith("final_layer")}
    imagenet["classifier.weight"] = torch.zeros(1000, 8)
    torch.save(imagenet, tmp_path / "imagenet.pth")
    job = Job("small_hrnet_w16", tiny_protocol(pretrained=str(tmp_path / "imagenet.pth")),
                  work_dir=str(tmp_path / "w"), data_root=str(mpii_root.parent),
                  overrides={"num_joints": 16}, epochs=1, max_iters_per_epoch=1, batch_size=2,
                  device="cpu", num_workers=0)
    rec = job()
    assert rec["status"] == "ok", rec.get("traceback")
    assert rec["pretrained"]["classifier_keys_dropped"] == 1
    assert rec["pretrained"]["loaded"] == len(imagenet) - 1
    bad = Job("small_hrnet_w16", tiny_protocol(pretrained=str(tmp_path / "none.pth")),
                  work_dir=str(tmp_path / "w2"), data_root=str(mpii_root.parent),
                  overrides={"num_joints": 16}, epochs=1, max_iters_per_epoch=1, batch_size=2,
                  device="cpu", num_workers=0)()
    assert bad["status"] == "failed" and "no such file" in bad["error"]
    assert str(tmp_path / "none.pth") in bad["error"]


# ------------------------------------------------------------------ validation during training
def _validating_job(mpii_root, tmp_path, profile="full", **changes):
    validation = {"interval": 1, "best_metric": "PCKh@0.5", "mode": "max", **changes}
    return Job("small_hrnet_w16", tiny_protocol(validation=validation),
               work_dir=str(tmp_path / "w"), profile=profile, epochs=3, max_iters_per_epoch=2,
               batch_size=4, device="cpu", num_workers=0, data_root=str(mpii_root.parent),
               overrides={"num_joints": 16})


def test_a_job_validates_every_interval_and_keeps_the_best_epoch(mpii_root, tmp_path):
    """As HRNet's tools/train.py: validation after every epoch on the protocol's own
    evaluation, the best weights kept (best.pth); the record holds the final and the
    best epoch's numbers, and an interrupted run keeps the history it had."""
    job = _validating_job(mpii_root, tmp_path)
    job.stop_at_iter = 3                      # inside epoch 2, after epoch 1's validation
    assert job()["status"] == "failed"
    job.stop_at_iter = None
    rec = job()
    assert rec["status"] == "ok", rec.get("traceback")
    history = rec["validation"]["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]          # 3: the final evaluation
    assert history[-1]["metrics"]["PCKh@0.5"] == pytest.approx(rec["metrics"]["PCKh@0.5"])
    best = rec["validation"]["best"]
    values = [h["metrics"]["PCKh@0.5"] for h in history]
    assert best["value"] == max(values) and best["epoch"] == 1 + values.index(max(values))
    saved = load_checkpoint(tmp_path / "w" / "best.pth")
    assert saved["epoch"] == best["epoch"] and saved["metrics"] == best["metrics"]
    events = [json.loads(line) for line in (tmp_path / "w" / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in events if e.get("event") == "validation"] == [1, 2, 3]
    # every entry's "time" is its clock time, in order (the epoch's length has its own key)
    stamps = [e["time"] for e in events]
    assert stamps == sorted(stamps) and stamps[0] > 1.7e9
    assert all(e["epoch_time_s"] >= 0 for e in events if e.get("event") == "epoch")


def test_smoke_runs_validate_only_after_training(mpii_root, tmp_path):
    rec = _validating_job(mpii_root, tmp_path, profile="smoke")()
    assert rec["status"] == "ok", rec.get("traceback")
    assert [h["epoch"] for h in rec["validation"]["history"]] == [3]   # the final one only
    assert rec["validation"]["interval"] == 0 and rec["validation"]["best"]["epoch"] == 3


def test_a_best_metric_the_evaluation_does_not_give_is_named(mpii_root, tmp_path):
    rec = _validating_job(mpii_root, tmp_path, best_metric="AP")()
    assert rec["status"] == "failed"
    assert "validation gave no 'AP' to choose the best checkpoint by" in rec["error"]


def test_min_mode_keeps_the_smallest_value(tmp_path):
    trainer = Trainer(torch.nn.Linear(1, 1), list(range(8)),
                      settings(best_metric="loss", best_mode="min"), tmp_path,
                      torch.device("cpu"), loss_fn=lambda outputs, batch: {})
    for epoch, value in enumerate((3.0, 1.0, 2.0), start=1):
        trainer.epoch = epoch
        trainer.record_validation({"loss": value, "note": "not a number"})
    assert trainer.best["value"] == 1.0 and trainer.best["epoch"] == 2
    assert [v["metrics"] for v in trainer.validations] == [{"loss": 3.0}, {"loss": 1.0},
                                                         {"loss": 2.0}]
    assert load_checkpoint(tmp_path / "best.pth")["epoch"] == 2


def test_validation_may_evaluate_otherwise_than_the_final_test(mpii_root, tmp_path):
    """SimpleBaseline's train.py validates without flipping every epoch, the last one
    included; the final test (with flipping) is recorded apart from that history."""
    rec = _validating_job(mpii_root, tmp_path, evaluation={"flip_test": False})()
    assert rec["status"] == "ok", rec.get("traceback")
    # epoch 3 is the trainer's own validation: the final test is not added a second time
    assert [h["epoch"] for h in rec["validation"]["history"]] == [1, 2, 3]
    assert rec["validation"]["evaluation"] == {"flip_test": False}


def test_validation_evaluation_changes_are_checked_against_the_task():
    from pydantic import ValidationError
    from bench.tasks.pose.protocol import PoseProtocol
    good = load_protocol("mpii_256x256_hrnet").model_dump()
    with pytest.raises(ValidationError, match="flipp"):
        PoseProtocol(**{**good, "validation": {"interval": 1, "evaluation": {"flipp": False}}})


@pytest.mark.parametrize("ties,best_epoch", [("earlier", 1), ("later", 2)])
def test_a_tie_keeps_the_earlier_or_the_later_epoch(tmp_path, ties, best_epoch):
    """SimpleBaseline's train.py replaces the best on '>', HRNet's on '>='."""
    trainer = Trainer(torch.nn.Linear(1, 1), list(range(8)),
                      settings(best_metric="AP", best_ties=ties), tmp_path,
                      torch.device("cpu"), loss_fn=lambda outputs, batch: {})
    for epoch, value in enumerate((70.0, 70.0, 60.0), start=1):
        trainer.epoch = epoch
        trainer.record_validation({"AP": value})
    assert trainer.best["epoch"] == best_epoch


def test_a_lagged_poly_rate_runs_one_step_behind():
    """HRNet-Semantic-Segmentation sets the rate after optimizer.step(): steps 0 and 1 run
    at the base rate, step g at the rate of g - 1."""
    plain = build_schedule({"epochs": 10, "policy": "poly", "power": 0.9}, 0.01, 50)
    lagged = build_schedule({"epochs": 10, "policy": "poly", "power": 0.9, "rate_lag": 1},
                            0.01, 50)
    assert lagged.lr(0, 0) == lagged.lr(0, 1) == plain.lr(0, 0) == 0.01
    assert [lagged.lr(g // 50, g) for g in range(2, 500)] == \
        [plain.lr((g - 1) // 50, g - 1) for g in range(2, 500)]


def test_a_poly_counting_samples_restarts_each_epoch_at_the_counted_length():
    """HRNet-Seg on 4 GPUs: 5 steps per epoch (padded shards) over a poly that counts
    floor(samples / batch) = 4 per epoch; step i of epoch e runs at the rate of
    e * 4 + max(i - 1, 0) of a poly over 3 x 4 iterations."""
    sched = build_schedule({"epochs": 3, "policy": "poly", "power": 0.9, "rate_lag": 1,
                            "rate_epoch": "samples"}, 0.01, 5, counted_epoch=4)
    poly = lambda it: 0.01 * (1 - it / 12) ** 0.9          # noqa: E731
    expected = [poly(e * 4 + max(i - 1, 0)) for e in range(3) for i in range(5)]
    assert [sched.lr(g // 5, g) for g in range(15)] == pytest.approx(expected, rel=1e-15)
    assert sched.lr(1, 5) == sched.lr(1, 6) == poly(4) and sched.lr(0, 4) == poly(3)
    with pytest.raises(ValueError, match="needs the counted epoch length"):
        build_schedule({"epochs": 3, "policy": "poly", "rate_epoch": "samples"}, 0.01, 5)
    from pydantic import ValidationError

    from bench.protocol import Schedule
    with pytest.raises(ValidationError, match="rate_epoch: samples counts a poly rate"):
        Schedule(epochs=3, milestones=(1,), rate_epoch="samples")


def test_the_seg_spec_sets_every_batchnorm_momentum():
    model = create_model("hrnetv2_w18_small_v2_seg", bn_momentum=0.01)
    momenta = {m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert momenta == {0.01}
