"""Geometric transforms of top-down pose estimation: the person crop and its augmentations.

Serves the training and evaluation pipelines behind the HRNet and Lite-HRNet tables (COCO
256x192 / 384x288, MPII 256x256). Both official code bases (HRNet's
``lib/utils/transforms.py`` + ``lib/dataset/JointsDataset.py``, and mmpose 0.x which
Lite-HRNet runs on) share these conventions, reproduced here:

* a person box is a ``center`` (x, y) in image pixels and a ``scale`` (sx, sy) in units of
  ``PIXEL_STD`` = 200 px, padded by 1.25 and expanded to the network's aspect ratio;
* the crop is a similarity transform: the box center goes to the output center
  (W/2, H/2), the box *width* ``sx * 200`` is mapped onto the output width (the height
  follows from the output's aspect ratio, ``sy`` is not used), and ``rot`` (degrees)
  rotates the sampled region;
* horizontal flips map x to ``width - 1 - x`` and swap left/right joints.

Pure numpy / OpenCV functions; randomness comes from an explicit ``numpy.random.Generator``
or a ``bench.data.draws.SampleDraws`` (named draws: ``flip``, ``half_body``,
``half_body_upper``, ``scale``, ``rotation``, ``rotation_prob``) so that a seeded run is
reproducible and a test can replay the draws an official loader made.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from .draws import SampleDraws

PIXEL_STD = 200.0

# COCO keypoint order: nose, l/r eye, l/r ear, l/r shoulder, l/r elbow, l/r wrist,
# l/r hip, l/r knee, l/r ankle.
COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
COCO_UPPER_BODY_IDS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
COCO_LOWER_BODY_IDS = (11, 12, 13, 14, 15, 16)
# HRNet's per-joint loss weights for COCO (used only when USE_DIFFERENT_JOINTS_WEIGHT).
COCO_JOINT_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.2, 1.2,
                      1.5, 1.5, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5)

# COCO person-keypoint format facts (dataset loaders and the synthetic writer share them)
COCO_KEYPOINT_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear",
                       "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
                       "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                       "right_knee", "left_ankle", "right_ankle")
#: 1-based limb list of the COCO person category.
COCO_SKELETON = ((16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13),
                 (6, 7), (6, 8), (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3),
                 (2, 4), (3, 5), (4, 6), (5, 7))
#: The person detections (AP 56.4 on val2017) every HRNet-family table is tested with.
DETECTION_FILE = "person_detection_results/COCO_val2017_detections_AP_H_56_person.json"

# MPII order: r ankle, r knee, r hip, l hip, l knee, l ankle, pelvis, thorax, upper neck,
# head top, r wrist, r elbow, r shoulder, l shoulder, l elbow, l wrist.
MPII_FLIP_PAIRS = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))
MPII_UPPER_BODY_IDS = (7, 8, 9, 10, 11, 12, 13, 14, 15)
MPII_LOWER_BODY_IDS = (0, 1, 2, 3, 4, 5, 6)

# LSP order (14 joints): r ankle, r knee, r hip, l hip, l knee, l ankle, r wrist, r elbow,
# r shoulder, l shoulder, l elbow, l wrist, neck, head top.
LSP_FLIP_PAIRS = ((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9))

__all__ = [
    "scale_range_of",
    "PIXEL_STD",
    "COCO_FLIP_PAIRS", "COCO_UPPER_BODY_IDS", "COCO_LOWER_BODY_IDS", "COCO_JOINT_WEIGHTS",
    "MPII_FLIP_PAIRS", "MPII_UPPER_BODY_IDS", "MPII_LOWER_BODY_IDS", "LSP_FLIP_PAIRS",
    "get_affine_transform", "get_affine_transform_points", "affine_transform", "transform_preds", "box_to_center_scale",
    "affine_crop", "fliplr_image", "fliplr_joints", "fliplr_center", "half_body_transform",
    "sample_scale_factor", "sample_rotation", "sample_flip",
]


def _scale_pair(scale) -> np.ndarray:
    """The reference accepts a scalar scale and treats it as (s, s)."""
    s = np.asarray(scale, dtype=np.float64).reshape(-1)
    if s.size == 1:
        return np.repeat(s, 2)
    if s.size != 2:
        raise ValueError(f"scale must be a scalar or (sx, sy), got shape {np.shape(scale)}")
    return s


def get_affine_transform(center, scale, rot: float, output_size, shift=(0.0, 0.0),
                         inv: bool = False, pixel_std: float = PIXEL_STD) -> np.ndarray:
    """2x3 matrix mapping image pixels to the crop (or back, with ``inv=True``).

    The reference builds this matrix from three point pairs (center, a point half a box
    width above it rotated by ``rot``, and a third point perpendicular to both) with
    ``cv2.getAffineTransform``. Those point pairs define a similarity, written here in
    closed form so that no float32 round-off enters:

        crop = c_out + k * R(-rot) @ (img - c_src),   k = output_w / (sx * pixel_std),

    with ``c_out = (W/2, H/2)`` and ``c_src = center + shift * scale * pixel_std`` (``shift``
    is a fraction of the box size). Only ``sx`` sets the zoom, as in the reference.
    ``rot`` is in degrees; positive ``rot`` maps an image point to the right of the center
    onto a crop point above the crop center.
    """
    s = _scale_pair(scale) * pixel_std
    out_w, out_h = float(output_size[0]), float(output_size[1])
    c_src = np.asarray(center, dtype=np.float64).reshape(2) + s * np.asarray(shift, np.float64)
    c_out = np.array([out_w * 0.5, out_h * 0.5])
    theta = np.deg2rad(rot)
    cos, sin = np.cos(theta), np.sin(theta)
    k = out_w / s[0]
    if not inv:
        a = k * np.array([[cos, sin], [-sin, cos]])          # k * R(-rot)
        t = c_out - a @ c_src
    else:
        a = (1.0 / k) * np.array([[cos, -sin], [sin, cos]])  # R(rot) / k
        t = c_src - a @ c_out
    return np.concatenate([a, t[:, None]], axis=1)


def get_affine_transform_points(center, scale, rot: float, output_size,
                                inv: bool = False, pixel_std: float = PIXEL_STD) -> np.ndarray:
    """The crop matrix built from three point pairs, as HRNet's and mmpose 0.13's loaders
    build it.

    The same similarity as ``get_affine_transform``, but constructed the way
    ``tests/golden/samples_{hrnet,mmpose}_*.json`` show the official loaders construct it:
    the box center, the point half a box width above it (turned by ``rot``) and a third
    point at a right angle are stored as float32 and handed to ``cv2.getAffineTransform``.
    The float32 round-off of those points changes the matrix in its last digits and,
    through OpenCV's fixed-point sampling, a few crop values by one grey level (about
    0.01 % of the golden samples' crop values), so every pose dataset uses this matrix to
    reproduce the official crops bit for bit.
    numpy's own promotion rules apply to ``center`` / ``scale`` (float32 or float64 in,
    as given).
    """
    scale = np.asarray(scale)
    if scale.ndim == 0:
        scale = np.array([scale, scale])
    half_w = (scale * pixel_std)[0] * -0.5             # dtype of ``scale``
    theta = np.pi * rot / 180
    sn, cs = np.sin(theta), np.cos(theta)
    up = np.array([0 * cs - half_w * sn, 0 * sn + half_w * cs])   # (0, -w/2) turned by rot
    out_w, out_h = output_size[0], output_size[1]
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0] = np.asarray(center)
    src[1] = np.asarray(center) + up
    dst[0] = [out_w * 0.5, out_h * 0.5]
    dst[1] = np.array([out_w * 0.5, out_h * 0.5]) + np.array([0, out_w * -0.5], np.float32)
    for pts in (src, dst):
        d = pts[0] - pts[1]
        pts[2] = pts[1] + np.array([-d[1], d[0]], dtype=np.float32)
    return cv2.getAffineTransform(dst, src) if inv else cv2.getAffineTransform(src, dst)


def affine_transform(pt, M: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to one point (2,) or to points (..., 2)."""
    p = np.asarray(pt, dtype=np.float64)
    return p[..., :2] @ M[:, :2].T + M[:, 2]


