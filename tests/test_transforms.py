"""Crop geometry and augmentations of the top-down pipeline (bench.data.transforms)."""
from __future__ import annotations

import numpy as np
import pytest

from bench.data import transforms as T

INPUT = (192, 256)  # COCO W x H


def _h(M):
    return np.vstack([M, [0.0, 0.0, 1.0]])


def test_affine_and_inverse_compose_to_identity():
    rng = np.random.default_rng(0)
    for _ in range(50):
        c = rng.uniform(0, 640, 2)
        s = rng.uniform(0.2, 4.0, 2)
        r = rng.uniform(-90, 90)
        shift = rng.uniform(-0.2, 0.2, 2)
        M = T.get_affine_transform(c, s, r, INPUT, shift=shift)
        Minv = T.get_affine_transform(c, s, r, INPUT, shift=shift, inv=True)
        np.testing.assert_allclose(_h(Minv) @ _h(M), np.eye(3), atol=1e-9)
        pts = rng.uniform(-100, 700, (10, 2))
        np.testing.assert_allclose(T.affine_transform(T.affine_transform(pts, M), Minv), pts,
                                   atol=1e-8)


def test_crop_geometry_by_hand():
    c, s = np.array([300.0, 200.0]), np.array([0.96, 1.28])   # a 192 x 256 px box
    M = T.get_affine_transform(c, s, 0, INPUT)
    # box center -> crop center, box corners -> crop corners (box already has the aspect)
    np.testing.assert_allclose(T.affine_transform(c, M), [96, 128], atol=1e-9)
    np.testing.assert_allclose(T.affine_transform(c - [96, 128], M), [0, 0], atol=1e-9)
    # a box twice as large is sampled at half resolution
    M2 = T.get_affine_transform(c, 2 * s, 0, INPUT)
    np.testing.assert_allclose(T.affine_transform(c + [40, 0], M2), [96 + 20, 128], atol=1e-9)
    # rotation convention: rot=+90 sends an image point right of the center above the
    # crop center
    M90 = T.get_affine_transform(c, s, 90, INPUT)
    np.testing.assert_allclose(T.affine_transform(c + [10, 0], M90), [96, 118], atol=1e-9)
    # a scalar scale means (s, s)
    np.testing.assert_allclose(T.get_affine_transform(c, 1.5, 10, INPUT),
                               T.get_affine_transform(c, [1.5, 1.5], 10, INPUT))


def test_affine_transform_vectorised_matches_single_points():
    M = T.get_affine_transform([100, 80], [1.1, 1.4], 25, INPUT)
    pts = np.random.default_rng(1).uniform(0, 300, (7, 2))
    batch = T.affine_transform(pts, M)
    for p, q in zip(pts, batch):
        np.testing.assert_allclose(T.affine_transform(p, M), q)


def test_transform_preds_maps_heatmap_center_to_box_center():
    c, s = np.array([321.5, 187.25]), np.array([1.2, 1.6])
    heatmap = (48, 64)
    coords = np.array([[24.0, 32.0, 0.9], [0.0, 0.0, 0.5]])
    out = T.transform_preds(coords, c, s, heatmap)
    np.testing.assert_allclose(out[0, :2], c, atol=1e-9)
    np.testing.assert_allclose(out[1, :2], c - s * 200 / 2, atol=1e-9)  # top-left corner
    np.testing.assert_allclose(out[:, 2], coords[:, 2])                # scores pass through


def test_box_to_center_scale_by_hand():
    center, scale = T.box_to_center_scale(10, 20, 50, 100, aspect_ratio=192 / 256)
    np.testing.assert_allclose(center, [35, 70])
    # too narrow: w grows to 0.75 * 100 = 75; then /200 and *1.25
    np.testing.assert_allclose(scale, [75 / 200 * 1.25, 100 / 200 * 1.25])
    # too wide: h grows to 300 / 0.75 = 400
    center, scale = T.box_to_center_scale(0, 0, 300, 100, aspect_ratio=0.75)
    np.testing.assert_allclose(center, [150, 50])
    np.testing.assert_allclose(scale, [1.875, 2.5])
    # MPII's square input
    _, scale = T.box_to_center_scale(0, 0, 40, 80, aspect_ratio=1.0, padding=1.0)
    np.testing.assert_allclose(scale, [0.4, 0.4])


