"""GSTO: the gate and the plug-in operation, GFM / GTM placement in HRNet, the supervised
form's auxiliary outputs and loss, Table 3's attention variants, Table 6's heads, and the
parameter convention of GSTO's tables. Published complexity values are checked from the
suites in tests/test_complexity.py."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bench
from bench.complexity import count_params
from bench.models.gsto import (GSTO, AttentionModule, ChannelGate, GatedFusionModule,
                               SpatialAttention, SpatialGate, TransitionGate)
from bench.models.hrnet import HighResolutionModule
from bench.registry import BadOverrideError
from bench.runner import RunContext, measure_row
from bench.suite import load_suite
from conftest import REPO

W18 = "gsto_hrnet_w18_small_v2_seg"
OFF = dict(gfm=(False, False, False), gtm=("none", "none", "none"))


@pytest.fixture(scope="module")
def small_input():
    torch.manual_seed(0)
    return torch.rand(2, 3, 64, 128)


def saturate_to_one(gate: nn.Module) -> None:
    """Weights that make an official gate exactly 1: conv 0, BN shift 50 -> sigmoid(50),
    which is 1.0 in float32."""
    with torch.no_grad():
        for m in gate.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.bias.fill_(50.0)


# --- the gate and the operation ---------------------------------------------------------

@pytest.mark.parametrize("style,low", [("official", 0.5), ("paper", 0.0)])
def test_spatial_gate_shape_and_range(style, low):
    gate = SpatialGate(6, style).train()
    g = gate(torch.randn(3, 6, 5, 7) * 4)
    assert g.shape == (3, 1, 5, 7)
    # the released conv-BN-ReLU before the sigmoid keeps the gate in [0.5, 1)
    assert g.min() >= low and g.max() <= 1.0
    if style == "official":
        assert (g == 0.5).any()          # where the ReLU cut
    else:
        assert g.min() < 0.5             # Eq. 4: the full (0, 1)


def test_paper_gate_is_a_sigmoid_of_a_weighted_channel_sum():
    gate = SpatialGate(2, "paper")
    with torch.no_grad():
        gate[0].weight.copy_(torch.tensor([1.0, -2.0]).view(1, 2, 1, 1))
    x = torch.tensor([[[[3.0]], [[1.0]]]])                 # one position, C = 2
    assert gate(x).item() == pytest.approx(1 / (1 + math.exp(-(3.0 - 2.0))))


@pytest.mark.parametrize("downsamplings", [0, 1, 2])
def test_transition_gate_reaches_the_lowest_branch(downsamplings):
    gate = TransitionGate(19, downsamplings).eval()
    g = gate(torch.randn(1, 19, 32, 64))
    assert g.shape == (1, 1, 32 // 2 ** downsamplings, 64 // 2 ** downsamplings)
    assert g.min() >= 0.5 and g.max() < 1.0


def test_channel_gate_and_spatial_attention_shapes():
    x = torch.randn(2, 36, 6, 8)
    c = ChannelGate(36)(x)
    assert c.shape == (2, 36, 1, 1) and 0 < c.min() and c.max() < 1
    assert ChannelGate(36)[1].out_channels == 2            # 36 // 16
    s = SpatialAttention().eval()(x)
    assert s.shape == (2, 1, 6, 8) and 0 < s.min() and s.max() < 1


def test_unsupervised_gsto_with_a_gate_of_ones_is_the_plain_transfer():
    transfer = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(4, 8, 1))
    op = GSTO(4, transfer).eval()
    saturate_to_one(op.gate)
    x = torch.rand(2, 4, 6, 6)
    with torch.no_grad():
        assert torch.equal(op.gate(x), torch.ones(2, 1, 6, 6))
        assert torch.equal(op(x), transfer(x))


def test_gsto_transfers_the_gated_feature():
    transfer = nn.AvgPool2d(2)
    op = GSTO(3, transfer).eval()
    x = torch.rand(1, 3, 4, 4)
    with torch.no_grad():
        g, p = op.gate_of(x)
        assert p is None and g.shape == (1, 1, 4, 4)
        assert torch.allclose(op(x), transfer(x * g))


def test_supervised_gsto_returns_its_class_maps():
    op = GSTO(8, nn.MaxPool2d(2), form="supervised", num_classes=5).eval()
    x = torch.rand(2, 8, 6, 6)
    with torch.no_grad():
        y, p = op(x)
        assert y.shape == (2, 8, 3, 3) and p.shape == (2, 5, 6, 6)
        assert torch.equal(p, op.predictor(x))                # Eq. 5
        assert torch.allclose(y, F.max_pool2d(x * op.gate(p), 2))   # Eq. 6, then ST
        # a gate fed with class maps computed elsewhere (a shared predictor)
        shared = GSTO(8, nn.MaxPool2d(2), form="supervised", num_classes=5, predictor=False)
        assert not hasattr(shared, "predictor")
        assert shared(x, class_maps=p)[1] is p
    with pytest.raises(ValueError, match="needs num_classes"):
        GSTO(8, form="supervised")


# --- GSTO in HRNet ----------------------------------------------------------------------

def test_gsto_hrnet_without_gsto_is_hrnetv2(small_input):
    """Every GSTO part switched off: HRNetV2's state dict, weights and forward exactly
    (the reference of Table 4's increments)."""
    base = bench.create_model("hrnetv2_w18_small_v2_seg").eval()
    off = bench.create_model(W18, **OFF).eval()
    assert {k: v.shape for k, v in off.state_dict().items()} == \
           {k: v.shape for k, v in base.state_dict().items()}
    off.load_state_dict(base.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(off(small_input), base(small_input))


def test_gated_fusion_with_gates_of_ones_is_hrnet_fusion():
    torch.manual_seed(1)
    plain = HighResolutionModule([4, 8, 16], num_blocks=1, upsample="bilinear").eval()
    gated = GatedFusionModule([4, 8, 16], num_blocks=1, upsample="bilinear").eval()
    gated.load_state_dict(plain.state_dict(), strict=False)
    for row in gated.att_layers:
        for gate in row:
            saturate_to_one(gate)
    xs = [torch.rand(1, 4, 16, 16), torch.rand(1, 8, 8, 8), torch.rand(1, 16, 4, 4)]
    with torch.no_grad():
        out_plain = plain([x.clone() for x in xs])
        out_gated = gated([x.clone() for x in xs])
    assert all(torch.equal(a, b) for a, b in zip(out_plain, out_gated))
    # one gate per (output, input) pair, identity term included, sized to the input
    assert [[g[0].in_channels for g in row] for row in gated.att_layers] == [[4, 8, 16]] * 3


def _module_types(model) -> dict[str, type]:
    return {f"stage{s}.{i}": type(m) for s in (2, 3, 4)
            for i, m in enumerate(getattr(model, f"stage{s}"))}


def test_gfm_goes_exactly_in_the_stages_named():
    model = bench.create_model(W18, gfm=(True, False, True), gtm=("none",) * 3)
    types = _module_types(model)
    assert types == {"stage2.0": GatedFusionModule,
                     "stage3.0": HighResolutionModule, "stage3.1": HighResolutionModule,
                     "stage3.2": HighResolutionModule,
                     "stage4.0": GatedFusionModule, "stage4.1": GatedFusionModule}
    extra = set(model.state_dict()) - set(bench.create_model(W18, **OFF).state_dict())
    assert extra and all(k.startswith(("stage2.", "stage4.")) and ".att_layers." in k for k in extra)


@pytest.mark.parametrize("gtm,predictors,gates", [
    (("none", "supervised", "supervised"), [2, 3], [2, 3]),
    (("supervised", "none", "unsupervised"), [1], [1, 3]),
    (("aux", "aux", "aux"), [1, 2, 3], []),
    (("none", "none", "supervised"), [3], [3]),
])
def test_gtm_goes_exactly_in_the_transitions_named(gtm, predictors, gates):
    model = bench.create_model(W18, gfm=(False,) * 3, gtm=gtm)
    assert [k for k in (1, 2, 3) if hasattr(model, f"last_layer_stage{k}")] == predictors
    assert [k for k in (1, 2, 3) if hasattr(model, f"att{k}")] == gates
    for k in gates:
        # aligned with transition{k}: a gate only where the new branch is made
        att, transition = getattr(model, f"att{k}"), getattr(model, f"transition{k}")
        assert len(att) == len(transition) == k + 1
        assert all(a is None for a in list(att)[:k]) and att[k] is not None
    extra = set(model.state_dict()) - set(bench.create_model(W18, **OFF).state_dict())
    assert all(k.split(".")[0] in {f"last_layer_stage{p}" for p in predictors} | {f"att{g}" for g in gates}
               for k in extra)


def _increment(widths, num_modules, c0, gtm, stage1_out=256, with_bn=False):
    """GSTO's parameters over HRNetV2 by hand. GFM: one C_j -> 1 gate per (output, input)
    in every module. Supervised GTM after stage k: HRNetV2's head on the U united
    channels (U^2 + U + U c0 + c0), a 3x3 gate conv c0 -> 1 and k-1 3x3 1 -> 1 steps."""
    bn = 2 if with_bn else 0
    total = 0
    for s, n in enumerate(num_modules):
        channels = widths[: s + 2]
        total += n * len(channels) * (sum(channels) + bn * len(channels))
    for k, form in enumerate(gtm, start=1):
        if form == "supervised":
            u = stage1_out if k == 1 else sum(widths[:k])
            total += u * u + u + u * c0 + c0 + bn * u
            total += 9 * c0 + 9 * (k - 1) + bn * k
    return total


W18_SHAPE = (W18, "hrnetv2_w18_small_v2_seg", (18, 36, 72, 144), (1, 3, 2))
W48_SHAPE = ("gsto_hrnet_w48_seg", "hrnetv2_w48_seg", (48, 96, 192, 384), (1, 4, 3))


@pytest.mark.parametrize("name,base,widths,modules,gtm", [
    (*W18_SHAPE, ("none",) * 3), (*W18_SHAPE, ("none", "none", "supervised")),
    (*W18_SHAPE, ("none", "supervised", "supervised")), (*W18_SHAPE, ("supervised",) * 3),
    (*W48_SHAPE, ("none", "supervised", "supervised")),
])
def test_parameter_increment_by_hand(name, base, widths, modules, gtm):
    """Tables 2 and 4's placements add exactly the GFM gates and GTM parts, under GSTO's
    counting (conv weights) and in all (plus their BatchNorms)."""
    ref = bench.create_model(base)
    model = bench.create_model(name, gtm=gtm)
    for convention, bn in (("gsto_paper", False), (None, True)):
        assert count_params(model, convention=convention) - count_params(ref, convention=convention) \
            == _increment(widths, modules, 19, gtm, with_bn=bn)


def test_training_mode_returns_the_stage_predictions_for_the_loss(small_input):
    model = bench.create_model(W18).train()
    out = model(small_input)
    assert {k: tuple(v.shape) for k, v in out.items()} == \
           {"out": (2, 19, 16, 32), "stage2": (2, 19, 16, 32), "stage3": (2, 19, 16, 32)}
    # eval mode: the final maps only (the supervised gates still use their predictions)
    with torch.no_grad():
        assert model.eval()(small_input).shape == (2, 19, 16, 32)
        aux_only = bench.create_model(W18, gfm=(False,) * 3, gtm=("aux",) * 3)
        assert torch.is_tensor(aux_only.eval()(small_input))
    assert set(aux_only.train()(small_input)) == {"out", "stage1", "stage2", "stage3"}


def test_stage_predictions_get_gradients_through_their_loss(small_input):
    model = bench.create_model(W18).train()
    labels = torch.randint(0, 19, (2, 16, 32))
    out = model(small_input)
    loss = sum(torch.nn.functional.cross_entropy(v, labels) for v in out.values())
    loss.backward()
    assert model.last_layer_stage2[0].weight.grad.abs().sum() > 0
    assert model.att3[3][0][0].weight.grad is not None


@pytest.mark.parametrize("after", ["block", "layer"])
@pytest.mark.parametrize("kind,cls", [("channel", ChannelGate), ("spatial", SpatialAttention)])
def test_attention_goes_after_each_block_or_layer(after, kind, cls, small_input):
    model = bench.create_model(W18, **OFF, attention=kind, attention_after=after)
    modules = [m for s in (2, 3, 4) for m in getattr(model, f"stage{s}")]
    assert all(isinstance(m, AttentionModule) for m in modules)
    if after == "block":   # one per output branch of every module
        assert [len(m.block_attention) for m in modules] == [2, 3, 3, 3, 4, 4]
        found = [a for m in modules for a in m.block_attention]
    else:                  # one per residual unit of every branch (two units each)
        assert [[len(b) for b in m.layer_attention] for m in modules] == \
               [[2] * 2] + [[2] * 3] * 3 + [[2] * 4] * 2
        found = [a for m in modules for b in m.layer_attention for a in b]
    assert found and all(isinstance(a, cls) for a in found)
    with torch.no_grad():
        assert model.eval()(small_input[:1]).shape == (1, 19, 16, 32)


@pytest.mark.parametrize("overrides,message", [
    (dict(gtm=("none", "supervised")), "gtm needs 3 entries"),
    (dict(gtm=("none", "gated", "supervised")), "gtm needs 3 entries"),
    (dict(gfm=(True, 1, True)), "gfm needs 3 booleans"),
    (dict(gate="channel"), "gate='channel' needs unsupervised GTMs"),
    (dict(attention="spatial"), "switch gfm off"),
    (dict(gate_style="relu"), "gate_style must be one of"),
])
def test_bad_placements_are_refused(overrides, message):
    with pytest.raises(BadOverrideError, match=message):
        bench.registry.resolve_spec(W18, **overrides)


def test_imagenet_hrnet_weights_fill_the_backbone_only():
    """GSTO's own modules are not in an ImageNet HRNet checkpoint: the pretrained layout
    asks for exactly HRNetV2's backbone keys."""
    model = bench.create_model(W18, gtm=("supervised",) * 3)
    base = bench.create_model("hrnetv2_w18_small_v2_seg")
    expected = {k for k in base.state_dict() if k.startswith(base.pretrained_layout.prefixes)}
    assert set(model.pretrained_layout.prefixes) == expected


def test_pose_network_gives_heatmaps_at_a_quarter():
    model = bench.create_model("gsto_hrnet_w32").eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 48)).shape == (1, 17, 16, 12)
    assert model.last_layer_stage3[-1].out_channels == 17          # c0 = joints


