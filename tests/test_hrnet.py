"""HRNet family: structure, parameters and forward vs the official pose and segmentation
code (tests/golden/hrnet_official.json), the exchange-unit ablation (HRNet Table 6), the
resolution-maintenance variant, HRNetV2's segmentation head, checkpoint and ImageNet
backbone loading."""
import json

import pytest
import torch

import bench
from bench.checkpoints import (PretrainedBackboneError, load_official_checkpoint,
                               load_pretrained_backbone)
from bench.complexity import count_flops
from bench.models.hrnet import HighResolutionModule
from conftest import (GOLDEN, assert_output_matches, assert_state_matches, golden_input,
                      official_weights)

OFFICIAL = json.loads((GOLDEN / "hrnet_official.json").read_text())
FAMILY = ["hrnet_w32", "hrnet_w48", "hrnetv2_w18_small_v2_seg", "hrnetv2_w48_seg"]


@pytest.fixture(scope="module")
def w32():
    return bench.create_model("hrnet_w32")


@pytest.mark.parametrize("name", FAMILY)
def test_state_dict_and_params_equal_the_official_implementation(name):
    assert_state_matches(bench.create_model(name), OFFICIAL["models"][name])


def test_published_parameter_counts():
    """HRNet Table 1: W32 28.5M, W48 63.6M (the official counts, rounded)."""
    assert OFFICIAL["models"]["hrnet_w32"]["num_params"] == 28_536_113
    assert OFFICIAL["models"]["hrnet_w48"]["num_params"] == 63_595_745


@pytest.mark.parametrize("name", FAMILY)
def test_forward_equals_the_official_forward(name):
    ref = OFFICIAL["models"][name]["output_checksum"]
    model = official_weights(bench.create_model(name))
    with torch.no_grad():
        assert_output_matches(model(golden_input(ref)), ref)


def _fusing_modules(model) -> list[str]:
    return [name for name, m in model.named_modules()
            if isinstance(m, HighResolutionModule) and hasattr(m, "fuse_layers")]


@pytest.mark.parametrize("exchange,expected", [
    ("full", ["stage2.0", "stage3.0", "stage3.1", "stage3.2", "stage3.3",
              "stage4.0", "stage4.1", "stage4.2"]),
    ("across_stage", ["stage2.0", "stage3.3", "stage4.2"]),
    ("final", ["stage4.2"]),
])
def test_exchange_units_of_table6(exchange, expected):
    """(c) 8 exchange units, (b) 3 at the ends of the stages, (a) only the final one."""
    model = bench.create_model("hrnet_w32", exchange=exchange)
    assert _fusing_modules(model) == expected
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 3, 128, 96)).shape == (1, 17, 32, 24)


def test_a_module_without_exchange_keeps_its_branches_apart():
    module = HighResolutionModule([4, 8], num_blocks=1, fuse=False).eval()
    xs = [torch.rand(1, 4, 8, 8), torch.rand(1, 8, 4, 4)]
    with torch.no_grad():
        out = module([x.clone() for x in xs])
        alone = [branch(x) for branch, x in zip(module.branches, xs)]
    assert all(torch.equal(a, b) for a, b in zip(out, alone))


def test_exchange_ablation_removes_only_fusion_parameters(w32):
    """The variants differ from HRNet-W32 by fusion layers only."""
    full = dict(w32.named_parameters())
    for exchange in ("across_stage", "final"):
        variant = dict(bench.create_model("hrnet_w32", exchange=exchange).named_parameters())
        assert set(variant) < set(full)
        assert all(".fuse_layers." in k for k in set(full) - set(variant))


def test_resolution_maintenance_runs_four_branches_from_the_start():
    model = bench.create_model("hrnet_w32", branches_from_start=True)
    assert len(model.transition1) == 4
    assert all(layer is None for layer in model.transition2)
    assert all(layer is None for layer in model.transition3)
    for stage, count in (("stage2", 1), ("stage3", 4), ("stage4", 3)):
        modules = getattr(model, stage)
        assert len(modules) == count
        assert all(len(m.branches) == 4 for m in modules)
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 3, 128, 96)).shape == (1, 17, 32, 24)