def test_fliplr_joints_by_hand_and_twice_is_identity():
    pairs = ((1, 2),)
    joints = np.array([[4.0, 1.0], [1.0, 5.0], [6.0, 7.0]])
    vis = np.array([1.0, 1.0, 0.0])
    j, v = T.fliplr_joints(joints, vis, width=10, flip_pairs=pairs)
    # joint 0 mirrored: 10 - 4 - 1 = 5; joint 1 takes joint 2's mirrored (invisible ->
    # zeroed) position and visibility; joint 2 takes joint 1's: 10 - 1 - 1 = 8
    np.testing.assert_allclose(j, [[5, 1], [0, 0], [8, 5]])
    np.testing.assert_allclose(v, [1, 0, 1])
    np.testing.assert_allclose(joints, [[4, 1], [1, 5], [6, 7]])  # inputs untouched

    rng = np.random.default_rng(2)
    joints = rng.uniform(0, 640, (17, 2))
    vis = (rng.random(17) > 0.3).astype(float)
    j1, v1 = T.fliplr_joints(joints, vis, 640, T.COCO_FLIP_PAIRS)
    j2, v2 = T.fliplr_joints(j1, v1, 640, T.COCO_FLIP_PAIRS)
    np.testing.assert_allclose(v2, vis)
    np.testing.assert_allclose(j2, joints * vis[:, None], atol=1e-9)


def test_fliplr_joints_agrees_with_flipping_the_image():
    img = np.zeros((20, 30), np.uint8)
    img[7, 4] = 255
    flipped = img[:, ::-1]
    y, x = np.unravel_index(np.argmax(flipped), flipped.shape)
    j, _ = T.fliplr_joints(np.array([[4.0, 7.0]]), np.array([1.0]), 30, ())
    np.testing.assert_allclose(j[0], [x, y])
    np.testing.assert_allclose(T.fliplr_center([4.0, 7.0], 30), [x, y])


@pytest.mark.parametrize("pairs,n", [(T.COCO_FLIP_PAIRS, 17), (T.MPII_FLIP_PAIRS, 16),
                                     (T.LSP_FLIP_PAIRS, 14)])
def test_flip_pairs_are_disjoint_swaps(pairs, n):
    flat = [i for p in pairs for i in p]
    assert len(flat) == len(set(flat)) and max(flat) < n
    perm = np.arange(n)
    for a, b in pairs:
        perm[[a, b]] = perm[[b, a]]
    np.testing.assert_array_equal(perm[perm], np.arange(n))


def test_body_ids_partition_the_joints():
    assert sorted(T.COCO_UPPER_BODY_IDS + T.COCO_LOWER_BODY_IDS) == list(range(17))
    assert sorted(T.MPII_UPPER_BODY_IDS + T.MPII_LOWER_BODY_IDS) == list(range(16))


def _standing_person():
    """COCO pose: upper body within y 100..200, lower body (hips..ankles) y 400..520,
    far enough apart that a 1.5x padded box around one half misses the other."""
    rng = np.random.default_rng(3)
    joints = np.zeros((17, 2))
    joints[:11] = np.c_[rng.uniform(80, 140, 11), rng.uniform(100, 200, 11)]
    joints[11:] = np.c_[rng.uniform(90, 130, 6), rng.uniform(400, 520, 6)]
    return joints


