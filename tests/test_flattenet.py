"""FlatteNet: the DWSGConv layer and the rearrangement (Sec. III-B), the settings of Tables
I, VII, IX and XI with exact parameter counts derived by hand, the subsampling-depth
variants, the Table II options, the deformable convs of the detector, and the equivalence
claim of Sec. III-C (published value and tolerance read from its suite). Printed
parameter and FLOP values are checked from the suites in tests/test_complexity.py."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bench
from bench.complexity import count_params
from bench.complexity.fold_equivalence import fold_equivalence
from bench.models.flattenet import (DeformableConv2d, DWSGConv, ModulatedDeformConv2d,
                                    Rearrangement, regular_conv1x1)
from bench.registry import BadOverrideError
from bench.suite import load_suite
from conftest import REPO

RESNET50_TRUNK = 23_508_032      # torchvision ResNet-50 without fc (25,557,032 - 2,049,000)
RESNET101_TRUNK = 42_500_160     # ResNet-101 without fc (44,549,160 - 2,049,000)


def dwsgconv_params(c: int, k: int = 3, g1: int = 32, g3: int = 64, expansion: int = 1,
                    prelu: bool = True) -> int:
    """Depthwise k x k (c k^2) + BN (2c); FPGConv c^2 / g1 + BN (2c) + PReLU (c);
    SPGConv c (e c) / g3 + BN (2 e c)."""
    return (c * k * k + 2 * c + c * c // g1 + 2 * c + (c if prelu else 0)
            + c * c * expansion // g3 + 2 * c * expansion)


@pytest.fixture(scope="module")
def models():
    cache = {}

    def get(name, **overrides):
        if not name.endswith(("_seg", "_det")):
            overrides.setdefault("num_joints", 16)      # the paper's pose results are MPII
        key = (name, tuple(sorted((k, repr(v)) for k, v in overrides.items())))
        if key not in cache:
            cache[key] = bench.create_model(name, **overrides).eval()
        return cache[key]
    return get


# --- the layer and the rearrangement on hand-computed cases ---------------------------

def test_dwsgconv_follows_fig3():
    layer = DWSGConv(64, kernel_size=5, stride=2, g1=8, g2=4, g3=16, expansion=2)
    assert (layer.dwconv.groups, layer.dwconv.kernel_size, layer.dwconv.stride) == (64, (5, 5), (2, 2))
    assert (layer.pwconv1.groups, layer.pwconv1.out_channels) == (8, 64)
    assert (layer.pwconv2.groups, layer.pwconv2.out_channels) == (16, 128)
    # channel-wise PReLU initialised to 1 (Sec. IV-A): one slope per channel, the identity
    assert isinstance(layer.act, nn.PReLU) and layer.act.weight.shape == (64,)
    assert torch.equal(layer.act.weight, torch.ones(64))
    assert count_params(layer) == dwsgconv_params(64, 5, 8, 16, 2)
    assert isinstance(DWSGConv(64, activation="relu").act, nn.ReLU)


def test_dwsgconv_computes_the_four_components_in_order():
    torch.manual_seed(0)
    layer = DWSGConv(8, g1=2, g2=4, g3=2, expansion=2).eval()
    for bn in (layer.dw_bn, layer.pw_bn1, layer.pw_bn2):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    layer.act.weight.data.fill_(0.25)
    x = torch.randn(2, 8, 5, 5)
    y = layer.dw_bn(F.conv2d(x, layer.dwconv.weight, padding=1, groups=8))
    y = layer.pw_bn1(F.conv2d(y, layer.pwconv1.weight, groups=2))
    y = torch.where(y > 0, y, 0.25 * y)
    # channel shuffle with g2 = 4 groups of 2 channels: 0 2 4 6 1 3 5 7 <- 0 1 2 ... 7
    y = y[:, [0, 2, 4, 6, 1, 3, 5, 7]]
    y = torch.relu(layer.pw_bn2(F.conv2d(y, layer.pwconv2.weight, groups=2)))
    with torch.no_grad():
        assert torch.allclose(layer(x), y, atol=1e-6)


def test_regular_conv1x1_is_conv_bn_relu():
    block = regular_conv1x1(2048)
    assert [type(m) for m in block] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    assert count_params(block) == 2048 * 2048 + 2 * 2048


def test_pixel_shuffle_as_fig4():
    """Fig. 4: c = 8, h = w = 1, r = 2: channels 4c'..4c'+3 become the 2x2 block of c'."""
    out = F.pixel_shuffle(torch.arange(8.).view(1, 8, 1, 1), 2)
    assert out.shape == (1, 2, 2, 2)
    assert out[0, 0].tolist() == [[0, 1], [2, 3]] and out[0, 1].tolist() == [[4, 5], [6, 7]]