# --- Table 6 heads ------------------------------------------------------------------------

@pytest.mark.parametrize("name,gated", [("pspnet_resnet50_dilated", [True] * 4),
                                         ("deeplabv3_resnet50_dilated", [False] + [True] * 4)])
@pytest.mark.parametrize("form", ["none", "aux", "unsupervised", "supervised"])
def test_heads_gate_every_scale_transfer(name, gated, form):
    model = bench.create_model(name, gsto=form).train()
    head = model.head
    assert hasattr(head, "predictor") == (form in ("aux", "supervised"))
    if form in ("unsupervised", "supervised"):
        assert [g is not None for g in head.gates] == gated
        gate_in = 19 if form == "supervised" else 2048
        assert all(g[0].in_channels == gate_in for g in head.gates if g is not None)
    else:
        assert not hasattr(head, "gates")
    out = model(torch.rand(2, 3, 64, 64))
    out = out if isinstance(out, dict) else {"out": out}
    assert out["out"].shape == (2, 19, 8, 8)                           # output stride 8
    assert set(out) == ({"out", "head"} if form in ("aux", "supervised") else {"out"})


# --- the parameter convention of GSTO's tables -----------------------------------------------

def test_gsto_convention_counts_conv_and_linear_parameters_only():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=True), nn.BatchNorm2d(4), nn.Flatten(),
                          nn.Linear(4, 2))
    assert count_params(model, convention="gsto_paper") == (3 * 4 * 9 + 4) + (4 * 2 + 2)
    assert count_params(model) == count_params(model, convention="hrnet_paper") == 122 + 8