def test_half_body_box_covers_only_the_chosen_joints():
    joints, vis = _standing_person(), np.ones(17)
    ar = 192 / 256
    for upper, ids in ((True, T.COCO_UPPER_BODY_IDS), (False, T.COCO_LOWER_BODY_IDS)):
        center, scale = T.half_body_transform(joints, vis, T.COCO_UPPER_BODY_IDS,
                                              T.COCO_LOWER_BODY_IDS, ar, upper=upper)
        chosen = joints[list(ids)]
        others = np.delete(joints, list(ids), axis=0)
        np.testing.assert_allclose(center, chosen.mean(axis=0), rtol=1e-6)
        np.testing.assert_allclose(scale[0] / scale[1], ar, rtol=1e-6)
        half = scale * 200 / 2
        lo, hi = center - half, center + half
        assert np.all((chosen >= lo) & (chosen <= hi))
        assert not np.any(np.all((others >= lo) & (others <= hi), axis=1))
        # the box is the extent grown to the aspect ratio, times 1.5
        w, h = chosen.max(0) - chosen.min(0)
        assert np.isclose(scale[0] * 200, 1.5 * max(w, h * ar), rtol=1e-6)


def test_half_body_gating():
    joints = _standing_person()
    args = (T.COCO_UPPER_BODY_IDS, T.COCO_LOWER_BODY_IDS, 0.75)
    few = np.zeros(17)
    few[:8] = 1                                      # 8 visible: not more than 8
    assert T.half_body_transform(joints, few, *args, upper=True) is None
    assert T.half_body_transform(joints, np.ones(17), *args, prob_half_body=0.0, rng=0) is None
    # upper requested but only 2 upper joints visible: falls back to the lower body
    vis = np.ones(17)
    vis[2:11] = 0
    center, _ = T.half_body_transform(joints, vis, *args, num_joints_half_body=7, upper=True)
    np.testing.assert_allclose(center, joints[11:].mean(0), rtol=1e-6)
    # the random choice favours the upper body (reference draws randn() < 0.5: ~69 %)
    rng = np.random.default_rng(4)
    n_upper = sum(np.allclose(T.half_body_transform(joints, np.ones(17), *args, rng=rng)[0],
                              joints[:11].mean(0), rtol=1e-6) for _ in range(2000))
    assert 0.65 < n_upper / 2000 < 0.73


def test_scale_rotation_sampling():
    rng = np.random.default_rng(5)
    sf, rf = 0.35, 45
    s = np.array([T.sample_scale_factor(rng, sf) for _ in range(4000)])
    r = np.array([T.sample_rotation(rng, rf) for _ in range(4000)])
    assert s.min() >= 1 - sf and s.max() <= 1 + sf and abs(s.mean() - 1) < 0.02
    assert np.abs(r).max() <= 2 * rf
    assert 0.37 < np.mean(r == 0) < 0.43              # rotation applied with prob 0.6
    f = np.array([T.sample_flip(rng) for _ in range(4000)])
    assert 0.47 < f.mean() < 0.53


def test_affine_crop_moves_a_dot_where_affine_transform_says():
    rng = np.random.default_rng(6)
    h, w = 480, 640
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(5):
        dot = rng.uniform([200, 150], [440, 330])
        img = np.exp(-((xx - dot[0]) ** 2 + (yy - dot[1]) ** 2) / (2 * 3.0 ** 2))
        img = (img * 255).astype(np.float32)
        center = dot + rng.uniform(-40, 40, 2)
        scale = np.array([1.0, 1.0 / 0.75]) * rng.uniform(0.8, 1.2)
        rot = rng.uniform(-45, 45)
        crop = T.affine_crop(img, center, scale, rot, INPUT)
        assert crop.shape == (256, 192)
        expected = T.affine_transform(dot, T.get_affine_transform(center, scale, rot, INPUT))
        cy, cx = np.mgrid[0:256, 0:192]
        centroid = np.array([(crop * cx).sum(), (crop * cy).sum()]) / crop.sum()
        assert np.abs(centroid - expected).max() < 0.1, (centroid, expected)
        peak = np.unravel_index(np.argmax(crop), crop.shape)[::-1]
        assert np.abs(np.array(peak) - expected).max() <= 1.0


@pytest.mark.parametrize("shape,dtype", [((37, 53, 3), np.uint8), ((37, 53), np.uint8),
                                         ((20, 31, 3), np.float32), ((20, 31, 1), np.uint8),
                                         ((9, 11, 6), np.uint8), ((9, 11, 4), np.uint16),
                                         ((1, 1, 3), np.uint8), ((0, 5, 3), np.uint8)])