def transform_preds(coords, center, scale, output_size,
                    pixel_std: float = PIXEL_STD) -> np.ndarray:
    """Map (K, D>=2) coordinates in a crop of ``output_size`` back to image pixels.

    This is the inverse of the crop transform with no rotation (predictions are made on
    unrotated test crops). Columns beyond x, y (e.g. scores) are passed through.
    """
    coords = np.asarray(coords)
    M = get_affine_transform(center, scale, 0.0, output_size, inv=True, pixel_std=pixel_std)
    out = np.array(coords, dtype=np.float64, copy=True)
    out[..., :2] = affine_transform(coords[..., :2], M)
    return out


def box_to_center_scale(x: float, y: float, w: float, h: float, aspect_ratio: float,
                        padding: float = 1.25, pixel_std: float = PIXEL_STD):
    """COCO box (x, y, w, h) -> (center, scale) as the reference ``_xywh2cs``.

    The box is grown (never shrunk) to ``aspect_ratio`` = input width / input height so
    the crop is not distorted, then padded by ``padding`` so limbs near the box edge
    stay inside the crop.
    """
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float32)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w / pixel_std, h / pixel_std], dtype=np.float32) * padding
    return center, scale.astype(np.float32)


def affine_crop(image: np.ndarray, center, scale, rot: float, output_size,
                flags: int = cv2.INTER_LINEAR, pixel_std: float = PIXEL_STD) -> np.ndarray:
    """Warp ``image`` into an ``output_size`` (W, H) crop of the box with the matrix the
    datasets use (``get_affine_transform_points``); pixels sampled outside the image are 0
    (OpenCV's constant border), as in training. Joints follow with
    ``affine_transform(joints, get_affine_transform_points(...same args...))``.
    """
    M = get_affine_transform_points(center, scale, rot, output_size, pixel_std=pixel_std)
    return cv2.warpAffine(image, M, (int(output_size[0]), int(output_size[1])), flags=flags)


