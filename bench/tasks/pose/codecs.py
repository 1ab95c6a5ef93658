"""Keypoints <-> heatmaps for top-down pose estimation (the HRNet / Lite-HRNet tables).

Encoding makes the training targets: one Gaussian per joint on the heatmap grid
(``input_size / heatmap_size`` = the feature stride, 4 for HRNet and Lite-HRNet).
Decoding turns predicted heatmaps into image coordinates for COCO AP / MPII PCKh.

* Encoding is HRNet's ``lib/dataset/JointsDataset.py::generate_target``, checked bit for
  bit by the HRNet and mmpose sample goldens (``tests/test_samples_golden_pose_*.py``).
* Decoding follows our reading of HRNet's ``lib/core/inference.py::get_final_preds``
  (argmax + quarter offset) and of mmpose 0.x's ``keypoints_from_heatmaps``; no test runs
  either. As we read mmpose, Lite-HRNet's test config ``post_process=True,
  unbiased_decoding=False, modulate_kernel=11`` resolves to its ``'default'``
  post-processing, the same quarter offset as HRNet, and ``modulate_kernel`` is only read
  by the ``'unbiased'`` (DARK), ``'megvii'`` and UDP branches. ``post_process='gaussian'``
  here names that setting and decodes exactly as ``'default'`` (``kernel`` ignored).
* DARK (Zhang et al., CVPR 2020): unbiased encoding (Gaussian centred at the sub-pixel
  location) and decoding by Gaussian modulation, log, and a second-order Taylor step,
  as described in the paper (not checked against its code).

The flip test helpers (``flip_back``, ``shift_heatmaps``, ``flip_test_average``) follow
our reading of HRNet's and mmpose's flip test (no golden). numpy + OpenCV only.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ...data.transforms import PIXEL_STD, transform_preds

__all__ = [
    "gaussian_targets", "get_max_preds", "quarter_offset", "gaussian_modulation",
    "dark_refine", "decode_heatmap_coords", "decode_heatmaps", "flip_back",
    "shift_heatmaps", "flip_test_average", "default_modulate_kernel", "MSRAHeatmapCodec",
    "POST_PROCESS_MODES", "DECODE_STYLES", "mmpose_transform_preds",
]

POST_PROCESS_MODES = (None, "default", "gaussian", "dark")
#: whose arithmetic maps heatmaps back to keypoints (``evaluation.decode``)
DECODE_STYLES = ("hrnet", "mmpose")
_CV_MAX_CHANNELS = 128


def default_modulate_kernel(sigma: float) -> int:
    """DARK's modulation kernel for a target sigma: 11 for sigma 2, 17 for sigma 3.

    OpenCV derives the blur sigma from the kernel size as 0.3 * ((k - 1) / 2 - 1) + 0.8,
    which gives 2.0 for k = 11 and 2.9 for k = 17; 6 * sigma - 1 (made odd) gives the
    kernels we read in the DARK / mmpose configs for each sigma.
    """
    k = int(round(6 * sigma - 1))
    return k if k % 2 == 1 else k + 1


def gaussian_targets(joints, visible, input_size, heatmap_size, sigma: float,
                     unbiased: bool = False, joint_weights=None):
    """Gaussian target heatmaps (K, h, w) float32 and target weights (K,) float32.

    ``joints`` (K, >=2) are in input-image (crop) pixels; ``visible`` (K,) or (K, >=1),
    a joint with a value > 0 is visible. Sizes are (W, H).

    Default (HRNet "MSRA" targets): the joint is snapped to the integer heatmap pixel
    ``mu = int(joint / stride + 0.5)`` and an unnormalised Gaussian (peak 1 at ``mu``)
    is drawn inside its 3-sigma window ``[int(mu - 3s), int(mu + 3s + 1))``, zero
    elsewhere. The window and its Gaussian are indexed exactly as the reference does
    (``int`` truncates toward zero), which matters only for joints near the top/left
    border when 3 * sigma is not an integer.

    ``unbiased=True`` (DARK / mmpose ``unbiased_encoding``): the Gaussian is centred at
    the exact sub-pixel ``joint / stride`` and drawn over the whole heatmap, which is what
    lets DARK decoding recover sub-pixel locations.

    The weight is 0 for an invisible joint and for a joint whose 3-sigma window lies
    entirely outside the heatmap (its heatmap is then all zero); otherwise 1, times
    ``joint_weights`` if given (HRNet's USE_DIFFERENT_JOINTS_WEIGHT).
    """
    joints = np.asarray(joints, dtype=np.float64)
    num_joints = joints.shape[0]
    v = np.asarray(visible, dtype=np.float64)
    v = v.reshape(num_joints, -1)[:, 0]
    w, h = int(heatmap_size[0]), int(heatmap_size[1])
    stride = np.asarray(input_size, dtype=np.float64) / np.asarray(heatmap_size, np.float64)

    target = np.zeros((num_joints, h, w), dtype=np.float32)
    weight = (v > 0).astype(np.float32)
    tmp = sigma * 3
    if unbiased:
        _unbiased_targets(joints, stride, tmp, sigma, target, weight)
    else:
        _msra_targets(joints, stride, tmp, sigma, target, weight)
    if joint_weights is not None:
        weight = weight * np.asarray(joint_weights, dtype=np.float32).reshape(num_joints)
    return target, weight


_MSRA_PATCHES: dict = {}


def _msra_patch(sigma: float) -> np.ndarray:
    """The reference's Gaussian patch: ``np.arange(0, 2*3*sigma + 1)`` float32 along each
    axis, peak 1 at index ``size // 2`` (cached per sigma; read-only)."""
    patch = _MSRA_PATCHES.get(sigma)
    if patch is None:
        size = 2 * (sigma * 3) + 1
        x = np.arange(0, size, 1, np.float32)
        y = x[:, None]
        x0 = y0 = size // 2
        patch = np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / np.float32(2 * sigma ** 2))
        patch.setflags(write=False)
        _MSRA_PATCHES[sigma] = patch
    return patch