def test_fliplr_image_is_the_numpy_flip(shape, dtype):
    """``fliplr_image`` (cv2.flip) makes exactly ``image[:, ::-1]``: x -> width - 1 - x,
    every channel, any dtype, as a C-contiguous copy (numpy fallback where OpenCV can't)."""
    rng = np.random.default_rng(sum(shape))
    img = (rng.random(shape) * 1000).astype(dtype)
    for src in (img, img[:, ::-1], np.asfortranarray(img)):
        out = T.fliplr_image(src)
        assert out.shape == src.shape and out.dtype == src.dtype
        assert out.flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(out, src[:, ::-1])
    if img.size:
        out[...] = 0
        assert img.any() or not img.size      # the input is never written


def test_flipped_image_warp_equals_the_reference_flip_then_warp():
    """The training crop of a flipped sample is the warp of ``image[:, ::-1]``, bit for
    bit (the reference flips the image, then warps). Folding the flip into the affine
    matrix instead would not be: OpenCV's fixed-point/float sampling rounds the
    mirrored coordinates differently, so a few pixels come out 1 grey level apart."""
    import cv2
    rng = np.random.default_rng(11)
    img = rng.integers(0, 256, (120, 170, 3), dtype=np.uint8)
    img = cv2.GaussianBlur(img, (0, 0), 1.5)            # texture at a few px, like photos
    width = img.shape[1]
    for _ in range(20):
        center = rng.uniform([0, 0], [170, 120])
        scale, rot = rng.uniform(0.3, 1.2, 2), rng.normal(0, 45)
        flipped_center = T.fliplr_center(center, width)
        M = T.get_affine_transform(flipped_center, scale, rot, (48, 64))
        ref = cv2.warpAffine(np.ascontiguousarray(img[:, ::-1]), M, (48, 64),
                             flags=cv2.INTER_LINEAR)
        out = cv2.warpAffine(T.fliplr_image(img), M, (48, 64), flags=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(out, ref)


def test_three_point_affine_is_the_closed_form_up_to_float32():
    """``get_affine_transform_points`` (HRNet's construction from float32 points) is the
    closed-form similarity up to the float32 round-off of its points, forward and
    inverse, for float32 and float64 centres and scales."""
    rng = np.random.default_rng(12)
    for _ in range(20):
        for dtype in (np.float32, np.float64):
            c = rng.uniform(0, 640, 2).astype(dtype)
            s = rng.uniform(0.2, 3, 2).astype(dtype)
            rot = float(rng.normal(0, 40))
            for inv in (False, True):
                a = T.get_affine_transform_points(c, s, rot, (192, 256), inv=inv)
                b = T.get_affine_transform(c, s, rot, (192, 256), inv=inv)
                assert a.shape == (2, 3) and a.dtype == np.float64
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_named_draws_of_the_sampling_helpers():
    """Each helper asks for its draws by name; ``prob_first`` (HRNet's rotation) draws the
    angle only when the rotation applies."""
    from bench.data.draws import ReplayDraws
    d = ReplayDraws({"rotation_prob": [0.7, 0.5], "rotation": [0.5]})
    assert T.sample_rotation(d, 40, 0.6, prob_first=True) == 0.0
    assert T.sample_rotation(d, 40, 0.6, prob_first=True) == 20.0
    assert d.unused() == {}
    d = ReplayDraws({"rotation": [3.0], "rotation_prob": [0.1]})
    assert T.sample_rotation(d, 40, 0.6) == 80.0 and d.unused() == {}
    d = ReplayDraws({"flip": [0.5], "scale": [-9.0]})
    assert T.sample_flip(d, 0.5) is True
    assert T.sample_scale_factor(d, 0.25) == 0.75 and d.unused() == {}
    # default path: the same stream as calling the generator directly
    g1, g2 = np.random.default_rng(3), np.random.default_rng(3)
    r = T.sample_rotation(g1, 30, 0.6)
    x, u = g2.standard_normal(), g2.random()
    assert r == (float(np.clip(x * 30, -60, 60)) if u <= 0.6 else 0.0)
