"""The segmentation task plug-in: loss terms, the target oracle through the prediction
path, and a job end to end on generated Cityscapes / LIP data."""
import math

import numpy as np
import pytest
import torch

from bench.suite import load_protocol
from bench.tasks import get_task
from bench.tasks.segmentation.task import LabelEcho

TASK = get_task("segmentation")


def protocol(name="cityscapes_512x1024_gsto", **changes):
    return {**load_protocol(name).model_dump(mode="json"), **changes}


def test_the_task_is_registered_with_its_datasets_and_metrics():
    assert TASK.name == "segmentation"
    assert set(TASK.datasets) == {"cityscapes", "pascal_context", "lip"}
    assert "mIoU" in TASK.metric_names


def test_loss_weighs_the_auxiliary_outputs_as_the_protocol_says():
    """One image of 2x2 labels, two classes; logits 0 / ln 3 everywhere make the class-1
    probability 3/4, so a pixel costs ln(4/3) (label 1) or ln 4 (label 0)."""
    labels = torch.tensor([[[1, 0], [255, 1]]])
    logits = torch.zeros(1, 2, 1, 1)
    logits[0, 1] = math.log(3.0)
    per_image = (2 * math.log(4 / 3) + math.log(4)) / 3      # the 255 pixel is ignored
    p = protocol(loss={"aux_weights": {"stage2": 0.3, "stage3": 0.5}})
    terms = TASK.loss({"out": logits, "stage2": logits.clone(), "stage3": logits.clone()},
                      {"label": labels}, p)
    assert set(terms) == {"ce", "aux.stage2", "aux.stage3"}
    assert sum(terms.values()).item() == pytest.approx(1.8 * per_image, rel=1e-6)
    assert TASK.loss({"out": logits}, {"label": labels}, p)["ce"].item() == \
        pytest.approx(per_image, rel=1e-6)
    with pytest.raises(KeyError, match="auxiliary output 'stage9'.*gives it no weight"):
        TASK.loss({"out": logits, "stage9": logits}, {"label": labels}, p)


def test_class_weights_by_name_are_hrnets_cityscapes_table():
    from bench.tasks.segmentation.task import class_weights
    from bench.tasks.segmentation.losses import HRNET_CITYSCAPES_CLASS_WEIGHTS
    from bench.tasks.segmentation.protocol import SegLoss
    w = class_weights(SegLoss(class_weights="hrnet_cityscapes"), 19)
    assert w.shape == (19,) and w[0].item() == pytest.approx(HRNET_CITYSCAPES_CLASS_WEIGHTS[0])
    labels = torch.tensor([[[0, 1]]])
    logits = torch.zeros(1, 19, 1, 2)
    weighted = TASK.loss({"out": logits}, {"label": labels},
                         protocol("cityscapes_512x1024_hrnet_seg"))["ce"]
    # equal losses per pixel: the weighted mean is the plain mean
    assert weighted.item() == pytest.approx(math.log(19), rel=1e-6)
    with pytest.raises(ValueError, match="19 class weights for 20 classes"):
        class_weights(SegLoss(class_weights="hrnet_cityscapes"), 20)


def test_the_label_echo_swaps_the_flip_pairs_only_on_a_mirrored_input():
    label = torch.tensor([[[14, 15, 255, 3]]])
    x = LabelEcho.encode(label, 20)
    echo = LabelEcho(20, ((14, 15),))
    assert echo(x).argmax(1).tolist() == [[[14, 15, 0, 3]]]
    mirrored = echo(torch.flip(x, dims=[3])).argmax(1)
    assert mirrored.tolist() == [[[3, 0, 14, 15]]]        # 15 and 14 named the other way


@pytest.fixture(scope="module")
def seg_data(tmp_path_factory):
    from bench.tasks.segmentation.synthetic import write_segmentation_all
    root = tmp_path_factory.mktemp("segdata")
    write_segmentation_all(root, seed=0, num_train=12)
    return root


@pytest.mark.parametrize("name,evaluation", [
    ("cityscapes_512x1024_gsto", {}),
    ("lip_473x473_gsto", {"flip": True, "base_size": None, "image_size": None,
                          "image_resize": "inference"}),
    ("cityscapes_512x1024_gsto", {"sliding_window": {"crop": [64, 96], "stride": [40, 60]}}),
])
def test_the_labels_pushed_through_the_prediction_path_score_100(seg_data, name, evaluation):
    from bench.training.evaluate import evaluate_targets
    p = protocol(name)
    # the generated sets miss classes, which HRNet's absent_classes: zero counts as 0
    p["evaluation"] = {**p["evaluation"], **evaluation, "absent_classes": "skip"}
    val = TASK.build_dataset(p, seg_data, train=False)
    metrics = evaluate_targets(TASK, val, p)
    assert metrics["mIoU"] == pytest.approx(100.0) and metrics["aAcc"] == pytest.approx(100.0)


def test_a_broken_flip_swap_is_caught_by_the_oracle(seg_data):
    """LIP with flipping but without swapping the left/right labels back: the oracle
    falls below 100, which is what the smoke gate's target metric is for."""
    from bench.training.evaluate import evaluate_targets
    p = protocol("lip_473x473_gsto")
    p["evaluation"] = {**p["evaluation"], "flip": True, "base_size": None, "image_size": None,
                       "image_resize": "inference"}
    val = TASK.build_dataset(p, seg_data, train=False)
    val.flip_pairs = ()                       # the evaluation forgets the swap ...
    broken = LabelEcho.encode                 # ... while a mirrored 'model' still swaps
    metrics = {}
    from bench.tasks.segmentation.inference import predict_probabilities
    from bench.tasks.segmentation.metrics import SegmentationEvaluator
    ev = SegmentationEvaluator(20)
    echo = LabelEcho(20, ((14, 15), (16, 17), (18, 19)))
    for i in range(len(val)):
        label = torch.from_numpy(val.load_label(i).astype(np.int64))[None]
        scores = predict_probabilities(echo, broken(label, 20), 20, flip=True, flip_pairs=())
        ev.process({"pred": scores.argmax(1).numpy(), "label": label.numpy()})
    metrics = ev.compute()
    assert metrics["mIoU"] < 99.0