def test_paper_rearrangement_moves_block_p_to_subpixel_p():
    """R = PS_u o CS_{u^2}: the descriptor stacked as channel block p (raster order) lands at
    sub-pixel p = i u + j of every coarse position, all D channels of it."""
    u, d = 3, 4
    z = torch.arange(u * u, dtype=torch.float).repeat_interleave(d).view(1, u * u * d, 1, 1)
    z = z.expand(1, -1, 2, 2).contiguous()
    y = Rearrangement(u * u * d, u)(z)
    assert y.shape == (1, d, 2 * u, 2 * u)
    expected = torch.arange(u * u, dtype=torch.float).view(u, u).repeat(2, 2)
    assert all(torch.equal(y[0, c], expected) for c in range(d))


@pytest.mark.parametrize("mode", ["cs+ps", "ps", "randperm+ps"])
def test_rearrangement_is_a_bijection_inverted_exactly(mode):
    r = Rearrangement(64 * 5, 8, mode, seed=3)
    z = torch.randn(2, 320, 3, 4)
    y = r(z)
    assert y.shape == (2, 5, 24, 32)
    assert torch.equal(r.inverse(y), z)
    assert torch.equal(r(r.inverse(y)), y)
    # a permutation of the elements: every value once
    ids = torch.arange(2 * 320 * 12, dtype=torch.float64).view(2, 320, 3, 4)
    assert torch.equal(r(ids).flatten().sort().values, ids.flatten())


def test_random_permutation_is_seeded_and_not_in_the_state_dict():
    a, b, c = (Rearrangement(256, 4, "randperm+ps", seed=s) for s in (0, 0, 1))
    assert torch.equal(a.permutation, b.permutation) and not torch.equal(a.permutation, c.permutation)
    assert sorted(a.permutation.tolist()) == list(range(256))
    assert "permutation" not in a.state_dict()


def test_rearrangement_refuses_channels_that_do_not_split():
    with pytest.raises(ValueError, match="do not split into upscale"):
        Rearrangement(100, 8)


# --- the registered networks ------------------------------------------------------------

@pytest.mark.parametrize("name,layer_params", [
    # Table I on 2048 channels: 18,432 + 131,072 + 65,536 + 2,048 + 3 x 4,096
    ("flattenet_resnet50", dwsgconv_params(2048)),
    # footnote 6 and the complementary groups g1 = 64, g3 = 1024 / 64 = 16, c_out = 2 c_in
    ("flattenet_shufflenetv2", dwsgconv_params(1024, g1=64, g3=16, expansion=2)),
    # Table XI, 6 subsamplings: one stride-2 layer, c_out = 4 c_in
    ("flattenet_resnet50_sub6", dwsgconv_params(2048, expansion=4)),
    # 7: then g1 = 64, g3 = 128 on 8192 channels, c_out = 4 c_in
    ("flattenet_resnet50_sub7", dwsgconv_params(2048, expansion=4)
     + dwsgconv_params(8192, g1=64, g3=128, expansion=4)),
    # Table VII: two k = 7 layers, c_out = 2 c_in each (printed 1.40M)
    ("flattenet_resnet101_seg", dwsgconv_params(2048, 7, expansion=2)
     + dwsgconv_params(4096, 7, g1=64, g3=64, expansion=2)),
    # Table IX: k = 5, g1 = g2 = g3 = 32, c_out = 2 c_in
    ("flattenet_resnet101_det", dwsgconv_params(2048, 5, g1=32, g3=32, expansion=2)),
])
def test_flattening_module_parameters_by_hand(models, name, layer_params):
    assert count_params(models(name).flatten.layers) == layer_params


