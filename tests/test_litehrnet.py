"""Lite-HRNet family: exact structure vs the official implementation, shapes, CCW
weights, the two fusion modes, checkpoint loading."""
import json

import pytest
import torch

import bench
from bench.checkpoints import CheckpointMismatchError, load_official_checkpoint
from bench.complexity import count_params
from bench.models.layers import fuse_branches, make_fuse_layers, separable_conv3x3_bn
from bench.models.litehrnet import CrossResolutionWeighting, SpatialWeighting
from bench.registry import BadOverrideError
from conftest import GOLDEN, assert_output_matches, assert_state_matches, golden_input, official_weights

OFFICIAL = json.loads((GOLDEN / "litehrnet_official.json").read_text())
FAMILY = ["litehrnet_18", "litehrnet_30", "naive_litehrnet_18", "wider_naive_litehrnet_18"]


@pytest.mark.parametrize("name", FAMILY)
def test_state_dict_and_params_equal_the_official_implementation(name):
    assert_state_matches(bench.create_model(name), OFFICIAL["models"][name])


@pytest.mark.parametrize("name", ["litehrnet_18", "naive_litehrnet_18"])
def test_forward_equals_the_official_forward(name):
    ref = OFFICIAL["models"][name]["output_checksum"]
    model = official_weights(bench.create_model(name))
    x = golden_input(ref)
    with torch.no_grad():
        out = model(x)
        standard = official_weights(bench.create_model(name, fusion="standard"))(x)
    assert_output_matches(out, ref)
    # the plain HRNet sum computes something else with the same weights
    assert (standard - out).abs().max().item() > 1e-2


@pytest.mark.parametrize("name", ["litehrnet_18", "litehrnet_30", "naive_litehrnet_18",
                                  "wider_naive_litehrnet_18", "small_hrnet_w16",
                                  "litehrnet_18_seg", "litehrnet_30_seg"])
def test_exact_parameter_counts(name, golden):
    golden("param_counts", name, count_params(bench.create_model(name)))


@pytest.mark.parametrize("dropped", [1, 2])
def test_exact_parameter_counts_of_ablations(dropped, golden):
    model = bench.create_model("wider_naive_litehrnet_18", drop_pointwise=dropped)
    golden("param_counts", f"wider_naive_litehrnet_18(drop_pointwise={dropped})", count_params(model))


@pytest.mark.parametrize("weighting", ["spatial", "cross_resolution"])
def test_exact_parameter_counts_of_ccw_variants(weighting, golden):
    model = bench.create_model("litehrnet_18", weighting=weighting)
    golden("param_counts", f"litehrnet_18(weighting={weighting})", count_params(model))


