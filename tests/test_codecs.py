"""Heatmap targets and decoding (bench.tasks.pose.codecs): the HRNet / Lite-HRNet / DARK rules."""
from __future__ import annotations

import numpy as np
import pytest

from bench.tasks.pose import codecs as C
from bench.data import transforms as T
from conftest import reference_gaussian_targets

INPUT, HEATMAP, STRIDE = (192, 256), (48, 64), 4.0


def _interior_joints(rng, n, margin_hm):
    """Sub-pixel joints (input pixels) at least ``margin_hm`` heatmap pixels from the border."""
    lo = margin_hm * STRIDE
    return rng.uniform([lo, lo], [INPUT[0] - lo, INPUT[1] - lo], (n, 2))


def test_peak_is_one_at_the_integer_centre_inside_a_3_sigma_window():
    joints = np.array([[50.3, 70.9], [100.0, 100.0]])
    hm, weight = C.gaussian_targets(joints, [1, 1], INPUT, HEATMAP, sigma=2)
    assert hm.shape == (2, 64, 48) and hm.dtype == np.float32
    np.testing.assert_array_equal(weight, [1, 1])
    # mu = int(50.3 / 4 + 0.5) = 13, int(70.9 / 4 + 0.5) = 18
    assert hm[0, 18, 13] == 1.0 and hm[0].max() == 1.0
    assert np.argmax(hm[0]) == 18 * 48 + 13
    assert hm[0, 18, 14] == pytest.approx(np.exp(-1 / 8))
    ys, xs = np.nonzero(hm[0])
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (13 - 6, 13 + 6, 18 - 6, 18 + 6)
    # unbiased: Gaussian at the exact sub-pixel location, over the whole map
    hm_u, _ = C.gaussian_targets(joints, [1, 1], INPUT, HEATMAP, sigma=2, unbiased=True)
    d2 = (13 - 50.3 / 4) ** 2 + (18 - 70.9 / 4) ** 2
    assert hm_u[0, 18, 13] == pytest.approx(np.exp(-d2 / 8))
    assert np.count_nonzero(hm_u[0]) > np.count_nonzero(hm[0])


def test_target_weight_zero_outside_the_heatmap_and_for_invisible_joints():
    joints = np.array([[-100.0, 50.0],   # window entirely left of the heatmap
                       [96.0, 400.0],    # below it
                       [96.0, 128.0],    # fine but invisible
                       [-8.0, 128.0],    # outside the image, window still overlaps
                       [96.0, 128.0]])
    vis = np.array([1, 1, 0, 1, 1])
    for unbiased in (False, True):
        hm, weight = C.gaussian_targets(joints, vis, INPUT, HEATMAP, 2, unbiased=unbiased)
        np.testing.assert_array_equal(weight, [0, 0, 0, 1, 1])
        assert not hm[:3].any()
        assert hm[3].any() and hm[3].max() < 1   # only the Gaussian's tail is on the map
    _, weight = C.gaussian_targets(joints, vis[:, None], INPUT, HEATMAP, 2,
                                   joint_weights=[1, 1, 1, 1.5, 1.2])
    np.testing.assert_allclose(weight, [0, 0, 0, 1.5, 1.2])


def test_round_trip_default_decoding():
    """HRNet targets snap a joint to the nearest heatmap pixel and a clean Gaussian has
    equal neighbours (no quarter offset), so decoding returns stride * round(joint /
    stride): error <= 0.5 heatmap px = 2 input px per axis."""
    rng = np.random.default_rng(0)
    codec = C.MSRAHeatmapCodec(INPUT, HEATMAP, sigma=2)
    joints = _interior_joints(rng, 17, 3)
    hm, _ = codec.encode(joints, np.ones(17))
    pred, maxvals = codec.decode(hm[None])
    np.testing.assert_allclose(pred[0], STRIDE * np.floor(joints / STRIDE + 0.5), atol=1e-5)
    assert np.abs(pred[0] - joints).max() <= 0.5 * STRIDE + 1e-5
    np.testing.assert_allclose(maxvals, 1.0)