def test_network_parameters_are_trunk_plus_module_plus_predictor(models):
    # predictor: 32-dimensional descriptors -> 16 joints, with bias
    assert count_params(models("flattenet_resnet50")) == RESNET50_TRUNK + 229_376 + 32 * 16 + 16
    assert count_params(models("flattenet_resnet101")) == RESNET101_TRUNK + 229_376 + 528
    trunk = count_params(bench.create_model("resnet50", num_classes=0))
    assert trunk == RESNET50_TRUNK
    # Table VII: 8192 / 64 = 128-dimensional descriptors -> 59 classes
    assert count_params(models("flattenet_resnet101_seg")) == RESNET101_TRUNK + 1_404_928 + 128 * 59 + 59


def test_detector_parameters_by_hand(models):
    det = models("flattenet_resnet101_det")
    # CenterNet heads on 64 channels: 3x3 conv to 64 (+bias) then 1x1 to 20 / 2 / 2 (+bias)
    head = 3 * (64 * 64 * 9 + 64) + (64 * 20 + 20) + 2 * (64 * 2 + 2)
    assert count_params(det.head) == head
    # DCNv2 offsets and masks: a 3x3 conv 512 -> 27 with bias in each of layer4's 3 blocks
    offsets = 3 * (512 * 27 * 9 + 27)
    assert count_params(det) == RESNET101_TRUNK + 462_848 + head + offsets
    plain = bench.create_model("flattenet_resnet101_det", deformable=False)
    assert count_params(det) - count_params(plain) == offsets


@pytest.mark.parametrize("name,overrides,subsamplings,coarse", [
    ("flattenet_resnet50", {}, 5, 8), ("flattenet_resnet50_sub6", {}, 6, 4),
    ("flattenet_resnet50_sub7", {}, 7, 2), ("flattenet_shufflenetv2", {}, 5, 8),
    ("flattenet_resnet50", {"layer_type": "conv1x1"}, 5, 8),
    ("flattenet_resnet50", {"layers": [{"expansion": 8}]}, 5, 8)])
def test_pose_heatmaps_at_quarter_resolution_whatever_the_depth(models, name, overrides,
                                                                subsamplings, coarse):
    """Table V: the layers' output resolution (8x8, 4x4, 2x2 at 256x256) falls with each
    subsampling while u grows, so the 16 MPII heatmaps stay at 64x64."""
    model = models(name, **overrides)
    assert (model.spec.subsamplings, model.spec.output_stride, model.spec.num_joints) == (subsamplings, 4, 16)
    seen = []
    handle = model.flatten.layers.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[-2:])))
    with torch.no_grad():
        out = model(torch.rand(1, 3, 256, 256))
    handle.remove()
    assert out.shape == (1, 16, 64, 64) and seen == [(coarse, coarse)]


def test_table2_options_change_only_what_they_name(models):
    base = models("flattenet_resnet50")
    relu = models("flattenet_resnet50", activation="relu")
    assert isinstance(relu.flatten.layers[0].act, nn.ReLU)
    assert count_params(base) - count_params(relu) == 2048          # the PReLU slopes
    conv = models("flattenet_resnet50", layer_type="conv1x1")
    assert count_params(conv.flatten.layers) == 2048 * 2048 + 2 * 2048
    wide = models("flattenet_resnet50", layers=[{"expansion": 8}])
    assert count_params(wide.flatten.layers) == 716_800
    assert wide.flatten.out_channels == 256 and wide.final_layer.in_channels == 256
    for mode in ("ps", "randperm+ps"):
        other = models("flattenet_resnet50", rearrangement=mode)
        assert other.flatten.rearrange.mode == mode
        assert count_params(other) == count_params(base)


