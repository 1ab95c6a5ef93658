"""bench.tasks.pose.task: the pose task plug-in (registration, loss terms, prediction with the
flip test through the dataset's one codec, the evaluators' dedup of padded samples, the
target oracle, the LSP mean-pose baseline)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from bench.tasks.pose.codecs import MSRAHeatmapCodec, flip_back, gaussian_targets
from bench.tasks.pose.synthetic import write_all
from bench.data.transforms import affine_transform, get_affine_transform
from bench.tasks.pose.metrics import lsp_pck, mean_pose_predictions
from bench.suite import load_protocol
from bench.tasks import get_task, task_names
from bench.tasks.base import Task
from bench.tasks.pose.task import META_FOR_EVAL, PoseTask
from bench.tasks.pose.losses import joints_mse

SIZES = {"coco": ([128, 96], [32, 24]), "mpii": ([64, 64], [16, 16]),
         "lsp": ([64, 64], [16, 16])}
PROTOCOLS = {"coco": "coco_256x192_lite_hrnet", "mpii": "mpii_256x256_lite_hrnet",
             "lsp": "lspet_128x128_cpu"}


def protocol(dataset: str, **changes) -> dict:
    """The repository's recipe for ``dataset`` at a CPU-friendly size."""
    p = load_protocol(PROTOCOLS[dataset]).model_dump(mode="json")
    p["input_size"], p["heatmap_size"] = SIZES[dataset]
    p["evaluation"]["batch_size"] = 4
    p.update(changes)
    return p


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("pose_task")
    PoseTask().write_smoke_data(root, seed=0)
    return root


@pytest.fixture(scope="module")
def task() -> PoseTask:
    return get_task("pose")


def test_the_pose_task_is_registered(task):
    assert isinstance(task, PoseTask) and isinstance(task, Task) and task.name == "pose"
    assert "pose" in task_names() and get_task("pose") is task
    assert set(task.datasets) == {"coco", "mpii", "lsp"}
    assert {"AP", "PCKh@0.5", "PCKh@0.1", "AUC", "PCK@0.2", "MeanPose-PCK@0.2"} <= \
        set(task.metric_names)


def bare(**fields) -> dict:
    """A pose protocol of the required fields only (the schema's defaults elsewhere)."""
    return {"name": "p", "task": "pose", "dataset": "mpii", "input_size": [64, 64], **fields}


# --------------------------------------------------------------------------- loss
def _loss_case(seed=0):
    g = torch.Generator().manual_seed(seed)
    out = torch.rand(2, 3, 8, 6, generator=g)
    batch = {"target": torch.rand(2, 3, 8, 6, generator=g),
             "target_weight": torch.tensor([[[1.0], [0.0], [1.0]], [[1.0], [1.0], [0.0]]])}
    return out, batch


def test_loss_is_the_joints_mse_of_the_main_heatmaps(task):
    out, batch = _loss_case()
    terms = task.loss({"out": out}, batch, bare())
    assert list(terms) == ["heatmap"]
    assert torch.equal(terms["heatmap"], joints_mse(out, batch["target"], batch["target_weight"]))
    # a bare tensor is the main output; use_target_weight: false ignores the weights
    unweighted = task.loss(out, batch, bare(use_target_weight=False))["heatmap"]
    assert torch.equal(unweighted, joints_mse(out, batch["target"]))
    assert unweighted.item() > terms["heatmap"].item()
    # half-precision outputs (autocast) are scored in float32, as the trainer did
    half = task.loss({"out": out.half()}, batch, bare())["heatmap"]
    assert half.dtype == torch.float32
    assert torch.equal(half, joints_mse(out.half().float(), batch["target"],
                                        batch["target_weight"]))


