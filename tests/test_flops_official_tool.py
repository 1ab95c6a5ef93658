"""HRBench's ``hrnet_paper`` counting against HRNet's own complexity tool (issue 28).

``tests/golden/flops_hrnet_official.json`` holds what leoxiaobin/deep-high-resolution-net
.pytorch's ``lib/utils/utils.py get_model_summary`` prints for its own ``pose_hrnet`` and
``pose_resnet`` models (the repository's experiment configs, run outside the project).
HRBench's models under ``convention='hrnet_paper'`` must give the same multiply-adds and
its parameter count the same total: this is what the HRNet / Lite-HRNet / DPN suites'
"GFLOPs as HRNet's tool counts them" columns rest on.
"""
from __future__ import annotations

import json

import pytest

import bench
from bench.complexity import count_flops, count_params
from bench.complexity.meta_trace import build_on_meta
from conftest import GOLDEN

GOLDEN_FILE = json.loads((GOLDEN / "flops_hrnet_official.json").read_text())


@pytest.mark.parametrize("case", GOLDEN_FILE["models"],
                         ids=[c["experiment"].split("/", 1)[1] for c in GOLDEN_FILE["models"]])
def test_hrnet_paper_convention_equals_get_model_summary(case):
    model = build_on_meta(bench.create_model, case["hrbench_model"],
                          num_joints=case["num_joints"])
    report = count_flops(model, (3, *case["input_hw"]), convention="hrnet_paper")
    # the tool sums integer multiply-adds and divides by 1024^3 once
    assert report.total / 1024 ** 3 == pytest.approx(case["gflops_1024"], rel=0, abs=1e-12)
    assert count_params(model) == case["params"]
