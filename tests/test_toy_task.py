"""A fourth task is one package plus one registration (issue 24): a toy task registered
from outside HRBench (its own protocol schema, dataset, loss, prediction, metric, smoke
data and target oracle) runs its smoke job through the command line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from conftest import REPO

PLUGIN = '''
"""A toy task: predict each image's mean brightness; the metric is the share of images
predicted within 0.05."""
from typing import Literal

import numpy as np
import torch
from torch import nn

from bench.evaluation.base import Evaluator
from bench.protocol import Protocol
from bench.tasks import TaskSpec, register_task
from bench.tasks.base import MAIN_OUTPUT, Task


class ToyProtocol(Protocol):
    task: Literal["toy"]
    tolerance: float = 0.05


class Brightness(torch.utils.data.Dataset):
    def __init__(self, root, split):
        self.images = np.load(f"{root}/toy/{split}.npy")

    def __len__(self):
        return len(self.images)

    def set_epoch(self, epoch):     # the trainer's call at each epoch (no augmentation here)
        pass

    def __getitem__(self, i):
        image = torch.from_numpy(self.images[i])
        return {"image": image, "target": image.mean().reshape(1)}


class WithinTolerance(Evaluator):
    def __init__(self, tolerance):
        super().__init__()
        self.tolerance = tolerance

    def process(self, predictions):
        self.results.extend(np.abs(predictions["pred"] - predictions["target"]).ravel().tolist())

    def compute_metrics(self, results):
        return {"toy_acc": 100.0 * float(np.mean(np.asarray(results) <= self.tolerance))}


class ToyTask(Task):
    def build_dataset(self, protocol, data_root, train, seed=0):
        return Brightness(data_root, protocol.train_split if train else protocol.val_split)

    def write_smoke_data(self, root, seed=0):
        rng = np.random.default_rng(seed)
        (root / "toy").mkdir(parents=True, exist_ok=True)
        for split, n in (("train", 8), ("val", 4)):
            np.save(root / "toy" / f"{split}.npy", rng.random((n, 3, 8, 8), dtype=np.float32))

    def loss(self, outputs, batch, protocol):
        return {"mse": nn.functional.mse_loss(outputs[MAIN_OUTPUT], batch["target"])}

    def predict(self, model, batch, dataset, protocol, device, amp="off", channels_last=False):
        with torch.no_grad():
            pred = model(batch["image"].to(device))
        return {"pred": pred.cpu().numpy(), "target": batch["target"].numpy()}

    def evaluator(self, dataset, protocol):
        return WithinTolerance(protocol.tolerance)

    def target_predictions(self, dataset, protocol):
        targets = np.stack([dataset[i]["target"].numpy() for i in range(len(dataset))])
        yield {"pred": targets, "target": targets}


def build(width: int = 4):
    return nn.Sequential(nn.Conv2d(3, width, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(width, 1))


register_task(TaskSpec(name="toy", protocol=ToyProtocol, metric_names=("toy_acc",),
                       datasets=("toyset",), implementation=ToyTask))
'''

PROTOCOL = '''
task: toy
dataset: toyset
input_size: [8, 8]
train_split: train
val_split: val
optimizer: {type: adam, lr: 0.001}
schedule: {epochs: 2}
batch: {per_gpu: 4}
'''

SUITE = '''
suite: toy_table
paper: toy
table: 1
title: A task HRBench does not ship
protocols: {toy: toy_8x8}
columns:
  params: {label: "#Params", measure: params, protocol: toy, tolerance: {abs: 0}}
  acc: {label: Acc, measure: toy_acc, protocol: toy, tolerance: {abs: 100, side: below}}
rows:
  - name: Toy-4
    model: toytask:build
    published: {params: 21, acc: 50}
'''


def test_a_task_registered_from_outside_runs_its_smoke_job_through_the_cli(tmp_path):
    (tmp_path / "toytask.py").write_text(textwrap.dedent(PLUGIN))
    (tmp_path / "protocols").mkdir()
    (tmp_path / "protocols" / "toy_8x8.yaml").write_text(PROTOCOL)
    (tmp_path / "toy_table.yaml").write_text(SUITE)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HRBENCH_IMPORT")}
    env.update(PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]), OMP_NUM_THREADS="2",
               MPLBACKEND="Agg")
    # without its module the suite's accuracy measure and protocol task are unknown
    plain = subprocess.run([sys.executable, "-m", "bench", "run", "toy_table.yaml", "-q",
                            "--no-report"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=300)
    assert plain.returncode == 2 and "unknown task 'toy'" in plain.stderr, plain.stderr
    for extra in (["--update-baseline"], ["--check"]):   # record, then gate on the record
        proc = subprocess.run([sys.executable, "-m", "bench", "run", "toy_table.yaml", "--import",
                               "toytask", "--profile", "smoke", *extra, "-q", "--no-report",
                               "--cache-dir", str(tmp_path / "cache")],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    records = [json.loads(f.read_text()) for f in (tmp_path / "results").rglob("*.json")]
    run = next(r for r in records if r.get("kind") == "run")
    assert run["status"] == "ok" and run["task"] == "toy" and run["protocol"]["task"] == "toy"
    assert 0 <= run["metrics"]["toy_acc"] <= 100
    assert run["target_metrics"] == {"toy_acc": 100.0}      # the oracle: perfect targets
    row = json.loads((tmp_path / "results" / "toy_table" / "toy-4.smoke.json").read_text())
    assert row["cells"]["acc"]["value"] == run["metrics"]["toy_acc"]
    assert row["cells"]["params"]["raw"] == 21     # 3 x 4 + 4, then 4 + 1