def test_auxiliary_heatmaps_add_weighted_terms(task):
    out, batch = _loss_case()
    aux1, aux2 = _loss_case(1)[0].requires_grad_(), _loss_case(2)[0]
    outputs = {"out": out.requires_grad_(), "stage1": aux1, "stage3": aux2}
    p = bare(name="gsto", aux_weights={"stage1": 0.2, "stage2": 0.3, "stage3": 0.5})
    terms = task.loss(outputs, batch, p)
    assert list(terms) == ["heatmap", "aux.stage1", "aux.stage3"]
    w, t = batch["target_weight"], batch["target"]
    assert torch.allclose(terms["aux.stage1"], 0.2 * joints_mse(aux1, t, w))
    assert torch.allclose(terms["aux.stage3"], 0.5 * joints_mse(aux2, t, w))
    sum(terms.values()).backward()
    assert aux1.grad is not None and aux1.grad.abs().sum() > 0
    with pytest.raises(KeyError, match=r"'stage3'.*'gsto'|'gsto'.*'stage3'"):
        task.loss(outputs, batch, bare(name="gsto", aux_weights={"stage1": 0.2}))
    with pytest.raises(KeyError, match="stage1"):
        task.loss(outputs, batch, bare(name="old", aux_weights={}))


def test_mse_factor_is_the_protocols(task):
    """HRNet's JointsMSELoss halves the mean squared error (the default); mmpose's, which
    the Lite-HRNet recipes train with, does not (``loss: {mse_factor: 1.0}``)."""
    out, batch = _loss_case()
    aux = _loss_case(1)[0]
    outputs = {"out": out, "stage1": aux}
    w = batch["target_weight"].reshape(2, 3, 1, 1)
    by_hand = ((out - batch["target"]) * w).pow(2).sum() / out.numel()
    half = task.loss(outputs, batch, bare(name="hrnet", aux_weights={"stage1": 0.2}))
    whole = task.loss(outputs, batch, bare(name="mmpose", aux_weights={"stage1": 0.2},
                                            loss={"mse_factor": 1.0}))
    assert half["heatmap"].item() == pytest.approx(0.5 * by_hand.item(), rel=1e-6)
    assert whole["heatmap"].item() == pytest.approx(by_hand.item(), rel=1e-6)
    assert whole["aux.stage1"].item() == pytest.approx(2 * half["aux.stage1"].item(), rel=1e-6)
    lite = load_protocol("coco_256x192_lite_hrnet").model_dump(mode="json")
    hrnet = load_protocol("coco_256x192_hrnet").model_dump(mode="json")
    assert (lite["loss"]["mse_factor"], hrnet["loss"]["mse_factor"]) == (1.0, 0.5)


# --------------------------------------------------------------------------- data, codec
def test_build_dataset_passes_the_training_seed(task, data_root):
    train = task.build_dataset(protocol("mpii"), data_root, train=True, seed=11)
    val = task.build_dataset(protocol("mpii"), data_root, train=False)
    assert train.train and train.seed == 11 and not val.train
    assert task.eval_batch_size(protocol("mpii")) == 4
    assert task.eval_batch_size(bare()) == 32      # PoseEvaluation's default
    with pytest.raises(ValueError, match="no dataset loader for 'voc'"):
        task.build_dataset(bare(dataset="voc"), data_root, train=False)


@pytest.mark.parametrize("dataset,changes", [
    ("coco", {}), ("coco", {"unbiased_encoding": True, "sigma": 3.0}), ("mpii", {})])
def test_one_codec_makes_the_targets(task, data_root, dataset, changes):
    p = protocol(dataset, **changes)
    ds = task.build_dataset(p, data_root, train=False,
                            **({"use_joint_weights": True} if dataset == "coco" else {}))
    assert isinstance(ds.codec, MSRAHeatmapCodec)
    assert ds.codec.input_size == ds.image_size_wh and ds.codec.heatmap_size == ds.heatmap_size_wh
    assert ds.codec.sigma == ds.sigma and ds.codec.unbiased == bool(changes.get("unbiased_encoding"))
    for i in (0, len(ds) - 1):
        rec, sample = ds.records[i], ds[i]
        M = get_affine_transform(rec["center"], rec["scale"], 0.0, ds.image_size_wh)
        target, weight = gaussian_targets(affine_transform(rec["joints"].astype(np.float64), M),
                                          rec["visible"], ds.image_size_wh, ds.heatmap_size_wh,
                                          ds.sigma, unbiased=ds.unbiased_encoding,
                                          joint_weights=ds.joint_weights)
        assert np.array_equal(sample["target"].numpy(), target)
        assert np.array_equal(sample["target_weight"].numpy()[:, 0], weight)
    if dataset == "coco":
        assert ds.joint_weights is not None and ds.joint_weights.max() > 1


