"""Segmentation losses (pixel CE, HRNet's OHEM CE) and test-time inference (whole,
sliding window, flip with channel swaps, multi-scale) on models whose outputs are known."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.tasks.segmentation.inference import (_scaled_size, _slide, predict_hrnet_scores,
                                                predict_labels, predict_probabilities,
                                                predict_scores, window_boxes)
from bench.tasks.segmentation.losses import (HRNET_CITYSCAPES_CLASS_WEIGHTS, ohem_cross_entropy,
                                   pixel_cross_entropy)


# --- losses ------------------------------------------------------------------------------
def _logits_labels(seed=0, shape=(2, 5, 4, 6)):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(*shape, generator=g, dtype=torch.float64)
    b, c, h, w = shape
    labels = torch.randint(0, c, (b, h, w), generator=g)
    labels[torch.rand(b, h, w, generator=g) < 0.25] = 255
    return logits, labels


def _per_pixel(logits, labels):
    """(-log p_true, valid mask) flattened over the pixels."""
    logp = F.log_softmax(logits, dim=1).permute(0, 2, 3, 1).reshape(-1, logits.shape[1])
    lab = labels.reshape(-1)
    valid = lab != 255
    return -logp[valid, lab[valid]], lab[valid]


def test_cross_entropy_ignores_pixels():
    logits, labels = _logits_labels()
    nll, _ = _per_pixel(logits, labels)
    assert len(nll) < labels.numel()
    torch.testing.assert_close(pixel_cross_entropy(logits, labels), nll.mean())


def test_cross_entropy_class_weights_weighted_mean():
    logits, labels = _logits_labels(1)
    w = torch.tensor([1.0, 2.0, 0.5, 3.0, 1.0], dtype=torch.float64)
    nll, lab = _per_pixel(logits, labels)
    expected = (w[lab] * nll).sum() / w[lab].sum()
    got = pixel_cross_entropy(logits, labels, class_weights=w.tolist())
    torch.testing.assert_close(got, expected)
    assert not torch.isclose(got, nll.mean())
    with pytest.raises(ValueError, match="class weights for 5 classes"):
        pixel_cross_entropy(logits, labels, class_weights=[1.0, 2.0])


def test_cross_entropy_resizes_logits_to_label_size():
    logits, labels = _logits_labels(2, shape=(1, 3, 2, 3))
    big_labels = torch.randint(0, 3, (1, 4, 6), generator=torch.Generator().manual_seed(3))
    for ac in (True, False):
        up = F.interpolate(logits, size=(4, 6), mode="bilinear", align_corners=ac)
        torch.testing.assert_close(pixel_cross_entropy(logits, big_labels, align_corners=ac),
                                   F.cross_entropy(up, big_labels))
    # align_corners=True keeps the corner logits: a label map that is only the corners
    corners = torch.full((1, 4, 6), 255)
    corners[0, 0, 0], corners[0, -1, -1] = 1, 2
    expected = -(F.log_softmax(logits[0, :, 0, 0], 0)[1]
                 + F.log_softmax(logits[0, :, -1, -1], 0)[2]) / 2
    torch.testing.assert_close(pixel_cross_entropy(logits, corners), expected)


def test_cross_entropy_all_ignored_is_zero_with_graph():
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss = pixel_cross_entropy(logits, torch.full((1, 2, 2), 255))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


def test_hrnet_cityscapes_weights_fit_19_classes():
    logits, labels = _logits_labels(6, shape=(1, 19, 5, 5))
    w = torch.tensor(HRNET_CITYSCAPES_CLASS_WEIGHTS, dtype=torch.float64)
    nll, lab = _per_pixel(logits, labels)
    torch.testing.assert_close(
        pixel_cross_entropy(logits, labels, class_weights=HRNET_CITYSCAPES_CLASS_WEIGHTS),
        (w[lab] * nll).sum() / w[lab].sum())


# true-class probabilities of 8 pixels (one row), plus an ignored pixel of probability 0.05
PROBS = [0.1, 0.2, 0.5, 0.95, 0.97, 0.99, 0.3, 0.92]
LABELS = [0, 1, 0, 1, 0, 0, 1, 0]


def _ohem_case():
    """2-class logits whose softmax gives each pixel's true class exactly PROBS."""
    p = torch.tensor(PROBS + [0.05], dtype=torch.float64)
    lab = torch.tensor(LABELS + [0])
    true, other = p.log(), (1 - p).log()
    logits = torch.stack([torch.where(lab == 0, true, other), torch.where(lab == 0, other, true)])
    labels = lab.clone()
    labels[-1] = 255
    return logits.reshape(1, 2, 1, 9).requires_grad_(), labels.reshape(1, 1, 9)


