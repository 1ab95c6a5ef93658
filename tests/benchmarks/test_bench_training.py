"""Benchmarks (pytest-benchmark) of the training path on the CPU (issue 3, item 8).

* data pipeline per CPU core: one sample = decode the JPEG, augment (flip, half body,
  scale, rotation), affine crop, normalise, Gaussian targets; COCO at 256x192 and MPII at
  256x256, on files written in the official formats by ``bench.tasks.pose.synthetic``
  (single process, so images/s per core = 1 / mean);
* one training step (forward, JointsMSE, backward, Adam) of litehrnet_18 at batch 8.

Off by default (``--benchmark-disable`` in pyproject runs each body once, as a test);
measure with ``python -m pytest tests/benchmarks --benchmark-enable``. The numbers of
a run on this project's machines are written down in docs/benchmarks.md.
"""
import pytest
import torch

from bench import create_model
from bench.tasks.pose.data.coco import COCODataset
from bench.tasks.pose.data.mpii import MPIIDataset
from bench.tasks.pose.synthetic import write_coco, write_mpii
from bench.suite import load_protocol
from bench.tasks import get_task
from bench.training.loop import Trainer, TrainSettings


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench-data")
    write_coco(root / "coco", num_images=8, seed=0, image_size=(320, 640))
    write_mpii(root / "mpii", num_train=16, num_val=4, seed=0, image_size=(320, 640))
    return root


def _sampler(ds):
    state = {"i": 0}

    def one():
        item = ds[state["i"] % len(ds)]
        state["i"] += 1
        return item
    return one


@pytest.mark.parametrize("name", ["coco_256x192", "mpii_256x256"])
def test_data_pipeline_per_core(benchmark, data, name):
    import cv2
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)                 # one core: OpenCV would otherwise spread warps
    benchmark.extra_info["opencv_threads"] = 1
    if name.startswith("coco"):
        ds = COCODataset(data / "coco", "train2017", train=True, input_size=(256, 192),
                         heatmap_size=(64, 48), sigma=2, half_body_prob=0.3)
    else:
        ds = MPIIDataset(data / "mpii", "train", train=True, input_size=(256, 256),
                         heatmap_size=(64, 64), sigma=2)
    try:
        item = benchmark(_sampler(ds))
    finally:
        cv2.setNumThreads(threads)
    assert item["image"].shape[1:] == tuple(ds.input_size)
    assert item["target"].shape[1:] == tuple(ds.heatmap_size)


def test_train_step_litehrnet_18(benchmark, data):
    ds = COCODataset(data / "coco", "train2017", train=True, input_size=(256, 192),
                     heatmap_size=(64, 48), sigma=2)
    assert len(ds) >= 8
    batch = torch.utils.data.default_collate([ds[i] for i in range(8)])
    settings = TrainSettings(epochs=1, batch_size=8, lr=2e-3,
                             optimizer={"type": "adam", "lr": 2e-3}, schedule={"epochs": 1},
                             num_workers=0)
    pose, protocol = get_task("pose"), load_protocol("coco_256x192_lite_hrnet")
    trainer = Trainer(create_model("litehrnet_18"), ds, settings, data / "work",
                      torch.device("cpu"), log_fn=lambda _m: None,
                      loss_fn=lambda out, b: pose.loss(out, b, protocol))
    loss, terms = benchmark(trainer.step, batch)
    assert loss > 0 and set(terms) == {"heatmap"}
