"""CenterNet's box codec: boxes <-> (centre heatmap, size, offset) targets (FlatteNet Table X).

FlatteNet's detection rows (Tables IX / X, PASCAL VOC 512x512) use CenterNet's recipe
(Zhou et al., "Objects as Points"; xingyizhou/CenterNet ``ctdet``). One
``CenterNetCodec`` object serves the dataset's targets and the decoder, so the two cannot
disagree on the input size, the stride or the number of objects; targets and decoded
boxes equal CenterNet's own bit for bit (``tests/test_samples_golden_det.py``,
``tests/test_predictions_golden_det.py``). Encoding is numpy; decoding imports torch when
called. The encoding and decoding steps and the radius formulas: docs/design-notes.md,
"Module notes", bench/tasks/detection/codecs.py.
"""
from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from ...data.transforms import (affine_transform, get_affine_transform,
                         get_affine_transform_points)

__all__ = ["CenterNetCodec", "gaussian_radius", "gaussian_radius_centernet", "gaussian_2d",
           "draw_umich_gaussian", "center_scale_of_image", "color_augment", "PCA_EIGVAL",
           "PCA_EIGVEC_RGB", "PCA_EIGVEC_BGR", "HEATMAP_RADII"]

#: CenterNet's (CornerNet's) PCA lighting statistics, the same for COCO and PASCAL.
PCA_EIGVAL = np.array([0.2141788, 0.01817699, 0.00341571], dtype=np.float32)
#: Its eigenvectors (columns) with the rows in RGB order, for RGB images
#: (``channel_order="rgb"``): CenterNet reads images with OpenCV and never converts
#: them, so its own table's rows are B, G, R (``PCA_EIGVEC_BGR``); reversing the rows
#: keeps the same colour directions.
PCA_EIGVEC_RGB = np.array([
    [-0.56089297, 0.71832671, 0.41158938],
    [-0.5832747, 0.00994535, -0.81221408],
    [-0.58752847, -0.69563484, 0.41340352],
], dtype=np.float32)
#: The same table as CenterNet lists it (``datasets/dataset/pascal.py``): rows B, G, R.
PCA_EIGVEC_BGR = np.ascontiguousarray(PCA_EIGVEC_RGB[::-1])


def gaussian_radius(det_size: Sequence[float], min_overlap: float = 0.7) -> float:
    """CornerNet/CenterNet's Gaussian radius of a ``(height, width)`` box on the output
    grid: the smallest of the three r solving, for IoU o = ``min_overlap``,

    1. the box shifted by (r, r): ``(h - r)(w - r) = o (2 h w - (h - r)(w - r))``;
    2. the box shrunk by r on every side: ``(h - 2r)(w - 2r) = o h w``;
    3. the box grown by r on every side: ``h w = o (h + 2r)(w + 2r)``."""
    height, width = float(det_size[0]), float(det_size[1])
    o = float(min_overlap)

    b1 = height + width
    c1 = width * height * (1 - o) / (1 + o)
    r1 = (b1 - math.sqrt(b1 ** 2 - 4 * c1)) / 2

    b2 = 2 * (height + width)
    c2 = (1 - o) * width * height
    r2 = (b2 - math.sqrt(b2 ** 2 - 4 * 4 * c2)) / (2 * 4)

    a3 = 4 * o
    b3 = -2 * o * (height + width)
    c3 = (o - 1) * width * height
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / (2 * a3)
    return min(r1, r2, r3)