def test_segmentation_and_detection_outputs(models):
    with torch.no_grad():
        seg = models("flattenet_resnet101_seg")(torch.rand(1, 3, 160, 160))
        hm, wh, reg = models("flattenet_resnet101_det")(torch.rand(1, 3, 128, 128))
    assert seg.shape == (1, 59, 40, 40)
    assert (hm.shape, wh.shape, reg.shape) == ((1, 20, 32, 32), (1, 2, 32, 32), (1, 2, 32, 32))
    # CenterNet's heatmap prior: untrained, every centre has probability ~0.1
    assert torch.allclose(torch.sigmoid(hm), torch.full_like(hm, 0.1), atol=0.01)


def test_pose_defaults_to_17_joints_and_mpii_protocols_pass_16():
    assert bench.registry.resolve_spec("flattenet_resnet101").num_joints == 17
    model = bench.create_model("flattenet_shufflenetv2", num_joints=16)
    assert model.final_layer.out_channels == 16
    assert load_suite(REPO / "suites" / "flattenet_table3.yaml").protocols["mpii"].num_joints == 16


@pytest.mark.parametrize("overrides,message", [
    ({"layers": [{"g1": 48}]}, r"layers\[0\]: g1 = 48 does not divide 2048 channels"),
    ({"layers": [{"expansion": 1, "groups": 4}]}, r"layers\[0\]: unknown DWSGConv field"),
    ({"layers": [{"stride": 3}]}, r"stride must be 1 or 2"),
    ({"layers": [{"kernel_size": 4}]}, r"kernel_size must be odd"),
    ({"upscale": 64}, r"2048 channels are not a multiple of upscale\^2 = 4096"),
    ({"rearrangement": "shuffle"}, r"rearrangement must be one of"),
    ({"activation": "gelu"}, r"activation must be one of"),
    ({"backbone": "vgg16"}, r"backbone must be one of"),
])
def test_bad_settings_are_refused_with_the_reason(overrides, message):
    with pytest.raises(BadOverrideError, match=message):
        bench.registry.resolve_spec("flattenet_resnet50", **overrides)


def test_imagenet_backbone_loads_into_the_pose_network(tmp_path):
    from bench.checkpoints import load_pretrained_backbone
    classifier = bench.create_model("resnet50")     # torchvision keys, with fc
    torch.save(classifier.state_dict(), tmp_path / "resnet50.pth")
    model = bench.create_model("flattenet_resnet50")
    done = load_pretrained_backbone(model, tmp_path / "resnet50.pth")
    assert done["classifier_keys_dropped"] == 2
    assert torch.equal(model.backbone.layer4[2].conv3.weight, classifier.layer4[2].conv3.weight)


# --- deformable convolution (the detector's layer4) -----------------------------------

def _deform(seed=0):
    torch.manual_seed(seed)
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=True)
    return conv, DeformableConv2d(conv)


def test_deformable_conv_without_offsets_is_the_regular_conv():
    conv, dcn = _deform()
    dcn.conv.load_state_dict(conv.state_dict())
    x = torch.randn(2, 4, 7, 5)
    zero = torch.zeros(2, 18, 7, 5)
    with torch.no_grad():
        assert torch.allclose(dcn.conv(x, zero, torch.ones(2, 9, 7, 5)), conv(x), atol=1e-5)
        # as initialised: zero offsets, masks sigmoid(0) = 1/2 on every tap (bias kept)
        half = dcn(x) - conv.bias.view(1, -1, 1, 1)
        assert torch.allclose(half, 0.5 * (conv(x) - conv.bias.view(1, -1, 1, 1)), atol=1e-5)