def test_a_smoke_job_trains_and_scores_miou(seg_data, tmp_path):
    from bench.job import Job
    p = protocol("cityscapes_512x1024_gsto", crop_size=[64, 128])
    job = Job("gsto_hrnet_w18_small_v2_seg", p, work_dir=str(tmp_path / "w"), profile="smoke",
              data_root=str(seg_data), record_path=str(tmp_path / "run.json"))
    record = job()
    assert record["status"] == "ok", record.get("traceback")
    assert record["task"] == "segmentation"
    assert 0.0 <= record["metrics"]["mIoU"] <= 100.0 and "IoU.road" in record["metrics"]
    assert record["target_metrics"]["mIoU"] == pytest.approx(100.0)
    training = record["training"]
    assert training["iterations"] == 6 and math.isfinite(training["final_loss"])
    # GSTO's stage predictors trained with their weights: the log has every term
    import json
    log = [json.loads(x) for x in open(training["log"]).read().splitlines()]
    terms = [e["losses"] for e in log if e.get("event") == "train" and "losses" in e]
    assert terms and set(terms[0]) == {"ce", "aux.stage2", "aux.stage3"}


def test_an_iteration_recipe_stops_at_its_iteration_count(seg_data, tmp_path):
    from bench.job import Job
    p = protocol("cityscapes_512x1024_lite_hrnet", crop_size=[64, 128],
                 schedule={"iterations": 5, "policy": "poly", "power": 0.9})
    job = Job("hrnetv2_w18_small_v2_seg", p, work_dir=str(tmp_path / "w"), profile="full",
              data_root=str(seg_data), batch_size=2, num_workers=0, device="cpu")
    assert job.resolved()["iterations"] == 5 and job.resolved()["epochs"] is None
    record = job()
    assert record["status"] == "ok", record.get("traceback")
    assert record["training"]["iterations"] == 5          # 3 per epoch: 2 epochs, cut at 5
    short = Job("hrnetv2_w18_small_v2_seg", protocol("cityscapes_512x1024_lite_hrnet"),
                work_dir="x", profile="short")
    assert short.resolved()["iterations"] == 16000


def test_torchrun_gathers_the_confusion_of_every_rank_once(seg_data, tmp_path):
    """Two CPU processes: each scores its shard of the 3 val images (no padding, so no
    image twice); the gathered metrics equal one process scoring the trained weights."""
    from bench.launch import LaunchConfig, run_jobs
    from bench.registry import create_model
    from bench.training.checkpoint import load_checkpoint
    from bench.training.evaluate import evaluate
    from bench.job import Job
    p = protocol("cityscapes_512x1024_hrnet_seg")
    job = Job("hrnetv2_w18_small_v2_seg", p, work_dir=str(tmp_path / "w"), profile="smoke",
              data_root=str(seg_data), record_path=str(tmp_path / "rec.json"), batch_size=2)
    [rec] = run_jobs([job], LaunchConfig("torchrun", nproc_per_node=2))
    assert rec["status"] == "ok", rec.get("traceback")
    assert rec["settings"]["world_size"] == 2 and rec["val_samples"] == 3
    model = create_model("hrnetv2_w18_small_v2_seg")
    model.load_state_dict(load_checkpoint(tmp_path / "w" / "latest.pth")["model"])
    val = TASK.build_dataset(job.protocol, seg_data, train=False)
    alone = evaluate(TASK, model, val, job.protocol, torch.device("cpu"), num_workers=0)
    assert rec["metrics"]["mIoU"] == pytest.approx(alone["mIoU"], abs=1e-9)
    assert rec["metrics"]["aAcc"] == pytest.approx(alone["aAcc"], abs=1e-9)
    assert rec["target_metrics"]["mIoU"] == pytest.approx(100.0)


def test_gsto_pose_rows_train_their_stage_predictors(tmp_path):
    """A GSTO pose model returns its stage heatmaps in training mode; the pose task
    weighs them with the protocol's aux_weights (0.3 / 0.5 for GSTO-HRNet's stages 2, 3)."""
    import json

    from bench.tasks.pose.synthetic import write_mpii
    from bench.job import Job
    write_mpii(tmp_path / "mpii", num_train=12, num_val=4, seed=3)
    p = load_protocol("mpii_256x256_hrnet").model_dump(mode="json")
    p.update(input_size=[64, 64], heatmap_size=[16, 16], sigma=1.0)
    job = Job("gsto_hrnet_w32", p, work_dir=str(tmp_path / "w"), profile="smoke",
              data_root=str(tmp_path), overrides={"num_joints": 16})
    rec = job()
    assert rec["status"] == "ok", rec.get("traceback")
    log = [json.loads(x) for x in open(rec["training"]["log"]).read().splitlines()]
    terms = [e["losses"] for e in log if e.get("event") == "train"]
    assert set(terms[0]) == {"heatmap", "aux.stage2", "aux.stage3"}
    assert all(t["aux.stage2"] > 0 for t in terms)