def gaussian_radius_centernet(det_size: Sequence[float], min_overlap: float = 0.7) -> float:
    """The radius as CenterNet's ``utils/image.py::gaussian_radius`` computes it: the same
    three quadratics, but every root taken as ``(b + sqrt(b^2 - 4ac)) / 2`` (the larger
    root's sign and no division by ``a``), the smallest of the three returned. For boxes
    of the sizes VOC gives this is the third value, ``a3`` (= 4 o) times the true grown
    -box root, so about 2.8x ``gaussian_radius``. CenterNet trains (and its released
    models were trained) with these radii."""
    height, width = float(det_size[0]), float(det_size[1])
    o = float(min_overlap)
    b1 = height + width
    c1 = width * height * (1 - o) / (1 + o)
    r1 = (b1 + np.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - o) * width * height
    r2 = (b2 + np.sqrt(b2 ** 2 - 4 * 4 * c2)) / 2
    a3 = 4 * o
    b3 = -2 * o * (height + width)
    c3 = (o - 1) * width * height
    r3 = (b3 + np.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return float(min(r1, r2, r3))


#: heatmap radius formulas by name (``CenterNetCodec(heatmap_radius=...)``)
HEATMAP_RADII = {"centernet": gaussian_radius_centernet, "exact": gaussian_radius}


def gaussian_2d(radius: int) -> np.ndarray:
    """(2r+1)^2 Gaussian with sigma (2r+1)/6, peak 1; values below float64 eps x peak
    are set to 0 (as CenterNet's ``gaussian2D``)."""
    r = int(radius)
    sigma = (2 * r + 1) / 6.0
    y, x = np.ogrid[-r:r + 1, -r:r + 1]
    g = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    g[g < np.finfo(g.dtype).eps * g.max()] = 0
    return g


def draw_umich_gaussian(heatmap: np.ndarray, center, radius: int,
                        k: float = 1.0) -> np.ndarray:
    """Max-merge ``k * gaussian_2d(radius)`` into ``heatmap`` (H, W) centred on the
    integer pixel ``center`` (x, y), cut at the borders; in place, also returned."""
    r = int(radius)
    g = gaussian_2d(r)
    x, y = int(center[0]), int(center[1])
    height, width = heatmap.shape[:2]
    left, right = min(x, r), min(width - x, r + 1)
    top, bottom = min(y, r), min(height - y, r + 1)
    region = heatmap[y - top:y + bottom, x - left:x + right]
    patch = g[r - top:r + bottom, r - left:r + right]
    if min(region.shape) > 0 and min(patch.shape) > 0:   # else the centre is off the map
        np.maximum(region, patch * k, out=region)
    return heatmap


_COLOR_OPS = ("brightness", "contrast", "saturation")


def color_augment(draws, image: np.ndarray, var: float = 0.4, lighting_std: float = 0.1, *,
                  channel_order: str = "rgb", numerics: str = "exact") -> np.ndarray:
    """CenterNet's ``color_aug`` on a float32 image in [0, 1], in place: brightness,
    contrast and saturation in a random order (draw ``color_order``), each with factor
    ``1 + U(-var, var)`` (draws ``brightness`` / ``contrast`` / ``saturation``; contrast
    blends with the grey mean, saturation with the grey image, both taken from the image
    before any change), then AlexNet-style PCA lighting with ``N(0, lighting_std)``
    weights (draw ``lighting``). No clipping, as CenterNet.

    ``draws``: a ``SampleDraws`` (or a numpy Generator, wrapped in one).
    ``channel_order``: the image's, "rgb" or "bgr"; picks the grey conversion and the
    eigenvector table (``PCA_EIGVEC_RGB`` / CenterNet's own ``PCA_EIGVEC_BGR``).
    ``numerics``: "centernet" rounds as CenterNet's code does under numpy 2: each factor
    a float64 ``1 + u`` rounded once to float32, blend weights ``float32(1 - alpha)``,
    the grey mean a float32, the lighting offset in float64 (``np.dot`` of the float32
    table with float64 weights) added to the float32 image; "exact" works in float32
    throughout (factors and weights rounded first)."""
    from ...data.draws import SampleDraws
    if isinstance(draws, np.random.Generator):
        draws = SampleDraws(draws)
    if channel_order not in ("rgb", "bgr"):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    if numerics not in ("centernet", "exact"):
        raise ValueError(f"numerics must be 'centernet' or 'exact', got {numerics!r}")
    bgr = channel_order == "bgr"
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if bgr else cv2.COLOR_RGB2GRAY)
    eigvec = PCA_EIGVEC_BGR if bgr else PCA_EIGVEC_RGB
    official = numerics == "centernet"
    grey_mean = grey.mean()                                  # float32, as numpy gives it
    for op in draws.permutation("color_order", 3):
        u = draws.uniform(_COLOR_OPS[int(op)], -var, var)
        if official:
            alpha, beta = np.float32(1.0 + u), np.float32(1.0 - (1.0 + u))
        else:
            alpha = np.float32(1.0 + u)
            beta = np.float32(1.0) - alpha
        image *= alpha
        if op == 1:                                          # contrast
            image += np.float32(grey_mean * beta)
        elif op == 2:                                        # saturation
            image += (grey * beta)[:, :, None]
    weights = draws.normal("lighting", 0.0, lighting_std, size=3)
    if official:
        image += np.dot(eigvec, PCA_EIGVAL * np.asarray(weights, dtype=np.float64))
    else:
        image += eigvec @ (PCA_EIGVAL * np.asarray(weights).astype(np.float32))
    return image