def _mean_nll(probs, weights=None):
    weights = weights or [1.0] * len(probs)
    return sum(-w * math.log(p) for p, w in zip(probs, weights)) / len(probs)


def test_ohem_keeps_pixels_below_thresh_when_more_than_min_kept():
    logits, labels = _ohem_case()
    # sorted 0.1 0.2 0.3 0.5 0.92 ...: p_(2) = 0.3 < 0.9, so the threshold is 0.9
    loss = ohem_cross_entropy(logits, labels, thresh=0.9, min_kept=2)
    assert loss.item() == pytest.approx(_mean_nll([0.1, 0.2, 0.5, 0.3]))
    loss.backward()
    # the easy pixels and the ignored one get no gradient
    g = logits.grad.abs().sum(dim=1).reshape(-1)
    assert [bool(v) for v in g > 0] == [True, True, True, False, False, False, True, False, False]


def test_ohem_keeps_min_kept_hardest_when_fewer_below_thresh():
    logits, labels = _ohem_case()
    # only 0.1 and 0.2 are below 0.25; p_(5) = 0.95 raises the threshold: 5 hardest kept
    loss = ohem_cross_entropy(logits, labels, thresh=0.25, min_kept=5)
    assert loss.item() == pytest.approx(_mean_nll([0.1, 0.2, 0.3, 0.5, 0.92]))


def test_ohem_class_weights_scale_losses_but_not_the_mean():
    logits, labels = _ohem_case()
    loss = ohem_cross_entropy(logits, labels, thresh=0.6, min_kept=1, class_weights=[2.0, 0.5])
    kept = [(0.1, 2.0), (0.2, 0.5), (0.5, 2.0), (0.3, 0.5)]   # labels 0, 1, 0, 1
    assert loss.item() == pytest.approx(_mean_nll([p for p, _ in kept], [w for _, w in kept]))


def test_ohem_reference_quirk_when_min_kept_exceeds_valid_pixels():
    logits, labels = _ohem_case()
    # k = n_valid - 1 = 7: threshold p_(7) = 0.99 and the comparison is strict
    loss = ohem_cross_entropy(logits, labels, thresh=0.5, min_kept=100)
    assert loss.item() == pytest.approx(_mean_nll([0.1, 0.2, 0.5, 0.95, 0.97, 0.3, 0.92]))


def test_ohem_resizes_and_matches_plain_ce_when_everything_is_kept():
    logits, labels = _logits_labels(4, shape=(1, 3, 3, 4))
    big = torch.randint(0, 3, (1, 6, 8), generator=torch.Generator().manual_seed(5))
    # thresh above every probability keeps all pixels: the plain CE mean
    torch.testing.assert_close(ohem_cross_entropy(logits, big, thresh=1.01, min_kept=1),
                               pixel_cross_entropy(logits, big))


def test_ohem_all_ignored_is_zero():
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    assert ohem_cross_entropy(logits, torch.full((1, 2, 2), 255)).item() == 0.0