class TargetModel(nn.Module):
    """An ideal pose model for one batch: the batch's target heatmaps for its images and,
    for their mirror images, what the mirrored joints give on the pixel grid: a joint at
    input x moves to W - 1 - x, i.e. heatmap (W - 1 - x) / stride, which mirrored back is
    x / stride - 0.75 (stride 4): the heatmaps one pixel to the left, mirrored, with
    left/right swapped. Returned as an output mapping with a junk auxiliary output, as
    GSTO models return in training mode."""

    def __init__(self, batch, flip_pairs):
        super().__init__()
        self.image, self.target = batch["image"], batch["target"]
        left = self.target.numpy().copy()
        left[..., :-1] = left[..., 1:]
        self.mirrored = torch.from_numpy(flip_back(left, flip_pairs))

    def forward(self, x):
        if torch.equal(x, self.image):
            out = self.target
        else:
            assert torch.equal(x, torch.flip(self.image, dims=[3]))
            out = self.mirrored
        return {"out": out, "stage1": torch.full_like(out, 7.0)}


@pytest.mark.parametrize("dataset", ["mpii", "coco"])
def test_predict_decodes_through_the_dataset_codec(task, data_root, dataset, monkeypatch):
    p = protocol(dataset)
    ds = task.oracle_dataset(p, data_root)
    batch = next(iter(DataLoader(ds, batch_size=4)))
    decoded = []
    decode = ds.codec.decode
    monkeypatch.setattr(ds.codec, "decode", lambda *a, **k: decoded.append(a[0]) or decode(*a, **k))
    model = TargetModel(batch, ds.flip_pairs)
    no_flip = {**p, "evaluation": {**p["evaluation"], "flip_test": False}}
    out = task.predict(model, batch, ds, no_flip, torch.device("cpu"))
    assert set(out) == {"preds", "maxvals", *META_FOR_EVAL}
    assert out["preds"].shape == (4, ds.num_joints, 2) and out["maxvals"].shape == (4, ds.num_joints, 1)
    assert np.array_equal(out["index"], np.arange(4)) and out["score"].dtype == np.float64
    assert len(decoded) == 1 and np.array_equal(decoded[0], batch["target"].numpy())
    # the model path and the target oracle decode the same heatmaps identically
    oracle = next(iter(task.target_predictions(ds, p)))
    for k in out:
        assert np.array_equal(out[k], oracle[k]), k

    # Flip test: the mirrored output comes back unmirrored with left/right swapped and
    # shifted one pixel right (shift_heatmap), which restores the targets except in
    # column 0; joints whose heatmap is zero there (and in column 1, its copy) average
    # two equal heatmaps and decode exactly as without the flip test.
    flip = task.predict(model, batch, ds, p, torch.device("cpu"))
    assert len(decoded) == 3
    t = batch["target"].numpy()
    away = (np.abs(t[..., :2]).max(axis=(2, 3)) == 0) & (t.max(axis=(2, 3)) > 0)
    assert away.sum() > 10 and (~away).any()
    assert np.array_equal(flip["preds"][away], out["preds"][away])
    assert np.array_equal(flip["maxvals"][away], out["maxvals"][away])
    # without the pairs swapped the left and right joints would be averaged together
    swapped = {**p, "evaluation": {**p["evaluation"], "shift_heatmap": False}}
    unshifted = task.predict(model, batch, ds, swapped, torch.device("cpu"))
    assert not np.array_equal(unshifted["preds"][away], out["preds"][away])


# --------------------------------------------------------------------------- evaluators
def _noisy(batch, rng, scale):
    b = dict(batch)
    b["preds"] = (batch["preds"] + rng.normal(0, scale, batch["preds"].shape)).astype(np.float32)
    b["maxvals"] = (batch["maxvals"] * rng.uniform(0.1, 1.0, batch["maxvals"].shape)
                    ).astype(np.float32)
    return b


def same_metrics(a, b) -> bool:
    """Equal metric dicts, NaN equal to NaN (a joint never annotated has no PCK)."""
    return list(a) == list(b) and all(
        a[k] == b[k] or (np.isnan(a[k]) and np.isnan(b[k])) for k in a)