def center_scale_of_image(height: int, width: int) -> tuple[np.ndarray, float]:
    """CenterNet's test crop of a whole image (``fix_res``): centre (w/2, h/2), scale the
    long side, so the image fits the square input, letterboxed."""
    return (np.array([width / 2.0, height / 2.0], dtype=np.float32),
            float(max(height, width)))


class CenterNetCodec:
    """Boxes <-> CenterNet targets (see module docstring).

    Args:
        input_size: network input (H, W), divisible by ``output_stride``.
        output_stride: input pixels per output cell (CenterNet's ``down_ratio``, 4).
        num_classes: heatmap channels (20 for VOC).
        max_objects: target slots per image (CenterNet's ``max_objs``: 50 for VOC).
        min_overlap: IoU the Gaussian radius is sized for (0.7).
        heatmap_radius: "centernet" (``gaussian_radius_centernet``, the formula as
            CenterNet codes it) or "exact" (``gaussian_radius``, the roots solved).
    """

    def __init__(self, input_size=(512, 512), output_stride: int = 4, num_classes: int = 20,
                 max_objects: int = 50, min_overlap: float = 0.7,
                 heatmap_radius: str = "centernet"):
        h, w = (int(v) for v in input_size)
        self.output_stride = int(output_stride)
        if self.output_stride <= 0 or h % self.output_stride or w % self.output_stride:
            raise ValueError(f"input_size {(h, w)} must be divisible by output_stride "
                             f"{output_stride}")
        self.input_size = (h, w)
        self.output_size = (h // self.output_stride, w // self.output_stride)
        self.num_classes = int(num_classes)
        self.max_objects = int(max_objects)
        self.min_overlap = float(min_overlap)
        if heatmap_radius not in HEATMAP_RADII:
            raise ValueError(f"heatmap_radius must be one of {sorted(HEATMAP_RADII)}, got "
                             f"{heatmap_radius!r}")
        self.heatmap_radius = heatmap_radius
        self._radius = HEATMAP_RADII[heatmap_radius]
        if self.num_classes <= 0 or self.max_objects <= 0:
            raise ValueError("num_classes and max_objects must be positive")

    def __repr__(self) -> str:
        return (f"CenterNetCodec(input_size={self.input_size}, output_stride="
                f"{self.output_stride}, num_classes={self.num_classes}, max_objects="
                f"{self.max_objects}, heatmap_radius={self.heatmap_radius!r})")

    # ------------------------------------------------------------------ encoding
    def encode(self, boxes, labels, on_grid: bool = False) -> dict[str, np.ndarray]:
        """Targets of boxes (N, 4) [x1, y1, x2, y2] in input pixels (``on_grid``: already
        on the output grid, as CenterNet maps them with its output transform) with class
        indices (N,): ``hm`` (C, h, w) float32, ``wh`` and ``reg`` (max_objects, 2) float32,
        ``ind`` (max_objects,) int64, ``reg_mask`` (max_objects,) float32."""
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(boxes) != len(labels):
            raise ValueError(f"{len(boxes)} boxes but {len(labels)} labels")
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"labels must lie in 0..{self.num_classes - 1}, got "
                             f"{labels.min()}..{labels.max()}")
        out_h, out_w = self.output_size
        hm = np.zeros((self.num_classes, out_h, out_w), dtype=np.float32)
        wh = np.zeros((self.max_objects, 2), dtype=np.float32)
        reg = np.zeros((self.max_objects, 2), dtype=np.float32)
        ind = np.zeros((self.max_objects,), dtype=np.int64)
        reg_mask = np.zeros((self.max_objects,), dtype=np.float32)
        # CenterNet works in float32 throughout; the integer centre (hence the target
        # cell) of a box whose centre lies on a cell border depends on it
        grid = (boxes[:self.max_objects].copy() if on_grid
                else boxes[:self.max_objects] / np.float32(self.output_stride))
        grid[:, [0, 2]] = np.clip(grid[:, [0, 2]], 0, out_w - 1)
        grid[:, [1, 3]] = np.clip(grid[:, [1, 3]], 0, out_h - 1)
        for k, (box, cls) in enumerate(zip(grid, labels)):
            bh, bw = box[3] - box[1], box[2] - box[0]
            if not (bh > 0 and bw > 0):
                continue
            radius = max(0, int(self._radius((math.ceil(bh), math.ceil(bw)),
                                             self.min_overlap)))
            ct = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], dtype=np.float32)
            ct_int = ct.astype(np.int32)
            draw_umich_gaussian(hm[cls], ct_int, radius)
            wh[k] = bw, bh
            ind[k] = ct_int[1] * out_w + ct_int[0]
            reg[k] = ct - ct_int
            reg_mask[k] = 1.0
        return {"hm": hm, "wh": wh, "reg": reg, "ind": ind, "reg_mask": reg_mask}

    def dense_maps(self, wh, reg, ind, reg_mask) -> tuple[np.ndarray, np.ndarray]:
        """The (2, h, w) size and offset maps a perfect network would output for one
        image's targets: each masked slot's ``wh`` / ``reg`` written at its cell ``ind``
        (later slots win a shared cell, as a model can predict only one box per cell).
        With ``hm`` as probabilities they decode back to the encoded boxes (the target
        oracle of the smoke gate)."""
        out_h, out_w = self.output_size
        wh_map = np.zeros((2, out_h * out_w), dtype=np.float32)
        reg_map = np.zeros((2, out_h * out_w), dtype=np.float32)
        m = np.asarray(reg_mask).reshape(-1) > 0
        idx = np.asarray(ind, dtype=np.int64).reshape(-1)[m]
        wh_map[:, idx] = np.asarray(wh, dtype=np.float32).reshape(-1, 2)[m].T
        reg_map[:, idx] = np.asarray(reg, dtype=np.float32).reshape(-1, 2)[m].T
        return wh_map.reshape(2, out_h, out_w), reg_map.reshape(2, out_h, out_w)

    # ------------------------------------------------------------------ decoding
    @staticmethod
    def merge_flip(hm, wh, reg=None):
        """CenterNet's flip test for a batch of 2 (image, mirrored image): heatmaps and
        sizes averaged with the mirrored pass mirrored back, offsets from the unflipped
        pass only (a mirrored offset is not the offset of the mirrored box). Tensors
        (2, ., h, w) -> (1, ., h, w)."""
        import torch
        hm, wh = torch.as_tensor(hm), torch.as_tensor(wh)
        if hm.shape[0] != 2 or wh.shape[0] != 2:
            raise ValueError(f"flip merging needs a batch of 2, got {hm.shape[0]}")
        hm = (hm[0:1] + torch.flip(hm[1:2], dims=[3])) / 2
        wh = (wh[0:1] + torch.flip(wh[1:2], dims=[3])) / 2
        return hm, wh, (None if reg is None else torch.as_tensor(reg)[0:1])

    def decode(self, hm, wh, reg=None, centers=None, scales=None, k: int = 100,
               selection: str = "per_class", numerics: str = "centernet") -> list[np.ndarray]:
        """Detections per image, each a float32 (k, 6) array [x1, y1, x2, y2, score,
        class] sorted by score (class: 0-based index).

        ``hm`` (B, C, h, w) are probabilities (sigmoid already applied), ``wh`` and
        ``reg`` (B, 2, h, w) tensors or arrays; without ``reg`` the centre is the cell's
        middle (+0.5). With ``centers`` (B, 2) and ``scales`` (B,) of the test crops the
        boxes are in original image pixels, else in input pixels. Fewer than ``k``
        positions give fewer rows.

        ``selection``: "per_class" is CenterNet's ``models/decode.py::_topk`` (the top
        ``k`` peaks of each class, then the top ``k`` of those; the same scores as one
        top-k, equal scores may come out in another order or, at the k-th place, be
        other peaks), "global" one top-k over every class and position.
        ``numerics``: "centernet" maps boxes back as ``utils/post_process.py::
        ctdet_post_process`` (the inverse matrix of three float32 point pairs,
        ``get_affine_transform(..., inv=1)``, one ``np.dot`` per float32 corner);
        "exact" with the closed-form inverse in float64."""
        import torch
        import torch.nn.functional as F
        if selection not in ("per_class", "global"):
            raise ValueError(f"selection must be 'per_class' or 'global', got {selection!r}")
        if numerics not in ("centernet", "exact"):
            raise ValueError(f"numerics must be 'centernet' or 'exact', got {numerics!r}")
        hm = torch.as_tensor(hm, dtype=torch.float32)
        wh = torch.as_tensor(wh, dtype=torch.float32)
        if hm.dim() != 4 or wh.shape != (hm.shape[0], 2, *hm.shape[2:]):
            raise ValueError(f"hm must be (B, C, h, w) and wh (B, 2, h, w); got "
                             f"{tuple(hm.shape)} and {tuple(wh.shape)}")
        b, c, h, w = hm.shape
        # a position is a peak when it is the maximum of its 3x3 neighbourhood
        peaks = hm * (F.max_pool2d(hm, 3, stride=1, padding=1) == hm).to(hm.dtype)
        if selection == "per_class":
            kc = min(int(k), h * w)
            class_scores, class_pix = peaks.reshape(b, c, -1).topk(kc, dim=2)
            k = min(int(k), c * kc)
            scores, index = class_scores.reshape(b, -1).topk(k, dim=1)
            classes = torch.div(index, kc, rounding_mode="floor")
            pix = class_pix.reshape(b, -1).gather(1, index)
        else:
            k = min(int(k), c * h * w)
            scores, index = peaks.reshape(b, -1).topk(k, dim=1)
            classes = torch.div(index, h * w, rounding_mode="floor")
            pix = index - classes * (h * w)
        ys = torch.div(pix, w, rounding_mode="floor").to(torch.float32)
        xs = (pix - torch.div(pix, w, rounding_mode="floor") * w).to(torch.float32)
        gather = pix[:, None, :].expand(b, 2, k)
        size = wh.reshape(b, 2, -1).gather(2, gather)
        if reg is None:
            xs, ys = xs + 0.5, ys + 0.5
        else:
            off = torch.as_tensor(reg, dtype=torch.float32).reshape(b, 2, -1).gather(2, gather)
            xs, ys = xs + off[:, 0], ys + off[:, 1]
        boxes = torch.stack([xs - size[:, 0] / 2, ys - size[:, 1] / 2,
                             xs + size[:, 0] / 2, ys + size[:, 1] / 2], dim=2)
        boxes = boxes.detach().cpu().numpy()                 # float32, as CenterNet's dets
        scores = scores.detach().cpu().numpy()
        classes = classes.detach().cpu().numpy()

        if (centers is None) != (scales is None):
            raise ValueError("give both centers and scales, or neither")
        out = []
        out_h, out_w = self.output_size
        for i in range(b):
            if centers is None:
                xy = boxes[i].reshape(-1, 2).astype(np.float64) * self.output_stride
            elif numerics == "centernet":
                inv = get_affine_transform_points(
                    np.asarray(centers[i], np.float32).reshape(2),
                    np.float32(np.asarray(scales[i]).reshape(-1)[0]), 0.0, (out_w, out_h),
                    inv=True, pixel_std=1.0)
                xy = np.array([np.dot(inv, np.array([x, y, 1.0], dtype=np.float32))
                               for x, y in boxes[i].reshape(-1, 2)]).reshape(-1, 2)
            else:
                inv = get_affine_transform(np.asarray(centers[i], np.float64).reshape(2),
                                           float(np.asarray(scales[i]).reshape(-1)[0]), 0.0,
                                           (out_w, out_h), inv=True, pixel_std=1.0)
                xy = affine_transform(boxes[i].reshape(-1, 2).astype(np.float64), inv)
            det = np.concatenate([xy.reshape(-1, 4), scores[i][:, None],
                                  classes[i][:, None]], axis=1)
            out.append(det.astype(np.float32))
        return out
