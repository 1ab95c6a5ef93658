"""Top-down keypoint dataset base: person records -> augmented crops + Gaussian targets.

Serves every top-down pose table: HRNet (Sun et al., CVPR 2019) COCO Tables 1/6 and MPII
Table 7, Lite-HRNet (Yu et al., CVPR 2021) Tables 3 and 5-7, and the COCO/MPII rows of
GSTO, DPN and FlatteNet. ``coco.py``, ``mpii.py`` and ``lsp.py`` only turn their official
annotation files into *person records*; everything from the image file to the training
tensors happens here, once, for all of them.

A person record is a plain dict::

    {image_file, center (2,), scale (2,) in 200 px units, joints (K, 2) image pixels,
     visible (K,) 0/1, score, area, image_id, bbox_id}

Each sample draws from ``numpy.random.default_rng([seed, epoch, index])``: call
``set_epoch`` once per epoch. ``input_size`` and ``heatmap_size`` are (H, W), as the
protocol YAML files write them.

Design reasoning, readings and measurements: docs/design-notes.md, "Module notes",
bench/tasks/pose/data/topdown.py.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..codecs import MSRAHeatmapCodec
from ..protocol import PoseProtocol, pose_protocol
from ....data.common import IMAGENET_MEAN, IMAGENET_STD
from ....data.draws import SampleDraws
from ....data.transforms import (
    PIXEL_STD,
    affine_transform,
    fliplr_image,
    fliplr_joints,
    get_affine_transform_points,
    half_body_transform,
    sample_flip,
    sample_rotation,
    sample_scale_factor,
)

__all__ = ["TopDownDataset", "make_record", "pose_protocol", "dataset_kwargs_from_protocol",
           "collate_meta"]

#: ``augmentation.order``: whose sample pipeline (see the module docstring)
ORDERS = ("mmpose", "hrnet")
#: ``exif_orientation``: whether a JPEG's EXIF orientation tag turns the image on reading
EXIF_ORIENTATIONS = ("ignore", "apply")

#: Keys of ``meta``; every value is a number or a fixed-shape array (or the image path),
#: so torch's default collate batches them.
META_KEYS = ("center", "scale", "rotation", "score", "image_id", "bbox_id", "area",
             "index", "flipped", "image_file", "joints", "visible")


def make_record(image_file, center, scale, joints, visible, score: float = 1.0,
                area: float | None = None, image_id: int = 0, bbox_id: int = 0,
                float_dtype=np.float32, joints_dtype=None, **extra) -> dict:
    """A person record with normalised types (float32 arrays, python scalars;
    ``float_dtype`` for center and scale, ``joints_dtype`` (default: ``float_dtype``) for
    the joints: MPII's records keep float64 centres, and float64 joints in HRNet's loader).

    ``area`` defaults to the crop box area ``prod(scale * 200)``: this is what the
    reference evaluation passes to OKS-NMS for every box (``all_boxes[:, 4]``), so the
    meta of every sample carries the number the evaluator needs. Extra keys (e.g. a
    COCO annotation id) are kept on the record but not put into ``meta``.
    """
    scale = np.asarray(scale, dtype=float_dtype).reshape(-1)
    if scale.size == 1:
        scale = np.repeat(scale, 2)
    rec = {
        "image_file": str(image_file),
        "center": np.asarray(center, dtype=float_dtype).reshape(2),
        "scale": scale.reshape(2),
        "joints": np.asarray(joints, dtype=joints_dtype or float_dtype).reshape(-1, 2),
        "visible": np.asarray(visible, dtype=np.float32).reshape(-1),
        "score": float(score),
        "area": float(np.prod(scale * PIXEL_STD)) if area is None else float(area),
        "image_id": int(image_id),
        "bbox_id": int(bbox_id),
    }
    if rec["joints"].shape[0] != rec["visible"].shape[0]:
        raise ValueError(f"joints ({rec['joints'].shape[0]}) and visible "
                         f"({rec['visible'].shape[0]}) disagree on the number of joints")
    rec.update(extra)
    return rec


def dataset_kwargs_from_protocol(protocol, train: bool) -> dict:
    """Constructor arguments of ``TopDownDataset`` read from a pose protocol: sizes
    (``input_size``/``heatmap_size``, [H, W]), ``num_joints``, ``sigma``, the encoding and
    image reading settings and, for training, the ``augmentation`` (an entry the protocol
    leaves out is off; its defaults are the schema's, ``PoseAugmentation``)."""
    p = pose_protocol(protocol)
    aug = p.augmentation
    # the order also applies at evaluation: it selects the crop matrix and record precision
    kw: dict[str, Any] = {"input_size": p.input_size, "order": aug.order,
                          "unbiased_encoding": p.unbiased_encoding, "color_rgb": p.color_rgb,
                          "exif_orientation": p.exif_orientation}
    for key in ("heatmap_size", "sigma", "num_joints"):
        if getattr(p, key) is not None:
            kw[key] = getattr(p, key)
    if train:
        kw.update(flip_prob=aug.flip_prob, rotation_factor=aug.rotation,
                  rotation_prob=aug.rotation_prob, scale_factor=aug.scale,
                  half_body_prob=aug.half_body.prob if aug.half_body else 0.0)
        if aug.half_body:
            kw["half_body_num_joints"] = aug.half_body.num_joints
        if aug.box_center_jitter:
            kw["box_center_jitter"] = (aug.box_center_jitter.prob, aug.box_center_jitter.factor)
    return kw


def _protocol_dataset_dir(protocol: PoseProtocol, default: str) -> str:
    """Folder of the dataset under the data root: the first component of the protocol's
    first ``data_files`` entry (``coco/annotations/...`` -> ``coco``), else ``default``."""
    if protocol.data_files:
        first = Path(str(protocol.data_files[0])).parts
        if len(first) > 1:
            return first[0]
    return default


def resolve_dataset_root(data_root, protocol: PoseProtocol, default: str, marker: str) -> Path:
    """``data_root/<dataset dir>`` (the HRNet layout), or ``data_root`` itself when it is
    already the dataset folder (it contains ``marker``). A missing folder is left to the
    dataset constructor, whose error names the path under ``data_root/<dataset dir>``."""
    data_root = Path(data_root)
    sub = data_root / _protocol_dataset_dir(protocol, default)
    if (sub / marker).exists():
        return sub
    if (data_root / marker).exists():
        return data_root
    return sub


def collate_meta(metas: Sequence[Mapping[str, Any]]) -> dict:
    """Per-sample ``meta`` dicts -> dict of stacked numpy arrays (lists for strings)."""
    out: dict[str, Any] = {}
    for key in metas[0]:
        vals = [m[key] for m in metas]
        if isinstance(vals[0], str):
            out[key] = list(vals)
        else:
            out[key] = np.stack([np.asarray(v) for v in vals])
    return out


class TopDownDataset(Dataset):
    """Top-down keypoint dataset over a list of person records (see module docstring).

    Args:
        records: person records (``make_record``).
        input_size: network input (H, W).
        heatmap_size: target heatmap (H, W).
        sigma: Gaussian sigma in heatmap pixels (2 for 256x192, 3 for 384x288).
        train: apply the random augmentations.
        flip_pairs / upper_body_ids / lower_body_ids: joint index sets of the dataset.
        flip_prob, half_body_prob, half_body_num_joints, scale_factor, rotation_factor,
        rotation_prob: augmentation settings (the protocol's values, see
        ``dataset_kwargs_from_protocol``); they are only used when ``train``.
        seed: base seed of the per-sample generators.
        joint_weights: optional per-joint loss weights multiplied into ``target_weight``
            (HRNet's USE_DIFFERENT_JOINTS_WEIGHT).
        unbiased_encoding: DARK targets (Gaussian at the sub-pixel location).
        color_rgb: convert OpenCV's BGR to RGB (True in every recipe used here).
        exif_orientation: ``'ignore'`` (HRNet's ``cv2.IMREAD_IGNORE_ORIENTATION``: the
            stored pixels, which the annotations refer to) or ``'apply'`` (the image
            turned by its EXIF orientation tag, as ``cv2.IMREAD_COLOR`` does, which
            mmpose 0.x's ``LoadImageFromFile`` calls through ``mmcv.imread``).
        mean, std: normalisation of [0, 1] RGB values.
        order: ``'mmpose'`` or ``'hrnet'``: whose sample pipeline (module docstring).
    """

    #: set by subclasses
    dataset_name = "topdown"
    flip_pairs_default: tuple = ()
    upper_body_default: tuple = ()
    lower_body_default: tuple = ()
    num_joints_default: int | None = None
    half_body_prob_default = 0.0

    def __init__(self, records: Sequence[Mapping[str, Any]], input_size=(256, 192),
                 heatmap_size=(64, 48), sigma: float = 2.0, train: bool = False, *,
                 num_joints: int | None = None, flip_pairs=None, upper_body_ids=None,
                 lower_body_ids=None, flip_prob: float = 0.5,
                 half_body_prob: float | None = None, half_body_num_joints: int = 8,
                 scale_factor: float = 0.25, rotation_factor: float = 30.0,
                 rotation_prob: float = 0.6, seed: int = 0, joint_weights=None,
                 unbiased_encoding: bool = False, color_rgb: bool = True,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD, order: str = "mmpose",
                 exif_orientation: str = "ignore"):
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        if exif_orientation not in EXIF_ORIENTATIONS:
            raise ValueError(f"exif_orientation must be one of {EXIF_ORIENTATIONS}, got "
                             f"{exif_orientation!r}")
        self.order = order
        self.exif_orientation = exif_orientation
        self.records = list(records)
        self.input_size = (int(input_size[0]), int(input_size[1]))        # (H, W)
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))  # (H, W)
        self.sigma = float(sigma)
        self.train = bool(train)
        expected = num_joints if num_joints is not None else self.num_joints_default
        if self.records:
            k = self.records[0]["joints"].shape[0]
            if expected is not None and k != expected:
                raise ValueError(f"{self.dataset_name}: records have {k} joints, "
                                 f"num_joints is {expected}")
            expected = k
        self.num_joints = expected
        self.flip_pairs = tuple(tuple(p) for p in (
            self.flip_pairs_default if flip_pairs is None else flip_pairs))
        self.upper_body_ids = tuple(self.upper_body_default if upper_body_ids is None
                                    else upper_body_ids)
        self.lower_body_ids = tuple(self.lower_body_default if lower_body_ids is None
                                    else lower_body_ids)
        self.flip_prob = float(flip_prob)
        self.half_body_prob = float(self.half_body_prob_default if half_body_prob is None
                                    else half_body_prob)
        self.half_body_num_joints = int(half_body_num_joints)
        self.scale_factor = float(scale_factor)
        self.rotation_factor = float(rotation_factor)
        self.rotation_prob = float(rotation_prob)
        self.seed = int(seed)
        self.epoch = 0
        self.joint_weights = None if joint_weights is None else \
            np.asarray(joint_weights, dtype=np.float32).reshape(-1)
        self.unbiased_encoding = bool(unbiased_encoding)
        #: encodes this dataset's targets and decodes predictions made on its crops
        self.codec = MSRAHeatmapCodec(self.image_size_wh, self.heatmap_size_wh, self.sigma,
                                      unbiased=self.unbiased_encoding)
        self.color_rgb = bool(color_rgb)
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, 1, 3)
        self.std = np.asarray(std, dtype=np.float32).reshape(1, 1, 3)

    # ------------------------------------------------------------------ sizes
    @property
    def aspect_ratio(self) -> float:
        """Input width / height: person boxes are grown to it so crops are undistorted."""
        return self.input_size[1] / self.input_size[0]

    @property
    def image_size_wh(self) -> tuple[int, int]:
        return self.input_size[1], self.input_size[0]

    @property
    def heatmap_size_wh(self) -> tuple[int, int]:
        return self.heatmap_size[1], self.heatmap_size[0]

    def set_epoch(self, epoch: int) -> None:
        """Select the random stream of an epoch (augmentations differ between epochs)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} persons, input_size={self.input_size}, "
                f"heatmap_size={self.heatmap_size}, train={self.train})")

    # ------------------------------------------------------------------ pipeline
    def rng_for(self, index: int) -> np.random.Generator:
        """The generator of one sample: a function of (seed, epoch, index) only."""
        # what default_rng([...]) builds, minus its argument dispatch
        return np.random.Generator(np.random.PCG64([self.seed, self.epoch, int(index)]))

    def draws_for(self, index: int) -> SampleDraws:
        """The named draws of one sample (tests replace this to replay recorded draws)."""
        return SampleDraws(self.rng_for(index))

    def load_image(self, path: str) -> np.ndarray:
        """HxWx3 uint8, RGB unless ``color_rgb`` is False (OpenCV's BGR then)."""
        # exif_orientation 'ignore' (HRNet's IGNORE_ORIENTATION): annotations refer to the
        # stored pixels, not to the EXIF-rotated view; 'apply' is mmpose's reading.
        # The same decoder as cv2.imread, fed from memory: one read of the file instead
        # of libjpeg's 4 KB stdio reads (~5 % of a decode). OpenCV >= 4.11 also decodes
        # straight to RGB (libjpeg-turbo's RGB output: the same pixels as BGR + cvtColor,
        # without the extra pass over the image).
        rgb_flag = getattr(cv2, "IMREAD_COLOR_RGB", None) if self.color_rgb else None
        flags = (cv2.IMREAD_COLOR if rgb_flag is None else rgb_flag) | (
            cv2.IMREAD_IGNORE_ORIENTATION if self.exif_orientation == "ignore" else 0)
        image = None
        try:
            data = np.fromfile(path, dtype=np.uint8)
            if data.size:
                image = cv2.imdecode(data, flags)
        except (OSError, cv2.error):   # missing / unreadable file, corrupt data
            image = None
        if image is None:
            if not os.path.exists(path):
                raise FileNotFoundError(f"{self.dataset_name}: image not found: expected {path}")
            raise ValueError(f"{self.dataset_name}: OpenCV could not decode {path}")
        if self.color_rgb and rgb_flag is None:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return image

    def normalise(self, crop: np.ndarray) -> np.ndarray:
        """HxWxC crop -> CxHxW float32 ``(crop / 255 - mean) / std`` (step 4).

        A uint8 crop goes through per-channel 256-entry lookup tables computed with that
        very float32 expression, written straight into the CHW array: the values are
        bit-identical to the expression and no HxWxC float intermediate is made. Other
        dtypes use the expression itself.
        """
        luts = self._normalise_luts() if crop.dtype == np.uint8 and crop.ndim == 3 \
            else None
        if luts is None or len(luts) != crop.shape[2]:
            x = (crop.astype(np.float32) / 255.0 - self.mean) / self.std
            return np.ascontiguousarray(x.transpose(2, 0, 1))
        out = np.empty((crop.shape[2],) + crop.shape[:2], dtype=np.float32)
        for c, plane in enumerate(cv2.split(crop)):
            r = cv2.LUT(plane, luts[c], dst=out[c])
            if r.ctypes.data != out[c].ctypes.data:   # OpenCV did not write in place
                out[c] = r
        return out

    def _normalise_luts(self):
        """Per-channel (1, 256) float32 tables of the normalisation, or None when the
        expression does not yield float32 (e.g. float64 mean/std set by hand)."""
        key = (self.mean.tobytes(), self.mean.dtype.str, self.mean.shape,
               self.std.tobytes(), self.std.dtype.str, self.std.shape)
        cached = getattr(self, "_lut_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        levels = np.arange(256, dtype=np.uint8).reshape(256, 1, 1)
        table = (levels.astype(np.float32) / 255.0 - self.mean) / self.std
        luts = None
        if table.dtype == np.float32 and table.ndim == 3 and table.shape[:2] == (256, 1):
            luts = [np.ascontiguousarray(table[:, 0, c].reshape(1, 256))
                    for c in range(table.shape[2])]
        self._lut_cache = (key, luts)
        return luts

    def augment(self, rng, image: np.ndarray, joints: np.ndarray,
                visible: np.ndarray, center: np.ndarray, scale: np.ndarray):
        """The training augmentations in ``self.order``; ``rng`` a ``SampleDraws`` (or a
        Generator); returns the updated (image, joints, visible, center, scale,
        rotation, flipped)."""
        if self.order == "hrnet":
            return self._augment_hrnet(rng, image, joints, visible, center, scale)
        flipped = self.flip_prob > 0 and sample_flip(rng, self.flip_prob)
        if flipped:
            image, joints, visible, center = self._flip(image, joints, visible, center)
        if self.half_body_prob > 0 and self.upper_body_ids:
            # mmpose divides the image size's numpy ints: a float64 aspect ratio, so the
            # grown side is float64 before the float32 scale (a python float would not be)
            half = half_body_transform(joints, visible, self.upper_body_ids,
                                       self.lower_body_ids, np.float64(self.aspect_ratio),
                                       self.half_body_num_joints, self.half_body_prob,
                                       rng=rng, box_dtype=np.float32)
            if half is not None:
                center, scale = half
        scale = scale.astype(np.float64) * sample_scale_factor(rng, self.scale_factor)
        rotation = sample_rotation(rng, self.rotation_factor, self.rotation_prob)
        return image, joints, visible, center, scale, rotation, flipped

    def _augment_hrnet(self, draws, image, joints, visible, center, scale):
        """HRNet's order and arithmetic (module docstring, ``order='hrnet'``)."""
        if self.half_body_prob > 0 and self.upper_body_ids:
            half = half_body_transform(joints, visible, self.upper_body_ids,
                                       self.lower_body_ids, self.aspect_ratio,
                                       self.half_body_num_joints, self.half_body_prob,
                                       rng=draws, box_dtype=np.float32)
            if half is not None:
                center, scale = half
        # the record's scale (float32 for COCO) times a float64 factor: float64
        scale = scale.astype(np.float64) * sample_scale_factor(draws, self.scale_factor)
        rotation = sample_rotation(draws, self.rotation_factor, self.rotation_prob,
                                   prob_first=True)
        flipped = self.flip_prob > 0 and sample_flip(draws, self.flip_prob)
        if flipped:
            image, joints, visible, center = self._flip(image, joints, visible, center)
        return image, joints, visible, center, scale, rotation, flipped

    def _flip(self, image, joints, visible, center):
        """Mirror image, joints (with the flip pairs) and centre, the centre in its own
        dtype (both official loaders: ``c[0] = width - c[0] - 1`` in place)."""
        width = image.shape[1]
        joints, visible = fliplr_joints(joints, visible, width, self.flip_pairs)
        center = center.copy()
        center[0] = width - center[0] - 1
        return fliplr_image(image), joints, visible, center

    def __getitem__(self, index: int) -> dict:
        rec = self.records[index]
        image = self.load_image(rec["image_file"])
        joints = rec["joints"].astype(np.float64)
        visible = rec["visible"].astype(np.float64)
        # the record's precision, as both loaders (float32 COCO boxes, float64 MPII)
        center, scale = rec["center"].copy(), rec["scale"].copy()
        rotation, flipped = 0.0, False
        if self.train:
            image, joints, visible, center, scale, rotation, flipped = self.augment(
                self.draws_for(index), image, joints, visible, center, scale)

        M = get_affine_transform_points(center, scale, rotation, self.image_size_wh)
        crop = cv2.warpAffine(np.ascontiguousarray(image), M, self.image_size_wh,
                              flags=cv2.INTER_LINEAR)
        crop_joints = affine_transform(joints, M)
        target, weight = self.codec.encode(crop_joints, visible,
                                           joint_weights=self.joint_weights)

        x = self.normalise(crop)
        meta = {
            # in the precision the official loaders hand on (see the module docstring)
            "center": np.array(center),
            "scale": np.array(scale),
            "rotation": float(rotation),
            "score": float(rec["score"]),
            "image_id": int(rec["image_id"]),
            "bbox_id": int(rec["bbox_id"]),
            "area": float(rec["area"]),
            "index": int(index),
            "flipped": bool(flipped),
            "image_file": rec["image_file"],
            # the annotation in original-image pixels (unaugmented), for evaluation
            "joints": rec["joints"].copy(),
            "visible": rec["visible"].copy(),
        }
        return {
            "image": torch.from_numpy(x),
            "target": torch.from_numpy(target),
            "target_weight": torch.from_numpy(weight.reshape(-1, 1)),
            "meta": meta,
        }