def _concat(batches):
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


@pytest.mark.parametrize("dataset,metric", [("coco", "AP"), ("mpii", "PCKh@0.5"),
                                            ("lsp", "PCK@0.2")])
def test_evaluators_drop_padded_repeats(task, data_root, dataset, metric):
    p = protocol(dataset)
    ds = task.oracle_dataset(p, data_root)
    rng = np.random.default_rng(0)
    clean = _noisy(_concat(list(task.target_predictions(ds, p))), rng, 3.0)
    n = len(ds)
    reference = task.evaluator(ds, p)
    reference.process(clean)
    expected = reference.compute()
    assert 0 < expected[metric] < 100                   # the noise costs some accuracy

    # two "ranks" of a distributed sampler: the second wraps around to index 0, 1
    order = rng.permutation(n)
    rank0 = {k: v[order[: n // 2]] for k, v in clean.items()}
    pad = np.concatenate([order[n // 2:], order[:2]])
    rank1 = {k: v[pad] for k, v in clean.items()}
    evs = [task.evaluator(ds, p), task.evaluator(ds, p)]
    evs[0].process(rank0)
    evs[1].process(rank1)
    assert len(evs[0]) + len(evs[1]) == n + 2
    parts = [e.results for e in evs]
    assert evs[1].evaluate(gather=lambda _r: parts, is_main=False) is None
    assert same_metrics(evs[0].evaluate(gather=lambda _r: parts, is_main=True), expected)
    # one process seeing both batches, in any order, scores the same
    single = task.evaluator(ds, p)
    single.process(rank1)
    single.process(rank0)
    assert same_metrics(single.compute(), expected)
    # a lost sample is an error, not a miss
    short = task.evaluator(ds, p)
    short.process({k: v[1:] for k, v in clean.items()})
    with pytest.raises(ValueError, match=f"{n - 1} predictions .* for {n} samples"):
        short.compute()


# --------------------------------------------------------------------------- target oracle
# (MPII at 64 x 64: a heatmap pixel is more than 0.1 head sizes, so not PCKh@0.1)
@pytest.mark.parametrize("dataset,metrics", [
    ("coco", ("AP", "AP50", "AP75", "AR")), ("mpii", ("PCKh@0.5",)), ("lsp", ("PCK@0.2",))])
def test_the_target_oracle_scores_100(task, data_root, dataset, metrics):
    p = protocol(dataset)
    ds = task.oracle_dataset(p, data_root)
    if dataset == "coco":     # the recipe evaluates detector boxes; the oracle needs GT ones
        assert p["evaluation"]["boxes"] == "detector" and ds.use_gt_bbox
        val = task.build_dataset(p, data_root, train=False)
        assert not val.use_gt_bbox and len(val) != len(ds)
    ev = task.evaluator(ds, p)
    batches = list(task.target_predictions(ds, p))
    assert max(len(b["index"]) for b in batches) <= 4          # the evaluation batch size
    assert np.array_equal(np.concatenate([b["index"] for b in batches]), np.arange(len(ds)))
    for b in batches:
        ev.process(b)
    result = ev.compute()
    for m in metrics:
        assert result[m] == pytest.approx(100.0), m


# --------------------------------------------------------------------------- extra metrics
def test_lsp_reports_the_mean_pose_baseline(task, data_root):
    p = protocol("lsp")
    train = task.build_dataset(p, data_root, train=True, seed=0)
    val = task.build_dataset(p, data_root, train=False)
    extra = task.extra_metrics(train, val, p)
    gts, visible = val.ground_truth()
    direct = lsp_pck(mean_pose_predictions(train.records, val.records), gts, visible)
    assert set(extra) == {"baselines", "metrics"}
    assert extra["baselines"]["mean_pose"]["PCK@0.2"] == direct["PCK@0.2"]
    assert extra["metrics"] == {"MeanPose-PCK@0.2": direct["PCK@0.2"]}
    assert 0 <= direct["PCK@0.2"] < 100
    assert task.extra_metrics(None, val, p) is None
    mpii = protocol("mpii")
    assert task.extra_metrics(task.build_dataset(mpii, data_root, train=True),
                              task.build_dataset(mpii, data_root, train=False), mpii) is None