@pytest.mark.parametrize("name,classes", [("hrnetv2_w18_small_v2_seg", 19), ("hrnetv2_w48_seg", 59)])
def test_segmentation_logits_at_quarter_resolution(name, classes):
    model = bench.create_model(name, num_classes=classes).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 128))
    assert out.shape == (1, classes, 16, 32)
    assert model.last_layer[0].in_channels == 15 * model.spec.widths[0]


def test_segmentation_fusion_resizes_bilinearly():
    """HRNetV2's fusion interpolates bilinearly; the pose fusion repeats pixels."""
    seg = bench.create_model("hrnetv2_w18_small_v2_seg").stage2[0]
    assert len(seg.fuse_layers[0][1]) == 2               # conv + BN, no Upsample module
    pose = bench.create_model("hrnet_w32").stage2[0]
    assert isinstance(pose.fuse_layers[0][1][2], torch.nn.Upsample)


def test_hrnet_convention_counts_every_call():
    """HRNet's get_model_summary appends one entry per forward hook call."""
    conv = torch.nn.Conv2d(2, 3, 3, padding=1, bias=False)

    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv

        def forward(self, x):
            return self.conv(self.conv(x[:, :2]).narrow(1, 0, 2))

    once = 3 * 2 * 9 * 16
    assert count_flops(conv, (2, 4, 4), "hrnet_paper").total == once
    assert count_flops(Twice(), (2, 4, 4), "hrnet_paper").total == 2 * once


def test_official_checkpoint_layout_loads_strictly(tmp_path):
    """A checkpoint saved by the official training code (DataParallel prefix, bare state
    dict; the key names are those of the golden signature) loads with strict=True."""
    source = official_weights(bench.create_model("small_hrnet_w16"))
    path = tmp_path / "pose_hrnet_w16_256x192.pth"
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, path)
    target = load_official_checkpoint(bench.create_model("small_hrnet_w16"), path)
    assert all(torch.equal(target.state_dict()[k], v) for k, v in source.state_dict().items())


def _imagenet_hrnet(model) -> dict:
    """What an ImageNet HRNet classifier file holds: the shared stem and stages plus its
    own classification head (names of hrnet_w32-36af842e.pth)."""
    state = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("final_layer")}
    state["incre_modules.0.0.conv1.weight"] = torch.zeros(32, 32, 1, 1)
    state["final_layer.0.weight"] = torch.zeros(2048, 1024, 1, 1)
    state["classifier.weight"] = torch.zeros(1000, 2048)
    return state


def test_imagenet_backbone_loads_and_head_is_left_alone(tmp_path):
    source = official_weights(bench.create_model("hrnet_w32"))
    path = tmp_path / "hrnet_w32-36af842e.pth"
    torch.save(_imagenet_hrnet(source), path)
    target = bench.create_model("hrnet_w32")
    head = target.final_layer.weight.clone()
    done = load_pretrained_backbone(target, path)
    assert done["classifier_keys_dropped"] == 3
    assert torch.equal(target.stage4[2].branches[0][0].conv1.weight,
                       source.stage4[2].branches[0][0].conv1.weight)
    assert torch.equal(target.final_layer.weight, head)


def test_imagenet_backbone_errors_name_the_file_and_keys(tmp_path):
    model = bench.create_model("hrnet_w32")
    with pytest.raises(FileNotFoundError, match="no such file .*missing.pth"):
        load_pretrained_backbone(model, tmp_path / "missing.pth")
    state = _imagenet_hrnet(model)
    del state["stage3.0.branches.0.0.conv1.weight"]
    state["stage9.weight"] = torch.zeros(1)
    path = tmp_path / "w48_by_mistake.pth"
    torch.save(state, path)
    with pytest.raises(PretrainedBackboneError) as err:
        load_pretrained_backbone(model, path)
    text = str(err.value)
    assert str(path) in text
    assert "missing keys (1): stage3.0.branches.0.0.conv1.weight" in text
    assert "unexpected keys (1): stage9.weight" in text
    torch.save(bench.create_model("hrnet_w48").state_dict(), path)
    with pytest.raises(PretrainedBackboneError, match="shape mismatches"):
        load_pretrained_backbone(model, path)
    path.write_text("not a checkpoint")
    with pytest.raises(PretrainedBackboneError, match="not a readable torch checkpoint"):
        load_pretrained_backbone(model, path)
