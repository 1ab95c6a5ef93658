"""The detection task plug-in (FlatteNet Table X): loss terms, the target oracle through
the codec and the VOC metric, and a smoke job on generated VOC data."""
import math

import pytest
import torch

from bench.suite import load_protocol
from bench.tasks import get_task
from conftest import SHARED_DATA

TASK = get_task("detection")
VOC_SAMPLE = SHARED_DATA / "voc_sample"


def protocol(**changes):
    return {**load_protocol("voc_512x512_flattenet").model_dump(mode="json"), **changes}


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("det")
    TASK.write_smoke_data(root, seed=0)
    return root


def test_the_task_is_registered_and_reports_the_suites_measure():
    assert TASK.name == "detection" and TASK.datasets == ("voc",)
    assert "mAP@0.5" in TASK.metric_names


def test_loss_has_centernets_three_weighted_terms(voc_root):
    from bench.training.losses import centernet_focal_loss, reg_l1_loss
    ds = TASK.build_dataset(protocol(input_size=[128, 128]), voc_root, train=True)
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    torch.manual_seed(0)
    hm, wh, reg = torch.randn(2, 20, 32, 32), torch.rand(2, 2, 32, 32), torch.rand(2, 2, 32, 32)
    terms = TASK.loss({"out": (hm, wh, reg)}, batch, protocol())
    assert set(terms) == {"heatmap", "size", "offset"}
    assert terms["heatmap"].item() == pytest.approx(centernet_focal_loss(hm, batch["hm"]).item())
    assert terms["size"].item() == pytest.approx(
        0.1 * reg_l1_loss(wh, batch["ind"], batch["reg_mask"], batch["wh"]).item())
    with pytest.raises(ValueError, match=r"\(heatmap logits, sizes, offsets\)"):
        TASK.loss({"out": hm}, batch, protocol())


def test_decoded_targets_score_map_100_on_generated_voc(voc_root):
    from bench.training.evaluate import evaluate_targets
    p = protocol()
    val = TASK.build_dataset(p, voc_root, train=False)
    metrics = evaluate_targets(TASK, val, p)
    assert metrics["mAP@0.5"] == pytest.approx(100.0) and metrics["mAP"] == metrics["mAP@0.5"]


@pytest.mark.data
@pytest.mark.skipif(not VOC_SAMPLE.is_dir(), reason="../shared/data/voc_sample is absent")
def test_decoded_targets_score_map_100_on_the_real_voc_sample():
    """The real VOC 2007 test images (000005 has two difficult chairs: found again, they
    are neither true nor false positives)."""
    from bench.training.evaluate import evaluate_targets
    p = protocol()
    val = TASK.build_dataset(p, VOC_SAMPLE, train=False)
    assert len(val) == 5
    metrics = evaluate_targets(TASK, val, p)
    assert metrics["mAP@0.5"] == pytest.approx(100.0)


def test_the_flip_test_averages_a_mirrored_pass(voc_root):
    """A model whose heatmap is a function of the column index: the flip test makes it
    mirror-symmetric, which the plain pass is not."""
    class Ramp(torch.nn.Module):
        def forward(self, x):
            b, _, h, w = x.shape
            col = torch.linspace(-3, 3, w // 4).expand(b, 20, h // 4, w // 4)
            return col, torch.full((b, 2, h // 4, w // 4), 8.0), torch.zeros(b, 2, h // 4, w // 4)
    p = protocol(input_size=[128, 128])
    val = TASK.build_dataset(p, voc_root, train=False)
    batch = torch.utils.data.default_collate([val[0]])
    plain = TASK.predict(Ramp(), batch, val, {**p, "evaluation": {**p["evaluation"], "flip": False}},
                         torch.device("cpu"))["detections"]
    flipped = TASK.predict(Ramp(), batch, val, p, torch.device("cpu"))["detections"]
    assert max(d["score"] for d in plain) > 0.9              # sigmoid(3): the right edge
    assert max(d["score"] for d in flipped) == pytest.approx(0.5, abs=1e-6)


def test_a_smoke_job_trains_and_scores_map(voc_root, tmp_path):
    from bench.training.job import Job
    job = Job("flattenet_resnet101_det", protocol(), work_dir=str(tmp_path / "w"),
              profile="smoke", data_root=str(voc_root), overrides={"backbone": "resnet50"},
              record_path=str(tmp_path / "run.json"))
    assert job.protocol["input_size"] == [256, 256]          # fitted to the generated images
    record = job()
    assert record["status"] == "ok", record.get("traceback")
    assert record["task"] == "detection" and record["val_samples"] == 4
    assert 0.0 <= record["metrics"]["mAP@0.5"] <= 100.0
    assert record["target_metrics"]["mAP@0.5"] == pytest.approx(100.0)
    assert record["training"]["iterations"] == 6 and math.isfinite(record["training"]["final_loss"])
