"""Baseline pose networks: SimpleBaseline against the official PoseResNet, torchvision key
layouts of the ImageNet backbones, ImageNet weight loading, and the 8-stack Hourglass.
The published parameter / FLOP figures are checked against the suites' values in
tests/test_complexity.py."""
import json

import pytest
import torch

import bench
from bench.checkpoints import (CheckpointMismatchError, PretrainedBackboneError,
                               load_official_checkpoint, load_pretrained_backbone)
from bench.complexity import count_params
from conftest import (GOLDEN, assert_output_matches, assert_state_matches, golden_input,
                      official_weights)

OFFICIAL = json.loads((GOLDEN / "baselines_official.json").read_text())
POSE_MODELS = ["simple_baseline_resnet50", "simple_baseline_resnet101", "simple_baseline_resnet152",
               "mobilenetv2_pose", "shufflenetv2_pose", "hourglass_8stack"]


@pytest.fixture(scope="module", autouse=True)
def flush_denormals():
    """With the pose init (N(0, 0.001^2) convs) activations of deep nets underflow into
    denormal floats, which x86 CPUs compute up to 10x slower; flush them to zero."""
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)   # PyTorch's default


@pytest.fixture(scope="module")
def build():
    """build(name): one default instance per registered model for the whole module
    (the large ones take seconds to initialise). Tests must not modify them."""
    cache: dict[str, torch.nn.Module] = {}

    def get(name: str) -> torch.nn.Module:
        if name not in cache:
            cache[name] = bench.create_model(name).eval()
        return cache[name]

    return get


def shapes(model) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


# --- SimpleBaseline = official PoseResNet ------------------------------------------------

@pytest.mark.parametrize("name,params", [("simple_baseline_resnet50", 33_999_697),
                                         ("simple_baseline_resnet101", 52_991_825),
                                         ("simple_baseline_resnet152", 68_635_473)])
def test_simple_baseline_state_dict_and_params_equal_the_official_code(name, params, build):
    model, ref = build(name), OFFICIAL["models"][name]
    assert count_params(model) == params
    assert_state_matches(model, ref)


def test_simple_baseline_forward_equals_the_official_forward():
    ref = OFFICIAL["models"]["simple_baseline_resnet50"]["output_checksum"]
    model = official_weights(bench.create_model("simple_baseline_resnet50"))
    with torch.no_grad():
        assert_output_matches(model(golden_input(ref)), ref)


