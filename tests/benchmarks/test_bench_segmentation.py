"""Benchmark (pytest-benchmark) of the segmentation data pipeline on one CPU core.

One sample of the Cityscapes training recipe (HRNetV2 / GSTO): decode a 1024x2048 PNG
and its labelIds, map the labels, random scale of the long side 2048 x U(0.5, 2.0),
pad, 512x1024 crop, flip, normalise. Images are full-size synthetic Cityscapes frames
(``bench.tasks.segmentation.synthetic``); the epoch advances after each pass so the rounds cover
different scales. Single process, OpenCV and torch on one thread: samples/s per core =
1 / time per sample.

Off by default (``--benchmark-disable`` in pyproject runs the body once, as a test);
measure with ``python -m pytest tests/benchmarks --benchmark-enable``; the numbers are
written down in docs/benchmarks.md.
"""
import cv2
import pytest
import torch

from bench.tasks.segmentation.data.cityscapes import CityscapesDataset
from bench.tasks.segmentation.synthetic import write_cityscapes


@pytest.fixture(scope="module")
def cityscapes_full(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench-seg") / "cityscapes"
    return write_cityscapes(root, seed=0, num_train=2, num_val=0, size=(1024, 2048))


def test_cityscapes_train_pipeline_per_core(benchmark, cityscapes_full):
    ds = CityscapesDataset(cityscapes_full, "train", train=True, crop_size=(512, 1024),
                           base_size=2048, scale_range=(0.5, 2.0), flip_prob=0.5)
    state = {"i": 0}

    def one():
        i = state["i"]
        state["i"] += 1
        ds.set_epoch(i // len(ds))
        return ds[i % len(ds)]

    cv_threads, torch_threads = cv2.getNumThreads(), torch.get_num_threads()
    cv2.setNumThreads(1)               # one core: OpenCV would spread decode and resize
    torch.set_num_threads(1)
    benchmark.extra_info.update(opencv_threads=1, torch_threads=1)
    try:
        item = benchmark(one)
    finally:
        cv2.setNumThreads(cv_threads)
        torch.set_num_threads(torch_threads)
    assert item["image"].shape == (3, 512, 1024) and item["label"].shape == (512, 1024)
    assert item["image"].dtype == torch.float32 and item["label"].dtype == torch.int64