def _msra_targets(joints, stride, tmp, sigma, target, weight) -> None:
    """MSRA (HRNet ``generate_target``) targets written into ``target``; ``weight`` is
    zeroed for joints whose window misses the heatmap.

    As the reference, the joint is snapped to ``mu = int(joint / stride + 0.5)`` and the
    window ``[int(mu - tmp), int(mu + tmp + 1))`` is pasted from the precomputed patch
    (patch index = heatmap pixel - window start), so only the (2 tmp + 1)^2 pixels around
    each joint are touched."""
    _, h, w = target.shape
    mu = np.trunc(joints[:, :2] / stride + 0.5)
    ul = np.trunc(mu - tmp)
    br = np.trunc(mu + tmp + 1)
    outside = (ul[:, 0] >= w) | (ul[:, 1] >= h) | (br[:, 0] < 0) | (br[:, 1] < 0)
    weight[outside] = 0.0
    draw = (weight > 0.5) & np.isfinite(ul).all(axis=1) & np.isfinite(br).all(axis=1)
    if not draw.any():
        return
    patch = _msra_patch(sigma)
    # The window is never wider than the patch: int() truncation makes it at most
    # ceil(2 tmp + 1) = len(np.arange(0, 2 tmp + 1)) pixels along each axis.
    for k, (ux, uy), (bx, by) in zip(np.flatnonzero(draw).tolist(), ul[draw].tolist(),
                                     br[draw].tolist()):
        ux, uy, bx, by = int(ux), int(uy), int(bx), int(by)
        x0, x1 = max(0, ux), min(bx, w)
        y0, y1 = max(0, uy), min(by, h)
        target[k, y0:y1, x0:x1] = patch[y0 - uy:y1 - uy, x0 - ux:x1 - ux]


def _unbiased_targets(joints, stride, tmp, sigma, target, weight) -> None:
    """DARK targets: a Gaussian at the exact sub-pixel ``joint / stride`` over the whole
    heatmap, for every joint whose 3-sigma window meets the heatmap."""
    num_joints, h, w = target.shape
    xs = np.arange(w, dtype=np.float32)
    ys = np.arange(h, dtype=np.float32)[:, None]
    two_s2 = np.float32(2 * sigma ** 2)
    for k in range(num_joints):
        mu = joints[k, :2] / stride
        ul, br = mu - tmp, mu + tmp + 1
        if ul[0] >= w or ul[1] >= h or br[0] < 0 or br[1] < 0:
            weight[k] = 0.0
        if weight[k] <= 0.5:
            continue
        cx, cy = np.float32(mu[0]), np.float32(mu[1])
        target[k] = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / two_s2)


def _check_batch(heatmaps) -> np.ndarray:
    hm = np.asarray(heatmaps)
    if hm.ndim != 4:
        raise ValueError(f"heatmaps must be N x K x h x w, got shape {hm.shape}")
    return hm


def _check_decode(decode: str) -> str:
    if decode not in DECODE_STYLES:
        raise ValueError(f"decode must be one of {DECODE_STYLES}, got {decode!r}")
    return decode