def test_deformable_conv_with_a_unit_offset_reads_the_shifted_input():
    """dx = +1 on every tap: the conv of the input moved one column left (zeros entering
    on the right). Column 0 differs: its left taps read x[0] where the shifted input's
    conv reads its zero padding."""
    conv, dcn = _deform(1)
    dcn.conv.load_state_dict(conv.state_dict())
    x = torch.randn(1, 4, 6, 6)
    offset = torch.zeros(1, 9, 2, 6, 6)
    offset[:, :, 1] = 1.0                        # (dy, dx) pairs: dx = 1
    shifted = torch.cat([x[..., 1:], torch.zeros(1, 4, 6, 1)], dim=-1)
    with torch.no_grad():
        out = dcn.conv(x, offset.view(1, 18, 6, 6), torch.ones(1, 9, 6, 6))
        assert torch.allclose(out[..., 1:], conv(shifted)[..., 1:], atol=1e-5)


def test_deformable_conv_is_charged_as_the_conv_it_replaces():
    from bench.complexity import count_flops
    conv, dcn = _deform()
    plain = count_flops(conv, (4, 8, 8), "hrnet_paper").total
    # the sampling conv as a conv, plus the offset conv (27 outputs instead of 6)
    assert count_flops(dcn, (4, 8, 8), "hrnet_paper").total == plain + plain * 27 // 6
    assert isinstance(dcn.conv, ModulatedDeformConv2d) and isinstance(dcn.conv, nn.Conv2d)


# --- Sec. III-C: predicting through R equals predicting folded targets -----------------

@pytest.fixture(scope="module")
def equivalence_suite():
    return load_suite(REPO / "suites" / "flattenet_equivalence.yaml")


def test_fold_and_unfold_are_inverse_on_label_maps(models):
    model = models("flattenet_shufflenetv2")
    y = torch.randn(2, 16, 24, 16)
    folded = model.fold_targets(y)
    assert folded.shape == (2, 16 * 64, 3, 2)
    assert torch.equal(model.unfold_predictions(folded), y)
    # channel p C + c of the folded map is joint c at sub-pixel p = i u + j
    assert torch.equal(folded[:, 5 * 16 + 3], y[:, 3, 0::8, 5::8])


@pytest.mark.parametrize("name,overrides", [
    ("flattenet_shufflenetv2", {}),
    ("flattenet_resnet50", {}),
    ("flattenet_resnet50", {"rearrangement": "ps"}),
    ("flattenet_resnet50", {"rearrangement": "randperm+ps"}),
])
def test_equivalence_claim_holds_to_float_tolerance(models, equivalence_suite, name, overrides):
    col = equivalence_suite.columns["fold"]
    published = equivalence_suite.rows[0].published["fold"]
    found = fold_equivalence(models(name, **overrides), col.input[0])
    assert abs(found["max_abs_error"] - published) <= col.tolerance.abs
    assert found["loss_error"] <= col.tolerance.abs
    assert found["output_scale"] > 0.1        # the probe is not comparing near-zero outputs
    assert found["folded_shape"][1] == 16 * 64


def test_equivalence_measure_catches_a_misplaced_descriptor(models, equivalence_suite):
    """Read the descriptors as contiguous blocks while R is pixel shuffle alone: the claim
    no longer holds, and the measure says so far beyond the tolerance."""
    model = bench.create_model("flattenet_shufflenetv2", rearrangement="ps")
    blocks = Rearrangement(2048, 8, "cs+ps")
    model.flatten.rearrange.descriptors = blocks.descriptors
    found = fold_equivalence(model, equivalence_suite.columns["fold"].input[0])
    assert found["max_abs_error"] > 1e3 * equivalence_suite.columns["fold"].tolerance.abs


def test_models_without_the_claim_are_refused(models):
    with pytest.raises(ValueError, match="does not expose predict_folded, fold_targets, "
                                         "unfold_predictions"):
        fold_equivalence(models("flattenet_resnet101_det"), (3, 64, 64))


def test_every_equivalence_row_is_gated_at_zero(equivalence_suite):
    col = equivalence_suite.columns["fold"]
    assert col.gate and col.tolerance.abs <= 1e-5
    assert all(row.published["fold"] == 0 for row in equivalence_suite.rows)