def test_round_trip_through_the_original_image():
    """Image joints -> crop -> targets -> decode with the box -> image joints. The bound
    is the 0.5 heatmap px snapping, times the crop's zoom (box width / heatmap width)."""
    rng = np.random.default_rng(1)
    for _ in range(10):
        center, scale = T.box_to_center_scale(*rng.uniform([50, 50, 60, 120], [300, 200, 200, 400]),
                                              aspect_ratio=INPUT[0] / INPUT[1])
        joints = center + (rng.random((17, 2)) - 0.5) * scale * 200 * 0.6
        M = T.get_affine_transform(center, scale, 0, INPUT)
        hm, weight = C.gaussian_targets(T.affine_transform(joints, M), np.ones(17),
                                        INPUT, HEATMAP, sigma=2)
        assert weight.all()
        pred, _ = C.decode_heatmaps(hm[None], center[None], scale[None], "default")
        px_per_hm = scale[0] * 200 / HEATMAP[0]
        assert np.abs(pred[0] - joints).max() <= 0.5 * px_per_hm * (1 + 1e-4)


@pytest.mark.parametrize("sigma,input_size,heatmap_size", [(2, (192, 256), (48, 64)),
                                                          (3, (288, 384), (72, 96))])
def test_round_trip_dark_with_unbiased_encoding(sigma, input_size, heatmap_size):
    """DARK recovers sub-pixel locations of unbiased targets. Asserted bound: 0.02 heatmap px
    for joints at least 4 sigma from the border (measured ~1e-3 or less; closer to the
    border the zero-padded modulation blur pulls the estimate inward)."""
    rng = np.random.default_rng(2)
    stride = input_size[0] / heatmap_size[0]
    codec = C.MSRAHeatmapCodec(input_size, heatmap_size, sigma, unbiased=True)
    assert codec.modulate_kernel == {2: 11, 3: 17}[sigma]
    lo = 4 * sigma * stride
    joints = rng.uniform([lo, lo], [input_size[0] - lo, input_size[1] - lo], (200, 2))
    hm, _ = codec.encode(joints, np.ones(len(joints)))
    pred, _ = codec.decode(hm[None], post_process="dark")
    assert np.abs(pred[0] - joints).max() / stride <= 0.02
    # the quarter offset on the same targets: within 0.25 heatmap px, and clearly worse
    pred_q, _ = codec.decode(hm[None], post_process="default")
    err_q = np.abs(pred_q[0] - joints) / stride
    assert err_q.max() <= 0.25 + 1e-4 and err_q.mean() > 0.05
    # plain argmax: within 0.5 heatmap px
    pred_a, _ = codec.decode(hm[None], post_process=None)
    assert np.abs(pred_a[0] - joints).max() / stride <= 0.5 + 1e-4


def test_lite_hrnet_gaussian_setting_decodes_as_default():
    """mmpose's post_process=True, unbiased_decoding=False ignores modulate_kernel."""
    rng = np.random.default_rng(3)
    hm = rng.random((2, 17, 64, 48)).astype(np.float32) ** 4
    centers, scales = rng.uniform(100, 400, (2, 2)), rng.uniform(0.5, 2, (2, 2))
    a = C.decode_heatmaps(hm, centers, scales, "gaussian", kernel=11)
    b = C.decode_heatmaps(hm, centers, scales, "default")
    c = C.decode_heatmaps(hm, centers, scales, True)
    for x, y in ((a, b), (a, c)):
        np.testing.assert_array_equal(x[0], y[0])
        np.testing.assert_array_equal(x[1], y[1])
    d = C.decode_heatmaps(hm, centers, scales, "dark", kernel=11)
    assert not np.allclose(a[0], d[0])
    with pytest.raises(ValueError):
        C.decode_heatmaps(hm, centers, scales, "megvii")


def test_get_max_preds_and_quarter_offset_by_hand():
    hm = np.zeros((1, 3, 8, 10), np.float32)
    hm[0, 0, 5, 3] = 1.0
    hm[0, 0, 5, 4] = 0.5            # right neighbour higher -> +0.25 in x
    hm[0, 0, 4, 3] = 0.2            # upper neighbour higher -> -0.25 in y
    hm[0, 1, 0, 7] = 1.0            # on the border: no offset
    hm[0, 2] = -1.0                 # no positive response -> (0, 0)
    coords, maxvals = C.get_max_preds(hm)
    np.testing.assert_array_equal(coords[0], [[3, 5], [7, 0], [0, 0]])
    np.testing.assert_array_equal(maxvals[0, :, 0], [1, 1, -1])
    np.testing.assert_allclose(C.quarter_offset(hm, coords)[0], [[3.25, 4.75], [7, 0], [0, 0]])
    with pytest.raises(ValueError):
        C.get_max_preds(hm[0])