@pytest.mark.parametrize("size,joints", [((256, 192), 17), ((384, 288), 17), ((256, 256), 16)])
@pytest.mark.parametrize("name", ["litehrnet_18", "naive_litehrnet_18"])
def test_heatmaps_at_quarter_resolution(name, size, joints):
    model = bench.create_model(name, num_joints=joints).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, *size))
    assert out.shape == (2, joints, size[0] // 4, size[1] // 4)


@pytest.mark.parametrize("size,classes", [((64, 128), 19), ((96, 96), 59)])
@pytest.mark.parametrize("name", ["litehrnet_18_seg", "litehrnet_30_seg"])
def test_segmentation_logits_at_quarter_resolution(name, size, classes):
    model = bench.create_model(name, num_classes=classes).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, *size))
    assert out.shape == (2, classes, size[0] // 4, size[1] // 4)


@pytest.mark.parametrize("name", ["litehrnet_18", "litehrnet_30"])
def test_segmentation_network_is_the_pose_backbone_and_a_1x1_classifier(name):
    """Table 8's networks keep the released backbone, iterative head included (state
    keys and shapes of the official pose backbone); only the classifier differs."""
    def shapes(module):
        return {k: tuple(v.shape) for k, v in module.state_dict().items()}

    seg, pose = bench.create_model(f"{name}_seg"), bench.create_model(name)
    assert shapes(seg.backbone) == shapes(pose.backbone)
    assert shapes(seg.decode_head) == {"conv_seg.weight": (19, 40, 1, 1), "conv_seg.bias": (19,)}
    # a pose protocol's num_joints does not reach it (its spec has num_classes instead)
    with pytest.raises(BadOverrideError, match="num_joints"):
        bench.create_model(f"{name}_seg", num_joints=17)


def test_spatial_weights_are_one_vector_per_channel_in_0_1():
    sw = SpatialWeighting(40, ratio=4).eval()
    x = torch.randn(2, 40, 16, 12)
    w = sw.weights(x)
    assert w.shape == (2, 40, 1, 1)
    assert 0 < w.min() and w.max() < 1
    assert torch.allclose(sw(x), x * w)


def test_cross_resolution_weights_match_each_branch_and_lie_in_0_1():
    crw = CrossResolutionWeighting([20, 40, 80], ratio=8).eval()
    xs = [torch.randn(1, 20, 32, 24), torch.randn(1, 40, 16, 12), torch.randn(1, 80, 8, 6)]
    with torch.no_grad():
        ws = crw.weights(xs)
    assert [tuple(w.shape) for w in ws] == [tuple(x.shape) for x in xs]
    assert all(0 < w.min() and w.max() < 1 for w in ws)
    # weights are computed on the lowest resolution and upsampled by nearest neighbour:
    # every 4x4 block of the highest-resolution map is constant
    blocks = ws[0].unfold(2, 4, 4).unfold(3, 4, 4)
    assert torch.all(blocks == blocks[..., :1, :1])


def test_official_fusion_closed_form_on_two_branches():
    """Output 0 = ReLU(2 x0 + up(x1)); output 1 = ReLU(2 down(x0') + x1) where x0' is the
    in-place-updated x0 = 2 x0 + up(x1)."""
    torch.manual_seed(0)
    fuse = make_fuse_layers([4, 8], 2, separable_conv3x3_bn).eval()
    relu = torch.nn.ReLU()
    x0, x1 = torch.randn(1, 4, 8, 8), torch.randn(1, 8, 4, 4)
    with torch.no_grad():
        up = fuse[0][1](x1)
        x0_updated = 2 * x0 + up
        expected = [relu(x0_updated), relu(2 * fuse[1][0](x0_updated) + x1)]
        official = fuse_branches([x0.clone(), x1.clone()], fuse, relu, "official")
        standard = fuse_branches([x0.clone(), x1.clone()], fuse, relu, "standard")
        expected_standard = [relu(x0 + up), relu(fuse[1][0](x0) + x1)]
    for got, want in zip(official, expected):
        assert torch.allclose(got, want, atol=1e-6)
    for got, want in zip(standard, expected_standard):
        assert torch.allclose(got, want, atol=1e-6)


def test_load_official_checkpoint_unwraps_container_and_prefix(tmp_path):
    source = official_weights(bench.create_model("litehrnet_18"))
    path = tmp_path / "litehrnet_18_coco_256x192.pth"
    torch.save({"meta": {}, "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    target = load_official_checkpoint(bench.create_model("litehrnet_18"), path)
    for k, v in source.state_dict().items():
        assert torch.equal(target.state_dict()[k], v)


def test_checkpoint_mismatch_lists_missing_and_unexpected_keys():
    state = bench.create_model("litehrnet_18").state_dict()
    state["keypoint_head.extra.weight"] = torch.zeros(1)
    del state["keypoint_head.final_layer.bias"]
    with pytest.raises(CheckpointMismatchError) as err:
        load_official_checkpoint(bench.create_model("litehrnet_18"), state)
    assert "missing keys (1): keypoint_head.final_layer.bias" in str(err.value)
    assert "unexpected keys (1): keypoint_head.extra.weight" in str(err.value)


def test_checkpoint_of_another_width_is_refused_with_shapes():
    state = bench.create_model("naive_litehrnet_18").state_dict()
    with pytest.raises(CheckpointMismatchError, match="shape mismatches"):
        load_official_checkpoint(bench.create_model("wider_naive_litehrnet_18"), state)


@pytest.mark.parametrize("name,modules", [("litehrnet_18", (2, 4, 2)), ("litehrnet_30", (3, 8, 3))])
def test_structure_of_table1(name, modules):
    """Stem: stride-2 3x3 conv + shuffle block; stages of modules, each two CCW blocks
    and one fusion block; branch widths 40/80/160/320 (Table 1)."""
    from bench.models.litehrnet import ConditionalChannelWeighting, LiteHRModule
    backbone = bench.create_model(name).backbone
    assert backbone.stem.conv1.conv.stride == (2, 2) and backbone.stem.conv1.conv.kernel_size == (3, 3)
    for s, count in enumerate(modules):
        stage = getattr(backbone, f"stage{s}")
        assert [type(m) for m in stage] == [LiteHRModule] * count
        for module in stage:
            assert len(module.layers) == 2
            assert all(isinstance(block, ConditionalChannelWeighting) for block in module.layers)
            assert module.in_channels == [40, 80, 160, 320][: s + 2]
            assert len(module.fuse_layers) == s + 2