def _vis_column(visible, num_joints: int) -> np.ndarray:
    v = np.asarray(visible, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    if v.shape[0] != num_joints:
        raise ValueError(f"visible has {v.shape[0]} rows, joints has {num_joints}")
    return v


def fliplr_image(image: np.ndarray) -> np.ndarray:
    """``image[:, ::-1]`` as a new C-contiguous array (pixel x -> width - 1 - x).

    ``cv2.flip`` makes the same array as ``np.ascontiguousarray(image[:, ::-1])`` at a
    small fraction of its cost (numpy copies a negative-stride HxWx3 view element by
    element; ``warpAffine`` given the view copies it the same way); numpy is the
    fallback for arrays OpenCV does not take.
    """
    if isinstance(image, np.ndarray) and image.ndim in (2, 3) and image.size:
        try:
            out = cv2.flip(image, 1)
        except cv2.error:
            out = None
        if out is not None and out.shape == image.shape and out.dtype == image.dtype:
            return out
    return np.ascontiguousarray(image[:, ::-1])


def fliplr_joints(joints, visible, width: int, flip_pairs: Sequence[Sequence[int]]):
    """Mirror joints for an image flipped left-right; returns new (joints, visible).

    x -> width - 1 - x (pixel i goes to pixel width-1-i, as ``image[:, ::-1]`` does), then
    left/right joints swap labels. As the reference, invisible joints come back zeroed
    (joints * visible), so they never carry a meaningless mirrored position.
    """
    j = np.array(joints, dtype=np.float64, copy=True)
    v = np.array(visible, copy=True)
    j[:, 0] = width - j[:, 0] - 1
    for a, b in flip_pairs:
        j[[a, b]] = j[[b, a]]
        v[[a, b]] = v[[b, a]]
    vcol = _vis_column(v, j.shape[0])
    return j * (vcol[:, :1] if vcol.shape[1] != j.shape[1] else vcol), v


def fliplr_center(center, width: int) -> np.ndarray:
    """Box center for the flipped image (same mapping as the joints)."""
    c = np.array(center, dtype=np.float64, copy=True)
    c[0] = width - c[0] - 1
    return c


def _named(rng) -> SampleDraws:
    """A ``SampleDraws`` for ``rng`` (a SampleDraws itself, a Generator, a seed or None)."""
    return rng if isinstance(rng, SampleDraws) else SampleDraws(np.random.default_rng(rng))


def half_body_transform(joints, visible, upper_body_ids: Sequence[int],
                        lower_body_ids: Sequence[int], aspect_ratio: float,
                        num_joints_half_body: int = 8, prob_half_body: float = 1.0,
                        rng=None, upper: bool | None = None, padding: float = 1.5,
                        pixel_std: float = PIXEL_STD, box_dtype=np.float64):
    """Half-body augmentation: a box around the visible upper or lower body joints.

    Returns ``(center, scale)``, or ``None`` when it does not apply: the reference applies
    it only to people with more than ``num_joints_half_body`` visible joints and with
    probability ``prob_half_body`` (0.3 in the HRNet and Lite-HRNet COCO recipes; pass 1.0
    to force it), and gives up when fewer than 2 joints would be selected.

    The upper body is chosen when ``rng.standard_normal() < 0.5`` (probability ~0.69, not
    0.5: the reference draws ``np.random.randn()`` there; kept so the augmentation
    statistics match) and it has more than 2 visible joints; otherwise the lower body if it
    has more than 2, else the upper body. ``upper`` forces the choice (for tests).
    The box is the selected joints' extent, grown to ``aspect_ratio`` and padded by 1.5,
    centred on the joints' mean (not the extent's middle), as the reference.
    ``box_dtype`` is the precision of the box arithmetic (width, height, aspect growth):
    float32 is what HRNet's loader computes (``tests/golden/samples_hrnet_coco.json``),
    float64 the default (the two can differ in the last bit of the scale).
    Draws: ``half_body`` (the probability) and ``half_body_upper`` (the normal).
    """
    joints = np.asarray(joints, dtype=np.float64)
    vis = _vis_column(visible, joints.shape[0])[:, 0] > 0
    if int(vis.sum()) <= num_joints_half_body:
        return None
    if prob_half_body < 1.0 or upper is None:
        rng = _named(rng)
    if prob_half_body < 1.0 and not rng.random("half_body") < prob_half_body:
        return None

    upper_set, lower_set = set(upper_body_ids), set(lower_body_ids)
    upper_j = [joints[i, :2] for i in range(len(joints)) if vis[i] and i in upper_set]
    lower_j = [joints[i, :2] for i in range(len(joints)) if vis[i] and i in lower_set]
    want_upper = upper if upper is not None else bool(rng.normal("half_body_upper") < 0.5)
    if want_upper and len(upper_j) > 2:
        selected = upper_j
    else:
        selected = lower_j if len(lower_j) > 2 else upper_j
    if len(selected) < 2:
        return None

    sel = np.asarray(selected, dtype=np.float32)
    center = sel.mean(axis=0)
    w, h = (sel.max(axis=0) - sel.min(axis=0)).astype(box_dtype)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w / pixel_std, h / pixel_std], dtype=np.float32) * padding
    return center.astype(np.float32), scale.astype(np.float32)