def _perfect_flipped_output(hm, pairs):
    """What a perfect network outputs on the mirrored input (heatmap-aligned joints)."""
    out = hm[..., ::-1].copy()
    for a, b in pairs:
        out[:, [a, b]] = out[:, [b, a]]
    return out


def test_flip_back_of_a_symmetric_pose_is_the_original():
    w, h = HEATMAP
    # heatmap-space COCO pose mirrored about x = (w - 1) / 2: nose on the axis, each
    # left joint at w - 1 - x of its right partner
    rng = np.random.default_rng(4)
    joints = np.zeros((17, 2))
    joints[0] = [(w - 1) / 2, 10]
    for a, b in T.COCO_FLIP_PAIRS:
        x, y = rng.uniform(8, w / 2 - 2), rng.uniform(8, h - 8)
        joints[a], joints[b] = [x, y], [w - 1 - x, y]
    hm, _ = C.gaussian_targets(joints * STRIDE, np.ones(17), INPUT, HEATMAP, 2, unbiased=True)
    hm = hm[None]
    np.testing.assert_allclose(C.flip_back(hm, T.COCO_FLIP_PAIRS), hm, atol=1e-6)
    # any pose: flipping back a perfect mirrored output recovers the heatmaps
    hm2 = rng.random((2, 17, h, w)).astype(np.float32)
    flipped = _perfect_flipped_output(hm2, T.COCO_FLIP_PAIRS)
    np.testing.assert_array_equal(C.flip_back(flipped, T.COCO_FLIP_PAIRS), hm2)


def test_shift_heatmaps_moves_one_pixel_right():
    hm = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    out = C.shift_heatmaps(hm)
    np.testing.assert_array_equal(out[..., 1:], hm[..., :-1])
    np.testing.assert_array_equal(out[..., 0], hm[..., 0])
    assert out is not hm and np.array_equal(hm[0, 0, 0], [0, 1, 2, 3, 4])


def test_flip_test_misalignment_and_shift():
    """Encode a joint, and the same joint in the mirrored input; the flipped-back peak is
    1 - 1/stride = 0.75 heatmap px left, the shift moves it to +0.25 (why it is used)."""
    codec = C.MSRAHeatmapCodec(INPUT, HEATMAP, sigma=2, unbiased=True)
    joint = np.array([[90.4, 120.8]])
    hm, _ = codec.encode(joint, [1])
    mirrored, _ = T.fliplr_joints(joint, np.ones(1), INPUT[0], ())
    hm_f, _ = codec.encode(mirrored, [1])
    back = C.flip_back(hm_f[None], ())
    x_true = joint[0, 0] / STRIDE
    x_back = C.decode_heatmap_coords(back, "dark")[0][0, 0, 0]
    assert x_back == pytest.approx(x_true - (1 - 1 / STRIDE), abs=0.02)
    x_shift = C.decode_heatmap_coords(C.shift_heatmaps(back), "dark")[0][0, 0, 0]
    assert x_shift == pytest.approx(x_true + 1 / STRIDE, abs=0.02)
    avg = C.flip_test_average(hm[None], hm_f[None], (), shift_heatmap=True)
    np.testing.assert_allclose(avg, 0.5 * (hm[None] + C.shift_heatmaps(back)))


def test_gaussian_modulation_keeps_maximum_and_input():
    rng = np.random.default_rng(5)
    hm = rng.random((2, 150, 16, 12)).astype(np.float32)    # > 128 maps: chunked blur
    before = hm.copy()
    out = C.gaussian_modulation(hm, 11)
    np.testing.assert_array_equal(hm, before)
    np.testing.assert_allclose(out.max(axis=(2, 3)), hm.max(axis=(2, 3)), rtol=1e-6)
    one = C.gaussian_modulation(hm[1:2, 149:150], 11)
    np.testing.assert_allclose(out[1, 149], one[0, 0], rtol=1e-6)
    assert out[0, 0].std() < hm[0, 0].std()               # it does smooth
    with pytest.raises(ValueError):
        C.gaussian_modulation(hm, 10)