def test_simple_baseline_head_layout(build):
    """Three 4x4 stride-2 deconvs (padding 1, no output padding, no bias), each followed
    by BN and ReLU, then a 1x1 conv; keys at the top level as in the official model."""
    model = build("simple_baseline_resnet50")
    deconvs = [m for m in model.deconv_layers if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(deconvs) == 3 and len(model.deconv_layers) == 9
    for d in deconvs:
        assert (d.kernel_size, d.stride, d.padding, d.output_padding) == ((4, 4), (2, 2), (1, 1), (0, 0))
        assert d.bias is None and d.out_channels == 256
    s = shapes(model)
    assert s["deconv_layers.0.weight"] == (2048, 256, 4, 4)
    assert s["deconv_layers.7.running_var"] == (256,)
    assert s["final_layer.weight"] == (17, 256, 1, 1) and "final_layer.bias" in s


def test_official_checkpoint_loads_strictly_through_container_and_prefix(tmp_path, build):
    source = official_weights(bench.create_model("simple_baseline_resnet50"))
    path = tmp_path / "pose_resnet_50_256x192.pth"
    torch.save({"epoch": 140, "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    target = load_official_checkpoint(bench.create_model("simple_baseline_resnet50"), path)
    for k, v in source.state_dict().items():
        assert torch.equal(target.state_dict()[k], v), k


def test_mismatched_official_checkpoint_lists_the_keys(build):
    state = dict(build("simple_baseline_resnet50").state_dict())
    del state["final_layer.bias"]
    state["deconv_layers.0.bias"] = torch.zeros(256)
    with pytest.raises(CheckpointMismatchError) as err:
        load_official_checkpoint(bench.create_model("simple_baseline_resnet50"), state)
    assert "missing keys (1): final_layer.bias" in str(err.value)
    assert "unexpected keys (1): deconv_layers.0.bias" in str(err.value)


# --- ResNet classifiers (torchvision layout) ---------------------------------------------

@pytest.mark.parametrize("name,params", [("resnet50", 25_557_032), ("resnet101", 44_549_160),
                                         ("resnet152", 60_192_808)])
def test_resnet_params_equal_torchvision(name, params, build):
    assert count_params(build(name)) == params


def test_resnet_keys_are_torchvision_keys(build):
    s = shapes(build("resnet50"))
    assert s["conv1.weight"] == (64, 3, 7, 7)
    assert s["layer1.0.downsample.0.weight"] == (256, 64, 1, 1)
    assert s["layer1.0.downsample.1.running_mean"] == (256,)
    assert s["layer4.2.bn3.weight"] == (2048,)
    assert s["fc.weight"] == (1000, 2048) and s["fc.bias"] == (1000,)
    assert len(s) == 320  # torchvision's resnet50 state dict


def test_dilated_resnet_keeps_weights_and_resolution():
    model = bench.create_model("resnet50", num_classes=0,
                               replace_stride_with_dilation=(False, True, True)).eval()
    assert model.spec.output_stride == 8
    assert count_params(model) == 25_557_032 - (2048 * 1000 + 1000)
    assert model.layer4[0].conv2.dilation == (2, 2) and model.layer4[1].conv2.dilation == (4, 4)
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 2048, 8, 8)


def test_dilation_with_basic_blocks_is_refused():
    with pytest.raises(bench.registry.BadOverrideError, match="dilation needs bottleneck"):
        bench.registry.resolve_spec("resnet50", depth=18, replace_stride_with_dilation=(False, False, True))


# --- MobileNetV2 / ShuffleNetV2 backbones: torchvision key layout --------------------------

def test_mobilenetv2_backbone_has_torchvision_keys(build):
    model = build("mobilenetv2_pose")
    s = shapes(model)
    assert s["backbone.features.0.0.weight"] == (32, 3, 3, 3)
    assert s["backbone.features.0.1.running_var"] == (32,)
    assert s["backbone.features.1.conv.0.0.weight"] == (32, 1, 3, 3)     # t=1: no expansion
    assert s["backbone.features.1.conv.1.weight"] == (16, 32, 1, 1)
    assert s["backbone.features.2.conv.0.0.weight"] == (96, 16, 1, 1)    # expansion 6
    assert s["backbone.features.2.conv.3.weight"] == (24,)
    assert s["backbone.features.18.0.weight"] == (1280, 320, 1, 1)
    assert s["keypoint_head.deconv_layers.0.weight"] == (1280, 256, 4, 4)
    assert s["keypoint_head.final_layer.weight"] == (17, 256, 1, 1)
    # torchvision's mobilenet_v2 has 3,504,872 parameters, 1,281,000 of them in the classifier
    assert count_params(model.backbone) == 3_504_872 - 1_281_000


def test_shufflenetv2_backbone_has_torchvision_keys(build):
    model = build("shufflenetv2_pose")
    s = shapes(model)
    assert s["backbone.conv1.0.weight"] == (24, 3, 3, 3)
    assert s["backbone.stage2.0.branch1.0.weight"] == (24, 1, 3, 3)
    assert s["backbone.stage2.0.branch1.2.weight"] == (58, 24, 1, 1)
    assert s["backbone.stage2.0.branch2.0.weight"] == (58, 24, 1, 1)
    assert s["backbone.stage2.1.branch2.3.weight"] == (58, 1, 3, 3)
    assert "backbone.stage2.1.branch1.0.weight" not in s                  # stride 1: no branch1
    assert s["backbone.stage4.3.branch2.6.running_mean"] == (232,)
    assert s["backbone.conv5.0.weight"] == (1024, 464, 1, 1)
    assert s["keypoint_head.deconv_layers.0.weight"] == (1024, 256, 4, 4)
    # torchvision's shufflenet_v2_x1_0 has 2,278,604 parameters, 1,025,000 of them in fc
    assert count_params(model.backbone) == 2_278_604 - 1_025_000


# --- ImageNet weights into the backbone ----------------------------------------------------

def torchvision_checkpoint(model: torch.nn.Module, classifier: dict[str, tuple[int, ...]]) -> dict:
    """A classification checkpoint in torchvision's layout made from our backbone's weights."""
    state = {k[len("backbone."):]: v.clone() for k, v in model.state_dict().items()
             if k.startswith("backbone.")}
    state.update({k: torch.randn(shape) for k, shape in classifier.items()})
    return state


def assert_backbone_loaded(target, source_state, prefix=""):
    own = target.state_dict()
    for k, v in source_state.items():
        if f"{prefix}{k}" in own:
            assert torch.equal(own[f"{prefix}{k}"], v), k


def test_resnet50_classifier_loads_into_simple_baseline(tmp_path, build):
    source = official_weights(bench.create_model("resnet50"))
    path = tmp_path / "resnet50-imagenet.pth"
    torch.save(source.state_dict(), path)
    target = bench.create_model("simple_baseline_resnet50")
    head_before = target.final_layer.weight.clone()
    counts = load_pretrained_backbone(target, path)
    assert counts["classifier_keys_dropped"] == 2
    assert_backbone_loaded(target, {k: v for k, v in source.state_dict().items() if not k.startswith("fc.")})
    assert torch.equal(target.final_layer.weight, head_before)   # the head keeps its init


@pytest.mark.parametrize("name,classifier", [
    ("mobilenetv2_pose", {"classifier.1.weight": (1000, 1280), "classifier.1.bias": (1000,)}),
    ("shufflenetv2_pose", {"fc.weight": (1000, 1024), "fc.bias": (1000,)})])
def test_torchvision_classifier_loads_into_backbone(name, classifier, tmp_path):
    source = official_weights(bench.create_model(name))
    state = torchvision_checkpoint(source, classifier)
    path = tmp_path / f"{name}-imagenet.pth"
    torch.save(state, path)
    target = bench.create_model(name)
    counts = load_pretrained_backbone(target, path)
    assert counts["classifier_keys_dropped"] == 2
    assert_backbone_loaded(target, state, prefix="backbone.")


def test_missing_pretrained_file_names_it(tmp_path):
    path = tmp_path / "no-such-resnet50.pth"
    with pytest.raises(FileNotFoundError, match="no-such-resnet50.pth"):
        load_pretrained_backbone(bench.create_model("simple_baseline_resnet50"), path)


def test_mismatched_pretrained_checkpoint_lists_keys(tmp_path, build):
    state = dict(build("resnet50").state_dict())
    del state["layer4.2.bn3.weight"]
    state["layer5.0.conv1.weight"] = torch.zeros(1)
    path = tmp_path / "resnet50-broken.pth"
    torch.save(state, path)
    with pytest.raises(PretrainedBackboneError) as err:
        load_pretrained_backbone(bench.create_model("simple_baseline_resnet50"), path)
    message = str(err.value)
    assert "resnet50-broken.pth" in message
    assert "missing keys (1): layer4.2.bn3.weight" in message
    assert "unexpected keys (1): layer5.0.conv1.weight" in message


# --- Hourglass ------------------------------------------------------------------------------

def test_hourglass_returns_the_last_stack_and_all_stacks_on_request():
    model = bench.create_model("hourglass_8stack", num_stacks=3).eval()  # 3 stacks: fast, same code
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        stacks = model.forward_all(x)
        last = model(x)
    assert len(stacks) == 3 and all(s.shape == (1, 17, 32, 32) for s in stacks)
    assert torch.equal(last, stacks[-1])
    with pytest.raises(ValueError, match="multiple of 64"):
        model(torch.rand(1, 3, 128, 96))


def test_hourglass_variants_have_the_documented_structure(build):
    paper = shapes(build("hourglass_8stack"))
    assert not any(k.startswith("res.") for k in paper)
    assert paper["layer2.0.conv3.weight"] == (128, 64, 1, 1)     # newell stem: 128 -> 128
    bearpaw = bench.create_model("hourglass_8stack", stem="pytorch_pose", residual_after_hourglass=True)
    s = shapes(bearpaw)
    assert s["layer2.0.downsample.0.weight"] == (256, 128, 1, 1)
    assert s["res.7.0.conv3.weight"] == (256, 128, 1, 1)
    assert s["hg.0.hg.0.3.0.conv2.weight"] == (128, 128, 3, 3)  # innermost extra module
    assert s["score_.6.weight"] == (256, 17, 1, 1) and "score_.7.weight" not in s
    assert count_params(bearpaw) == 25_598_472


# --- all pose models ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["resnet50", "resnet101", "resnet152"] + POSE_MODELS)
def test_exact_parameter_counts(name, build, golden):
    golden("param_counts", name, count_params(build(name)))


@pytest.mark.parametrize("name", POSE_MODELS)
def test_heatmaps_at_quarter_resolution_for_17_and_16_joints(name, build):
    h, w = (128, 128) if name.startswith("hourglass") else (128, 96)  # hourglass: multiples of 64
    # the 8-stack hourglass is checked at 256x192 / 256x256 by the FLOP tests; 2 stacks here
    overrides = {"num_stacks": 2} if name.startswith("hourglass") else {}
    with torch.no_grad():
        model = bench.create_model(name, **overrides).eval() if overrides else build(name)
        assert model(torch.rand(1, 3, h, w)).shape == (1, 17, h // 4, w // 4)
        mpii = bench.create_model(name, num_joints=16, **overrides).eval()
        assert mpii(torch.rand(1, 3, 128, 128)).shape == (1, 16, 32, 32)


def test_heatmaps_at_the_paper_input_size(build):
    with torch.no_grad():
        assert build("shufflenetv2_pose")(torch.rand(1, 3, 256, 192)).shape == (1, 17, 64, 48)