def sample_scale_factor(rng: np.random.Generator, scale_factor: float) -> float:
    """Random zoom, N(1, sf) clipped to [1 - sf, 1 + sf] (the protocols' ``scale``: 0.35
    in HRNet's COCO recipe, 0.25 in its MPII one and in Lite-HRNet's)."""
    return float(np.clip(_named(rng).normal("scale") * scale_factor + 1.0,
                         1.0 - scale_factor, 1.0 + scale_factor))


def sample_rotation(rng: np.random.Generator, rotation_factor: float,
                    rotation_prob: float = 0.6, prob_first: bool = False) -> float:
    """Random rotation in degrees: N(0, rf) clipped to +-2 rf, applied with prob 0.6.

    rf is the protocols' ``rotation``: 45 in HRNet's COCO recipe, 30 in its MPII one and in
    Lite-HRNet's. By default both numbers are
    always drawn (the normal first), so the stream consumption does not depend on the
    outcome. ``prob_first``: the probability is drawn first and the normal only when the
    rotation applies, the order of HRNet's loader (``tests/golden/samples_hrnet_*.json``).
    Draws: ``rotation`` (the normal), ``rotation_prob``.
    """
    d = _named(rng)
    if prob_first:
        if not d.random("rotation_prob") <= rotation_prob:
            return 0.0
        return float(np.clip(d.normal("rotation") * rotation_factor,
                             -2.0 * rotation_factor, 2.0 * rotation_factor))
    r = float(np.clip(d.normal("rotation") * rotation_factor,
                      -2.0 * rotation_factor, 2.0 * rotation_factor))
    return r if d.random("rotation_prob") <= rotation_prob else 0.0


def sample_flip(rng: np.random.Generator, flip_prob: float = 0.5) -> bool:
    """Whether to flip this sample (reference: ``random.random() <= 0.5``)."""
    return bool(_named(rng).random("flip") <= flip_prob)


def scale_range_of(value, what: str = "scale_range"):
    """A random-scale range as (lo, hi) floats with 0 < lo <= hi (None stays None)."""
    if value is None:
        return None
    lo, hi = (float(v) for v in value)
    if not 0 < lo <= hi:
        raise ValueError(f"{what} must satisfy 0 < lo <= hi, got {value}")
    return lo, hi