def test_codec_decode_with_boxes_matches_decode_heatmaps():
    rng = np.random.default_rng(6)
    codec = C.MSRAHeatmapCodec(INPUT, HEATMAP, sigma=2)
    hm = rng.random((3, 17, 64, 48)).astype(np.float32)
    centers, scales = rng.uniform(100, 400, (3, 2)), rng.uniform(0.5, 2, 3)
    a = codec.decode(hm, centers, scales, post_process="dark")
    b = C.decode_heatmaps(hm, centers, np.repeat(scales[:, None], 2, 1), "dark", kernel=11)
    np.testing.assert_allclose(a[0], b[0])
    # a box equal to the input frame maps heatmap px to input px (x stride)
    c = codec.decode(hm, np.tile([96.0, 128.0], (3, 1)), np.tile([0.96, 1.28], (3, 1)))
    np.testing.assert_allclose(c[0], codec.decode(hm)[0], atol=1e-4)


@pytest.mark.parametrize("sigma,input_size,heatmap_size", [
    (2, INPUT, HEATMAP), (3, (288, 384), (72, 96)), (2, (256, 256), (64, 64)),
    (1.5, INPUT, HEATMAP), (2.3, INPUT, HEATMAP), (1.0, (64, 64), (16, 16))])
def test_msra_patch_targets_equal_the_whole_grid_rule(sigma, input_size, heatmap_size):
    """The per-joint (6 sigma + 1)^2 patch writes the very values of the whole-grid
    Gaussian: every joint inside, on and beyond each border (where ``int`` truncating
    toward zero shapes the window), invisible, NaN, and 3-column joints."""
    rng = np.random.default_rng(int(sigma * 10))
    w_in, h_in = input_size
    n = 400
    joints = np.column_stack([rng.uniform(-0.3 * w_in, 1.3 * w_in, n),
                              rng.uniform(-0.3 * h_in, 1.3 * h_in, n), rng.random(n)])
    stride = w_in / heatmap_size[0]
    edge = np.arange(-12, 13) * stride / 2            # every half-pixel near the borders
    joints[:len(edge), 0], joints[len(edge):2 * len(edge), 0] = edge, w_in + edge
    joints[2 * len(edge):3 * len(edge), 1] = edge
    joints[3 * len(edge):4 * len(edge), 1] = h_in + edge
    joints[-3] = [np.nan, 10.0, 1.0]
    joints[-2] = [10.0, np.inf, 1.0]
    visible = (rng.random(n) > 0.1).astype(np.float64)
    hm, weight = C.gaussian_targets(joints, visible, input_size, heatmap_size, sigma)
    ref_hm, ref_w = reference_gaussian_targets(joints, visible, input_size, heatmap_size, sigma)
    assert hm.dtype == np.float32 and weight.dtype == np.float32
    np.testing.assert_allclose(hm, ref_hm, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(weight, ref_w)
    assert 0 < weight.sum() < n and hm.any()
    # joint weights multiply after the visibility / window test
    jw = rng.uniform(0.5, 2.0, n)
    _, w2 = C.gaussian_targets(joints, visible, input_size, heatmap_size, sigma,
                               joint_weights=jw)
    np.testing.assert_allclose(w2, ref_w * jw.astype(np.float32), rtol=1e-7)


def test_msra_targets_values_by_hand():
    """Each drawn value is exp(-d^2 / (2 sigma^2)) of the integer distance to mu, within
    float32 rounding, and nothing is drawn outside the 13 x 13 window (sigma 2)."""
    import math
    joints = np.array([[50.3, 70.9], [1.0, 3.0], [190.0, 250.0]])
    hm, weight = C.gaussian_targets(joints, [1, 1, 1], INPUT, HEATMAP, sigma=2)
    np.testing.assert_array_equal(weight, [1, 1, 1])
    for k, (x, y) in enumerate(joints):
        mx, my = int(x / 4 + 0.5), int(y / 4 + 0.5)
        expected = np.zeros((64, 48), np.float64)
        for py in range(max(0, my - 6), min(64, my + 7)):
            for px in range(max(0, mx - 6), min(48, mx + 7)):
                expected[py, px] = math.exp(-((px - mx) ** 2 + (py - my) ** 2) / 8.0)
        np.testing.assert_allclose(hm[k], expected, rtol=0, atol=1e-6)