# --- inference ---------------------------------------------------------------------------
class PixelModel(nn.Module):
    """Per-pixel class scores: a fixed 1x1 conv, optionally at stride 4 (avg-pool first),
    optionally returning an output mapping."""

    def __init__(self, num_classes=3, stride=1, as_dict=False, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(3, num_classes, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(num_classes, 3, 1, 1, generator=g))
            self.conv.bias.copy_(torch.randn(num_classes, generator=g))
        self.stride, self.as_dict = stride, as_dict

    def forward(self, x):
        if self.stride > 1:
            x = F.avg_pool2d(x, self.stride)
        out = self.conv(x)
        return {"out": out, "aux": out * 0} if self.as_dict else out


def _image(h=13, w=17, seed=0):
    return torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_whole_image_is_softmax_of_the_model():
    model, img = PixelModel(), _image()
    probs = predict_probabilities(model, img, 3)
    torch.testing.assert_close(probs, F.softmax(model(img), dim=1))
    torch.testing.assert_close(probs.sum(1), torch.ones(2, 13, 17))
    assert torch.equal(predict_labels(model, img, 3), model(img).argmax(1))


def test_sliding_window_equals_whole_for_pixelwise_model():
    model, img = PixelModel(), _image()
    whole = predict_probabilities(model, img, 3)
    # overlapping windows (stride < crop), a last window aligned to the border
    torch.testing.assert_close(predict_probabilities(model, img, 3, sliding_window=((8, 8), (5, 5))),
                               whole)
    # an image lower than the crop: padded to it, the padding cropped off again
    torch.testing.assert_close(predict_probabilities(model, img, 3, sliding_window=((16, 8), (16, 6))),
                               whole)


def test_slide_counts_windows_and_aligns_the_last_one():
    class WindowMean(nn.Module):     # each window predicts its mean everywhere
        def forward(self, x):
            return x[:, :1].mean(dim=(2, 3), keepdim=True).expand(-1, 1, *x.shape[-2:])

    img = torch.arange(7.0).reshape(1, 1, 1, 7).expand(1, 3, 1, 7)
    # windows [0,4) [2,6) [3,7) with means 1.5 3.5 4.5
    out = _slide(WindowMean(), img, 1, (1, 4), (1, 2), align_corners=True)
    expected = torch.tensor([1.5, 1.5, 2.5, (1.5 + 3.5 + 4.5) / 3, 4.0, 4.0, 4.5])
    torch.testing.assert_close(out.reshape(-1), expected)


class PositionModel(nn.Module):
    """Ignores the image: class 0 scores the column index, class 1 scores 0."""

    def forward(self, x):
        col = torch.arange(x.shape[-1], dtype=x.dtype).expand(x.shape[0], 1, x.shape[-2], -1)
        return torch.cat([col, torch.zeros_like(col)], dim=1)


def test_flip_averages_mirrored_view_and_swaps_channels():
    img = torch.zeros(1, 3, 1, 3)
    sig = torch.sigmoid
    i = torch.arange(3.0)
    # plain view: p0 = sigmoid(i); mirrored view, flipped back: scores (2 - i, 0),
    # swapped by the pair (0, 1) to (0, 2 - i): p0 = sigmoid(i - 2)
    probs = predict_probabilities(PositionModel(), img, 2, flip=True, flip_pairs=((0, 1),))
    torch.testing.assert_close(probs[0, 0, 0], 0.5 * (sig(i) + sig(i - 2)))
    assert probs[0, 0, 0, 0] < 0.5 < probs[0, 0, 0, 2]
    assert probs[0, 0, 0, 1].item() == pytest.approx(0.5)
    # without the swap the mirrored view gives p0 = sigmoid(2 - i)
    probs = predict_probabilities(PositionModel(), img, 2, flip=True)
    torch.testing.assert_close(probs[0, 0, 0], 0.5 * (sig(i) + sig(2 - i)))


def test_flip_of_pixelwise_model_only_swaps_channels():
    model, img = PixelModel(num_classes=4), _image()
    p = F.softmax(model(img), dim=1)
    probs = predict_probabilities(model, img, 4, flip=True, flip_pairs=((1, 3),))
    torch.testing.assert_close(probs, 0.5 * (p + p[:, [0, 3, 2, 1]]))


@pytest.mark.parametrize("align_corners", [True, False])
def test_multi_scale_pixelwise_model_keeps_the_argmax(align_corners):
    # two colours, left and right half: a 2-class pixel-wise model separates them
    img = torch.zeros(1, 3, 16, 32)
    img[:, :, :, :16] = torch.tensor([1.0, -1.0, 0.5]).view(1, 3, 1, 1)
    img[:, :, :, 16:] = torch.tensor([-1.0, 1.0, -0.5]).view(1, 3, 1, 1)
    model = PixelModel(num_classes=2, seed=3)
    single = predict_labels(model, img, 2, align_corners=align_corners)
    assert single[0, 0, 0] != single[0, 0, -1]
    assert (single[..., :16] == single[0, 0, 0]).all()
    assert (single[..., 16:] == single[0, 0, -1]).all()
    multi = predict_labels(model, img, 2, scales=(0.5, 0.75, 1.0, 1.5, 2.0), flip=True,
                           align_corners=align_corners)
    assert torch.equal(multi, single)


def test_scaled_sizes():
    assert _scaled_size((12, 20), 0.75, 40) == (18, 30)     # long side base_size * scale
    assert _scaled_size((20, 12), 0.75, 40) == (30, 18)
    assert _scaled_size((13, 17), 1.5, None) == (20, 26)     # int(x * 1.5 + 0.5)


def test_image_size_resizes_to_an_exact_size_whatever_the_aspect():
    """LIP's testval: every image to 473 x 473 (here 16 x 16), scaled, logits back to the label."""
    assert _scaled_size((12, 20), 1.0, None, (16, 16)) == (16, 16)
    assert _scaled_size((30, 7), 0.5, None, (16, 16)) == (8, 8)
    seen = []

    class Recorder(PixelModel):
        def forward(self, x):
            seen.append(tuple(x.shape[-2:]))
            return super().forward(x)

    probs = predict_probabilities(Recorder(), _image(12, 20), 3, image_size=(16, 16),
                                  out_size=(12, 20))
    assert seen == [(16, 16)] and probs.shape == (2, 3, 12, 20)


def test_base_size_and_image_size_are_exclusive_in_a_protocol():
    from pydantic import ValidationError

    from bench.tasks.segmentation.protocol import SegEvaluation
    assert SegEvaluation(image_size=(473, 473)).image_size == (473, 473)
    with pytest.raises(ValidationError, match="not both"):
        SegEvaluation(base_size=473, image_size=(473, 473))


def test_base_size_scale_resizes_the_input():
    seen = []

    class Recorder(PixelModel):
        def forward(self, x):
            seen.append(tuple(x.shape[-2:]))
            return super().forward(x)

    img = _image(12, 20)
    probs = predict_probabilities(Recorder(), img, 3, scales=(0.5, 0.75), base_size=40)
    assert seen == [(12, 20), (18, 30)] and probs.shape == (2, 3, 12, 20)


def test_out_size_and_stride_four_output():
    model = PixelModel(stride=4)
    img = torch.tensor([0.3, -0.2, 0.7]).view(1, 3, 1, 1).expand(2, 3, 16, 24)
    probs = predict_probabilities(model, img, 3, out_size=(7, 9))
    assert probs.shape == (2, 3, 7, 9)
    # a constant image stays constant through the stride-4 model and the resize
    expected = F.softmax(model.conv(img[:, :, :1, :1]), dim=1).expand(2, 3, 7, 9)
    torch.testing.assert_close(probs, expected)
    assert predict_labels(model, img, 3, out_size=(7, 9)).shape == (2, 7, 9)


def test_output_mapping_and_wrong_class_count():
    img = _image()
    plain = predict_probabilities(PixelModel(), img, 3, flip=True, sliding_window=((8, 8), (6, 6)))
    mapped = predict_probabilities(PixelModel(as_dict=True), img, 3, flip=True,
                            sliding_window=((8, 8), (6, 6)))
    torch.testing.assert_close(mapped, plain)
    with pytest.raises(ValueError, match="B x 5 x h x w"):
        predict_probabilities(PixelModel(), img, 5)


def test_inference_builds_no_graph():
    model = PixelModel()
    assert not predict_probabilities(model, _image(), 3).requires_grad


# --- HRNet-Semantic-Segmentation's ensemble (ensemble: hrnet; its golden test is
# tests/test_samples_golden_seg_inference.py) ---------------------------------------------


def test_window_boxes_shift_and_pad_styles():
    # 7 wide, crop 4, stride 2: ceil(3 / 2) + 1 = 3 windows
    assert window_boxes(1, 7, (1, 4), (1, 2), "shift") == [(0, 1, 0, 4), (0, 1, 2, 6), (0, 1, 3, 7)]
    assert window_boxes(1, 7, (1, 4), (1, 2), "hrnet") == [(0, 1, 0, 4), (0, 1, 2, 6), (0, 1, 4, 7)]
    assert window_boxes(3, 5, (4, 8), (4, 8), "hrnet_cityscapes") == [(0, 3, 0, 5)]
    with pytest.raises(ValueError, match="unknown window style"):
        window_boxes(4, 4, (2, 2), (1, 1), "bogus")


def test_hrnet_scores_are_exp_of_the_flip_mean():
    img = torch.zeros(1, 3, 1, 3)
    i = torch.arange(3.0)
    # plain (i, 0); mirrored flipped back and swapped: (0, 2 - i); mean then exp
    s = predict_hrnet_scores(PositionModel(), img, 2, flip=True, flip_pairs=((0, 1),))
    torch.testing.assert_close(s[0, :, 0], torch.stack([(i / 2).exp(), ((2 - i) / 2).exp()]))
    # scales add up (not averaged): two identical views give twice the score
    s2 = predict_hrnet_scores(PositionModel(), img, 2, scales=(1.0, 1.0))
    torch.testing.assert_close(s2[0, 0, 0], 2 * i.exp())
    assert torch.equal(predict_scores(PositionModel(), img, 2, ensemble="hrnet", flip=True,
                                      flip_pairs=((0, 1),)), s)


def test_hrnet_style_pads_the_image_and_edge_windows_with_pad_value():
    seen = []

    class Recorder(PixelModel):
        def forward(self, x):
            seen.append(x.clone())
            return super().forward(x)

    img = _image(5, 7)
    pad = (-2.0, -1.0, 0.5)
    predict_hrnet_scores(Recorder(), img, 3, sliding_window=((8, 8), (5, 5), "hrnet"),
                         pad_value=pad)
    assert len(seen) == 1 and seen[0].shape[-2:] == (8, 8)      # one padded forward
    assert torch.equal(seen[0][:, :, :5, :7], img)
    for c, v in enumerate(pad):
        assert (seen[0][:, c, 5:] == v).all() and (seen[0][:, c, :, 7:] == v).all()
    seen.clear()
    predict_hrnet_scores(Recorder(), _image(9, 9), 3, sliding_window=((6, 6), (4, 4), "hrnet"),
                         pad_value=pad)
    # windows at 0 and 4 in each direction; those at 4 hold 5 pixels, padded to 6
    assert [tuple(x.shape[-2:]) for x in seen] == [(6, 6)] * 4
    assert (seen[-1][:, 0, 5:] == -2.0).all()


def test_hrnet_cityscapes_style_whole_image_up_to_scale_one():
    seen = []

    class Recorder(PixelModel):
        def forward(self, x):
            seen.append(tuple(x.shape[-2:]))
            return super().forward(x)

    window = ((4, 8), (4, 8), "hrnet_cityscapes")
    predict_hrnet_scores(Recorder(), _image(6, 12), 3, scales=(1.0, 1.5), sliding_window=window)
    # scale 1: the whole 6 x 12 image though it exceeds the crop; 1.5 (9 x 18): 3 x 3
    # windows shifted back to fit, none padded
    assert seen == [(6, 12)] + [(4, 8)] * 9


def test_protocol_ensemble_option_reaches_inference():
    from bench.tasks.segmentation.protocol import SegEvaluation
    from bench.tasks.segmentation.task import SegmentationTask
    ev = SegEvaluation(ensemble="hrnet", align_corners=False,
                       sliding_window={"crop": [8, 8], "stride": [5, 5], "style": "hrnet"})
    ds = type("D", (), {"flip_pairs": ((1, 2),), "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.5, 1.0)})
    task = SegmentationTask()
    bare = {"name": "p", "task": "segmentation", "dataset": "lip", "input_size": (480, 480),
            "num_classes": 20}
    args = task._inference_args(ds, {**bare, "evaluation": ev.model_dump()})
    assert args["ensemble"] == "hrnet" and args["align_corners"] is False
    assert args["sliding_window"] == ((8, 8), (5, 5), "hrnet")
    assert args["pad_value"] == (-2.0, -1.0, -0.5)
    # no override: the loss's align_corners; the default ensemble has no padding value
    args = task._inference_args(ds, {**bare, "loss": {"align_corners": False}})
    assert args["ensemble"] == "softmax_mean" and args["align_corners"] is False
    assert "pad_value" not in args
    # the smoke profile shrinks the window and keeps its style
    from bench.tasks.segmentation.protocol import SegmentationProtocol
    protocol = SegmentationProtocol(name="p", task="segmentation", dataset="lip",
                                    input_size=(480, 480), num_classes=20, crop_size=(480, 480),
                                    evaluation=ev)
    smoke = task.smoke_protocol(protocol)
    window = smoke.evaluation.sliding_window
    assert window.style == "hrnet" and window.crop == (8, 8) and smoke.crop_size == (64, 128)
    # of the same type, and idempotent
    assert type(smoke) is SegmentationProtocol and task.smoke_protocol(smoke) == smoke