def test_gsto_convention_reproduces_the_printed_baselines():
    """HRNetV2 as GSTO's Table 4 prints it: 3.92M (W18-Small-v2) and 65.78M (W48; 65.77
    counted: one unit of the last digit), against 3.94M / 65.86M in all."""
    suite = load_suite(REPO / "suites" / "gsto_table4.yaml")
    rows = {r.model.name: r for r in suite.rows}
    for name, exact in (("hrnetv2_w18_small_v2_seg", 3_923_091), ("hrnetv2_w48_seg", 65_773_843)):
        model = bench.create_model(name)
        assert count_params(model, convention="gsto_paper") == exact
        printed = rows[name].published["params"]
        assert abs(exact / 1e6 - printed) <= 0.0065
        assert abs(count_params(model) / 1e6 - printed) > 0.015     # the full count is not it


def test_runner_keeps_the_full_count_beside_the_papers(tmp_path):
    suite_file = tmp_path / "gsto_params.yaml"
    suite_file.write_text(
        "suite: gsto_params\npaper: gsto\ntable: t\ntitle: t\n"
        "columns:\n  params: {unit: M, measure: params, convention: gsto_paper, tolerance: {abs: 0.01}}\n"
        "rows:\n  - {name: GSTO-HRNet-W18, model: gsto_hrnet_w18_small_v2_seg, published: {params: 3.95}}\n")
    suite = load_suite(suite_file)
    from bench.complexity.cache import MeasurementCache
    record = measure_row(suite, suite.rows[0], RunContext(cache=MeasurementCache(enabled=False)))
    cell = record["cells"]["params"]
    model = bench.create_model(W18)
    assert cell["raw"] == count_params(model, convention="gsto_paper") == 3_949_292
    assert cell["convention"] == "gsto_paper"
    assert cell["canonical"]["raw"] == count_params(model)


@pytest.mark.parametrize("name", [W18, "gsto_hrnet_w32", "gsto_hrnet_w48",
                                  "pspnet_resnet50_dilated", "deeplabv3_resnet50_dilated"])
def test_exact_parameter_counts(name, golden):
    """Every parameter (regression guard in tests/golden/param_counts.json; the published
    values are checked from the suites, the segmentation increments by hand above)."""
    golden("param_counts", name, count_params(bench.create_model(name)))