def get_max_preds(heatmaps, decode: str = "hrnet"):
    """Argmax of each heatmap: coords (N, K, 2) float32 as (x, y), maxvals (N, K, 1).

    A joint whose maximum is <= 0 gets coords (0, 0) with ``decode='hrnet'`` (HRNet's
    lib/core/inference.py ``get_max_preds``) and (-1, -1) with ``'mmpose'`` (mmpose 0.13's
    mmpose/core/evaluation/top_down_eval.py ``_get_max_preds``); both checked by the
    prediction goldens.
    """
    hm = _check_batch(heatmaps)
    n, k, _, w = hm.shape
    flat = hm.reshape(n, k, -1)
    idx = np.argmax(flat, axis=2)
    maxvals = np.take_along_axis(flat, idx[..., None], axis=2)
    coords = np.stack([idx % w, idx // w], axis=-1).astype(np.float32)
    if _check_decode(decode) == "mmpose":
        return np.where(maxvals > 0, coords, np.float32(-1.0)), maxvals
    coords *= (maxvals > 0).astype(np.float32)
    return coords, maxvals


def _gather(hm: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """hm[n, k, ys[n, k], xs[n, k]] for index arrays of shape (N, K)."""
    n, k = ys.shape
    return hm[np.arange(n)[:, None], np.arange(k)[None, :], ys, xs]


def quarter_offset(heatmaps, coords) -> np.ndarray:
    """Move each argmax a quarter pixel toward its higher neighbour, per axis.

    The HRNet/mmpose 'default' post-processing as we read it (no golden): the sign of the
    difference of the two neighbours decides the direction (no move on a tie), and only
    peaks at least two pixels from the border (1 < px < w - 1) are moved. Cheap
    compensation for the argmax's integer quantisation.
    """
    hm = _check_batch(heatmaps)
    _, _, h, w = hm.shape
    out = np.array(coords, dtype=np.float32, copy=True)
    px = np.floor(out[..., 0] + 0.5).astype(np.int64)
    py = np.floor(out[..., 1] + 0.5).astype(np.int64)
    ok = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
    # clipped indices keep the gathers in range; rejected joints are masked below
    cx, cy = np.clip(px, 1, max(w - 2, 1)), np.clip(py, 1, max(h - 2, 1))
    dx = _gather(hm, cy, np.minimum(cx + 1, w - 1)) - _gather(hm, cy, cx - 1)
    dy = _gather(hm, np.minimum(cy + 1, h - 1), cx) - _gather(hm, cy - 1, cx)
    shift = np.stack([np.sign(dx), np.sign(dy)], axis=-1) * 0.25
    out += np.where(ok[..., None], shift, 0.0).astype(np.float32)
    return out


def gaussian_modulation(heatmaps, kernel: int = 11) -> np.ndarray:
    """DARK's distribution modulation: blur each heatmap, keep its maximum.

    Each map is zero-padded by the kernel radius (so nothing reflects back in from the
    border), blurred with ``cv2.GaussianBlur((kernel, kernel), sigma from kernel)``,
    cropped, and rescaled to its original maximum, as we read DARK's and mmpose's
    ``_gaussian_blur``. Returns a new float32 array; the input is not modified.
    """
    if kernel % 2 != 1:
        raise ValueError(f"kernel must be odd, got {kernel}")
    hm = _check_batch(heatmaps).astype(np.float32)
    n, k, h, w = hm.shape
    b = (kernel - 1) // 2
    maps = hm.reshape(n * k, h, w)
    out = np.empty_like(maps)
    # One cv2 call blurs many maps stacked as channels; chunks of 128 because OpenCV 5
    # accepts at most 128 channels per image (OpenCV 4: 512).
    for start in range(0, n * k, _CV_MAX_CHANNELS):
        stop = start + _CV_MAX_CHANNELS
        chunk = np.ascontiguousarray(maps[start:stop].transpose(1, 2, 0))
        padded = np.pad(chunk, ((b, b), (b, b), (0, 0)))
        blurred = cv2.GaussianBlur(padded, (kernel, kernel), 0)
        if blurred.ndim == 2:          # OpenCV drops a single channel axis
            blurred = blurred[..., None]
        out[start:stop] = blurred[b:b + h, b:b + w].transpose(2, 0, 1)
    orig_max = maps.reshape(n * k, -1).max(axis=1)
    new_max = out.reshape(n * k, -1).max(axis=1)
    ratio = np.divide(orig_max, new_max, out=np.ones_like(orig_max), where=new_max != 0)
    out *= ratio[:, None, None]
    return out.reshape(n, k, h, w)


def dark_refine(heatmaps, coords, kernel: int = 11) -> np.ndarray:
    """DARK sub-pixel refinement of argmax coords (N, K, 2), in heatmap pixels.

    The modulated heatmap is log-transformed (clipped at 1e-10), which turns a Gaussian
    into a quadratic; one Newton step ``x - H^-1 g`` from the argmax then lands on the
    quadratic's maximum. Gradient and Hessian are central differences (the Hessian's
    diagonal with a step of 2 px), as we read DARK's code. Joints within 2 px of the
    border, or with a singular Hessian, keep their argmax.
    """
    logs = np.log(np.maximum(gaussian_modulation(heatmaps, kernel), 1e-10)).astype(np.float64)
    _, _, h, w = logs.shape
    out = np.array(coords, dtype=np.float32, copy=True)
    px = out[..., 0].astype(np.int64)
    py = out[..., 1].astype(np.int64)
    ok = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2)
    if not ok.any():
        return out
    x = np.clip(px, 2, w - 3)
    y = np.clip(py, 2, h - 3)

    def at(dy: int, dx: int) -> np.ndarray:
        return _gather(logs, y + dy, x + dx)

    c = at(0, 0)
    gx = 0.5 * (at(0, 1) - at(0, -1))
    gy = 0.5 * (at(1, 0) - at(-1, 0))
    hxx = 0.25 * (at(0, 2) - 2 * c + at(0, -2))
    hyy = 0.25 * (at(2, 0) - 2 * c + at(-2, 0))
    hxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    det = hxx * hyy - hxy ** 2
    ok &= det != 0
    safe = np.where(ok, det, 1.0)
    # offset = -H^-1 g with the 2x2 inverse written out
    off_x = -(hyy * gx - hxy * gy) / safe
    off_y = -(hxx * gy - hxy * gx) / safe
    out += np.where(ok[..., None], np.stack([off_x, off_y], axis=-1), 0.0).astype(np.float32)
    return out


def _normalise_mode(post_process):
    if post_process is True:
        return "default"
    if post_process is False or post_process is None:
        return None
    if post_process == "unbiased":     # mmpose's name for DARK
        return "dark"
    if post_process not in POST_PROCESS_MODES:
        raise ValueError(f"post_process must be one of {POST_PROCESS_MODES}, "
                         f"got {post_process!r}")
    return post_process


def decode_heatmap_coords(heatmaps, post_process="default", kernel: int = 11,
                          decode: str = "hrnet"):
    """Keypoints in heatmap pixels (N, K, 2) float32 and maxvals (N, K, 1).

    ``post_process``: None (plain argmax), ``'default'`` (quarter offset, HRNet and
    mmpose), ``'gaussian'`` (Lite-HRNet's test_cfg; identical to ``'default'``, see the
    module docstring), ``'dark'`` (DARK; ``kernel`` is the modulation kernel).
    ``True``/``False`` and ``'unbiased'`` are accepted as mmpose spells them.
    ``decode``: the argmax of non-positive maxima (``get_max_preds``).
    """
    hm = _check_batch(heatmaps)
    mode = _normalise_mode(post_process)
    coords, maxvals = get_max_preds(hm, decode)
    if mode in ("default", "gaussian"):
        coords = quarter_offset(hm, coords)
    elif mode == "dark":
        coords = dark_refine(hm, coords, kernel)
    return coords, maxvals


def mmpose_transform_preds(coords, center, scale, output_size) -> np.ndarray:
    """(K, 2) heatmap coordinates -> image pixels as mmpose 0.13's
    mmpose/core/post_processing/post_transforms.py ``transform_preds`` (use_udp False):
    per axis, x * (s_x * 200 / w) + c_x - s_x * 200 / 2, all in float32 (centre and scale
    cast to float32 first, as its ``TopDownBaseHead.decode`` does)."""
    coords = np.asarray(coords, dtype=np.float32)
    center = np.asarray(center, dtype=np.float32)
    scale = np.asarray(scale, dtype=np.float32) * np.float32(PIXEL_STD)
    out = np.ones_like(coords[..., :2])
    for axis in (0, 1):
        step = scale[axis] / np.float32(output_size[axis])
        out[..., axis] = coords[..., axis] * step + center[axis] - scale[axis] * np.float32(0.5)
    return out


def decode_heatmaps(heatmaps, centers, scales, post_process="default", kernel: int = 11,
                    decode: str = "hrnet"):
    """Predicted heatmaps (N, K, h, w) -> keypoints in original image pixels.

    ``centers`` (N, 2) and ``scales`` (N, 2) (or (N,) scalar scales) describe each test
    crop in the 200 px convention; heatmap coordinates go back through the inverse crop
    transform with the heatmap as the crop (so the stride is accounted for). Returns
    ``preds`` (N, K, 2) float32 and ``maxvals`` (N, K, 1) (the scores COCO evaluation
    rescores with). ``decode='hrnet'``: the inverse affine in float64 (HRNet's
    ``transform_preds``, to its float32 rounding); ``'mmpose'``: mmpose's per-axis
    float32 formula (``mmpose_transform_preds``) and its -1 for non-positive maxima.
    """
    hm = _check_batch(heatmaps)
    n, _, h, w = hm.shape
    coords, maxvals = decode_heatmap_coords(hm, post_process, kernel, decode)
    centers = np.asarray(centers, dtype=np.float64).reshape(n, 2)
    scales = np.asarray(scales, dtype=np.float64)
    if scales.size == n:                 # one scalar scale per box means (s, s)
        scales = np.repeat(scales.reshape(n, 1), 2, axis=1)
    scales = scales.reshape(n, 2)
    preds = np.empty_like(coords)
    back = mmpose_transform_preds if decode == "mmpose" else transform_preds
    for i in range(n):
        preds[i] = back(coords[i], centers[i], scales[i], (w, h))
    return preds, maxvals


def flip_back(heatmaps, flip_pairs: Sequence[Sequence[int]]) -> np.ndarray:
    """Heatmaps predicted on a mirrored input -> heatmaps for the original input.

    Mirrors every map (column j -> w - 1 - j) and swaps the channels of each left/right
    pair. Returns a new array.
    """
    hm = _check_batch(heatmaps)
    out = hm[..., ::-1].copy()
    for a, b in flip_pairs:
        out[:, [a, b]] = out[:, [b, a]]
    return out


def shift_heatmaps(heatmaps) -> np.ndarray:
    """Shift heatmaps one pixel right (column 0 kept), as flip test's ``shift_heatmap``.

    Why: a joint at input x is encoded at heatmap x / stride. Mirroring the input
    (x -> W - 1 - x) and then the heatmap back (j -> w - 1 - j) puts the peak at
    x / stride - (1 - 1 / stride), i.e. 0.75 px too far left for stride 4; a one-pixel
    shift right leaves +0.25 px (our reading of HRNet's SHIFT_HEATMAP and mmpose's
    ``shift_heatmap=True``).
    """
    hm = _check_batch(heatmaps)
    out = hm.copy()
    out[..., 1:] = hm[..., :-1]
    return out


def flip_test_average(heatmaps, heatmaps_of_flipped_input,
                      flip_pairs: Sequence[Sequence[int]], shift_heatmap: bool = True):
    """Flip test: average the plain output with the flipped-back (and shifted) one."""
    back = flip_back(heatmaps_of_flipped_input, flip_pairs)
    if shift_heatmap:
        back = shift_heatmaps(back)
    return (np.asarray(heatmaps) + back) * 0.5


class MSRAHeatmapCodec:
    """Gaussian heatmap codec of the HRNet / Lite-HRNet recipes (thin wrapper).

    ``encode`` takes joints in input-image pixels; ``decode`` returns keypoints in the
    original image when given the crops' centers and scales, else in input-image pixels.
    The DARK modulation kernel defaults to the one matching ``sigma``.
    """

    def __init__(self, input_size, heatmap_size, sigma: float, unbiased: bool = False,
                 modulate_kernel: int | None = None):
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        self.sigma = float(sigma)
        self.unbiased = bool(unbiased)
        self.modulate_kernel = (default_modulate_kernel(sigma) if modulate_kernel is None
                                else int(modulate_kernel))

    @property
    def stride(self) -> np.ndarray:
        return np.asarray(self.input_size, np.float64) / np.asarray(self.heatmap_size, np.float64)

    def encode(self, joints, visible, joint_weights=None):
        return gaussian_targets(joints, visible, self.input_size, self.heatmap_size,
                                self.sigma, unbiased=self.unbiased, joint_weights=joint_weights)

    def decode(self, heatmaps, centers=None, scales=None, post_process="default",
               kernel: int | None = None, decode: str = "hrnet"):
        kernel = self.modulate_kernel if kernel is None else kernel
        if centers is None:
            coords, maxvals = decode_heatmap_coords(heatmaps, post_process, kernel, decode)
            return (coords * self.stride).astype(np.float32), maxvals
        return decode_heatmaps(heatmaps, centers, scales, post_process, kernel, decode)

    def __repr__(self) -> str:
        return (f"MSRAHeatmapCodec(input_size={self.input_size}, heatmap_size="
                f"{self.heatmap_size}, sigma={self.sigma}, unbiased={self.unbiased})")
