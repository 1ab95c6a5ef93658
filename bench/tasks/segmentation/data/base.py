"""Semantic-segmentation dataset base: (image, label) files -> augmented crops.

Serves the segmentation tables: GSTO's Cityscapes, LIP and PASCAL-Context tables,
Lite-HRNet Table 8 and FlatteNet Table VIII (HRNetV2's recipes).
``cityscapes.py``, ``pascal_context.py`` and ``lip.py`` only list the (image, label)
file pairs of their official layouts and say how label values map to train ids;
everything from the files to the tensors happens here, once, for all of them.

Each sample draws from ``numpy.random.default_rng([seed, epoch, index])``: call
``set_epoch`` once per epoch.

Design reasoning, readings and measurements: docs/design-notes.md, "Module notes",
bench/tasks/segmentation/data/base.py.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ....data.draws import SampleDraws
from ..labels import SEG_IGNORE
from ....data.common import IMAGENET_MEAN, IMAGENET_STD, require_path
from ..protocol import seg_protocol
from ....data.transforms import scale_range_of

__all__ = ["SegmentationDataset", "SEGMENTATION_DATASETS", "segmentation_dataset_class",
           "build_segmentation_dataset", "read_id_list", "PAD_IMAGE_MODES", "seg_protocol"]

#: how the image is padded where a scaled image is smaller than the crop (step 4)
PAD_IMAGE_MODES = ("black", "mean")
_DEFAULT_RANGE = (0.5, 2.0)

#: dataset name -> "module:Class"; imported on first use so that naming a dataset does
#: not import the others.
SEGMENTATION_DATASETS = {
    "cityscapes": "bench.tasks.segmentation.data.cityscapes:CityscapesDataset",
    "pascal_context": "bench.tasks.segmentation.data.pascal_context:PascalContextDataset",
    "lip": "bench.tasks.segmentation.data.lip:LIPDataset",
}


def segmentation_dataset_class(name: str) -> type["SegmentationDataset"]:
    """The dataset class registered under ``name`` in ``SEGMENTATION_DATASETS``."""
    if name not in SEGMENTATION_DATASETS:
        raise ValueError(f"unknown segmentation dataset {name!r}; known: "
                         f"{', '.join(sorted(SEGMENTATION_DATASETS))}")
    module, cls = SEGMENTATION_DATASETS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def build_segmentation_dataset(protocol, data_root, train: bool,
                               seed: int = 0) -> "SegmentationDataset":
    """The dataset a protocol names (its ``dataset``), built by its ``from_protocol``."""
    p = seg_protocol(protocol)
    return segmentation_dataset_class(p.dataset).from_protocol(p, data_root, train, seed=seed)


def read_id_list(path: str | os.PathLike, what: str) -> list[str]:
    """Non-empty, stripped lines of an id list (``ImageSets/.../train.txt`` and the
    like); a missing file is a FileNotFoundError naming it, an empty one a ValueError."""
    path = require_path(path, what)
    ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise ValueError(f"{what} is empty: {path}")
    return ids


def _pair(size, what: str) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    h, w = (int(v) for v in size)
    if h <= 0 or w <= 0:
        raise ValueError(f"{what} must be positive, got {tuple(size)}")
    return h, w


class SegmentationDataset(Dataset):
    """Semantic-segmentation dataset over (image, label) file pairs (see module docstring).

    Args:
        root: the dataset folder in its official layout.
        split: split name of the layout (e.g. 'train', 'val').
        train: draw the random augmentations and return crops; else whole images.
        crop_size: training crop (H, W), or None for the whole (scaled) image.
        base_size: long side the image is resized to before random scaling (HRNet's
            ``BASE_SIZE``); None keeps the image's own size.
        scale_range: (lo, hi) of the uniform random scale factor, None = no scaling.
        scale_factor: HRNet's SCALE_FACTOR: the scale is 0.5 + k / 10, k uniform in
            0..scale_factor (replaces ``scale_range``; giving both is an error).
        flip_prob: probability of a horizontal flip.
        pad_image: 'black' (pixel 0 before normalisation) or 'mean' (0 after it).
        resize_to_crop: resize image and label to ``crop_size`` before the random scale.
        flip_first: flip before any resizing instead of after the crop.
        ignore_label: label of pixels left out of loss and metric (0..255, above the
            class ids); unlabelled classes and padding get it.
        seed: base seed of the per-sample generators.
        num_classes: the label space (the subclass says which ones it supports).
        mean, std: normalisation of [0, 1] RGB values.
    """

    #: set by subclasses
    dataset_name = "segmentation"
    splits: tuple[str, ...] = ()            # empty: any split the layout has
    #: split -> why it cannot be loaded (e.g. test labels held by an evaluation server)
    unavailable_splits: dict[str, str] = {}
    supported_num_classes: tuple[int, ...] = ()
    flip_pairs_default: tuple = ()
    #: a path under the dataset folder that identifies it (from_protocol uses it to
    #: accept ``data_root`` being the dataset folder itself)
    layout_marker = ""

    def __init__(self, root, split: str, train: bool = False, *, crop_size=None,
                 base_size: int | None = None, scale_range=_DEFAULT_RANGE,
                 flip_prob: float = 0.0, ignore_label: int = SEG_IGNORE, seed: int = 0,
                 num_classes: int | None = None, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 scale_factor: int | None = None, pad_image: str = "black",
                 resize_to_crop: bool = False, flip_first: bool = False,
                 eval_image_size=None):
        self.root = Path(root)
        self.split = str(split)
        self.train = bool(train)
        if self.split in self.unavailable_splits:
            raise ValueError(f"{self.dataset_name}: split {self.split!r} cannot be loaded: "
                             f"{self.unavailable_splits[self.split]}")
        if self.splits and self.split not in self.splits:
            raise ValueError(f"{self.dataset_name}: unknown split {self.split!r}; "
                             f"expected one of {self.splits}")
        if num_classes is None:
            num_classes = self.supported_num_classes[0] if self.supported_num_classes else None
        if num_classes is None or (self.supported_num_classes
                                   and int(num_classes) not in self.supported_num_classes):
            raise ValueError(f"{self.dataset_name}: num_classes must be one of "
                             f"{self.supported_num_classes}, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_label = int(ignore_label)
        # labels are kept as uint8 until the tensor; an ignore id inside the class range
        # would silently drop a class from training
        if not self.num_classes <= self.ignore_label <= 255:
            raise ValueError(f"{self.dataset_name}: ignore_label must lie in "
                             f"{self.num_classes}..255, got {ignore_label}")
        self.crop_size = _pair(crop_size, "crop_size")
        # evaluation: the uint8 image resized to (H, W) before normalising (LIP's testval)
        self.eval_image_size = _pair(eval_image_size, "eval_image_size")
        self.base_size = None if base_size is None else int(base_size)
        if scale_factor is not None:
            if scale_range is not None and scale_range is not _DEFAULT_RANGE:
                raise ValueError(f"{self.dataset_name}: give scale_range or scale_factor, "
                                 f"not both")
            scale_range = None
            if int(scale_factor) != scale_factor or scale_factor < 0:
                raise ValueError(f"scale_factor must be an integer >= 0, got {scale_factor}")
        self.scale_factor = None if scale_factor is None else int(scale_factor)
        self.scale_range = scale_range_of(scale_range)
        self.flip_prob = float(flip_prob)
        if pad_image not in PAD_IMAGE_MODES:
            raise ValueError(f"pad_image must be one of {PAD_IMAGE_MODES}, got {pad_image!r}")
        self.pad_image = str(pad_image)
        self.resize_to_crop = bool(resize_to_crop)
        self.flip_first = bool(flip_first)
        if self.resize_to_crop and self.crop_size is None:
            raise ValueError(f"{self.dataset_name}: resize_to_crop needs a crop_size")
        self.seed = int(seed)
        self.epoch = 0
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, 1, 3)
        self.std = np.asarray(std, dtype=np.float32).reshape(1, 1, 3)
        # x / 255 in float32, then - mean and / std computed in float64 with float32
        # results: the official input_transform's arithmetic (float32 image, float64
        # mean/std lists), so equal pixels give equal floats
        levels = (np.arange(256, dtype=np.float32) / np.float32(255.0))[:, None]
        mean64 = np.asarray(mean, dtype=np.float64).reshape(1, 3)
        std64 = np.asarray(std, dtype=np.float64).reshape(1, 3)
        centred = (levels.astype(np.float64) - mean64).astype(np.float32)
        self._norm_lut = (centred.astype(np.float64) / std64).astype(np.float32).T.copy()
        # the normalised value of a padded pixel (3,)
        self._pad_pixel = (self._norm_lut[:, 0].copy() if self.pad_image == "black"
                           else np.zeros(3, dtype=np.float32))
        self.flip_pairs = tuple(tuple(int(v) for v in p) for p in self.flip_pairs_default)
        require_path(self.root, f"{self.dataset_name} dataset folder")
        self.files: list[tuple[str, str]] = [(str(i), str(l)) for i, l in self.list_files()]
        self._label_lut = self.build_label_lut()

    # ------------------------------------------------------------------ subclass hooks
    @property
    def class_names(self) -> tuple[str, ...]:
        raise NotImplementedError(f"{type(self).__name__} must define class_names")

    def list_files(self) -> list[tuple[Path, Path]]:
        """(image, label) paths of ``self.split`` in the official layout."""
        raise NotImplementedError(f"{type(self).__name__} must list its files")

    def build_label_lut(self) -> np.ndarray:
        """uint8 table: stored label value -> train id (``ignore_label`` for ignored
        values); its length is the number of values a label file may hold."""
        raise NotImplementedError(f"{type(self).__name__} must map its label values")

    # ------------------------------------------------------------------ basics
    def set_epoch(self, epoch: int) -> None:
        """Select the random stream of an epoch (augmentations differ between epochs)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} images, split={self.split!r}, "
                f"num_classes={self.num_classes}, crop_size={self.crop_size}, "
                f"train={self.train})")

    def rng_for(self, index: int) -> np.random.Generator:
        """The generator of one sample: a function of (seed, epoch, index) only."""
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def draws_for(self, index: int) -> SampleDraws:
        """The named draws of one sample (tests replay recorded ones through this)."""
        return SampleDraws(self.rng_for(index))

    # ------------------------------------------------------------------ reading
    def _read(self, path: str, flags: int, what: str) -> np.ndarray:
        array = cv2.imread(path, flags)
        if array is None:
            if not os.path.exists(path):
                raise FileNotFoundError(f"{self.dataset_name}: {what} not found: expected "
                                        f"{path}")
            raise ValueError(f"{self.dataset_name}: OpenCV could not decode {path}")
        return array

    def load_image(self, index: int) -> np.ndarray:
        """HxWx3 uint8 RGB of sample ``index`` (greyscale files: 3 equal channels)."""
        # IGNORE_ORIENTATION: the labels refer to the stored pixels, not an EXIF view
        image = self._read(self.files[index][0],
                           cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION, "image")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def load_label(self, index: int) -> np.ndarray:
        """HxW uint8 train ids of sample ``index`` at the image's original size."""
        path = self.files[index][1]
        raw = self._read(path, cv2.IMREAD_UNCHANGED, "label")
        if raw.ndim != 2:
            # a colour or palette PNG (OpenCV expands palettes) is not a label-id map
            raise ValueError(f"{self.dataset_name}: {path} has {raw.shape[2]} channels; "
                             f"expected a single-channel label-id PNG")
        return self.map_label(raw, path)

    def map_label(self, raw: np.ndarray, source: str = "") -> np.ndarray:
        """Stored label values -> uint8 train ids through ``build_label_lut``'s table.

        Values outside the table raise a ValueError naming them (and ``source``): they
        mean a wrong or corrupt file, which must not silently turn into a class."""
        lut = self._label_lut
        raw = np.asarray(raw)
        if raw.size and (int(raw.max()) >= len(lut) or int(raw.min()) < 0):
            bad = np.unique(raw[(raw < 0) | (raw >= len(lut))])
            where = f" in {source}" if source else ""
            raise ValueError(f"{self.dataset_name}: label values {bad[:20].tolist()}{where} "
                             f"outside 0..{len(lut) - 1}")
        return lut[raw]

    # ------------------------------------------------------------------ pipeline
    def normalise(self, image: np.ndarray) -> np.ndarray:
        """uint8 RGB HxWx3 -> float32 (x / 255 - mean) / std."""
        # a per-channel table of the 256 possible values: the same float32 numbers as
        # the formula at about half its cost (one gather instead of four array passes)
        out = np.empty(image.shape, dtype=np.float32)
        for c in range(3):
            out[..., c] = self._norm_lut[c][image[..., c]]
        return out

    def random_scale(self, draws: SampleDraws, image: np.ndarray, label: np.ndarray):
        """Resize so the long side is ``base_size`` (or its own) x the drawn scale."""
        h, w = image.shape[:2]
        long_side = float(self.base_size if self.base_size is not None else max(h, w))
        if self.scale_factor is not None:
            long_side *= 0.5 + draws.integers("scale", 0, self.scale_factor + 1) / 10.0
        elif self.scale_range is not None:
            long_side *= draws.uniform("scale", *self.scale_range)
        long_side = max(1, int(long_side + 0.5))
        if long_side == max(h, w):
            return image, label
        if h >= w:
            nh, nw = long_side, max(1, int(w * long_side / h + 0.5))
        else:
            nh, nw = max(1, int(h * long_side / w + 0.5)), long_side
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, (nw, nh), interpolation=cv2.INTER_NEAREST)
        return image, label

    def pad_crop(self, draws: SampleDraws, image: np.ndarray, label: np.ndarray):
        """Normalised crop of ``crop_size`` and its label, padding at the bottom/right
        (image per ``pad_image``, label ``ignore_label``) where the image is smaller.
        Only the crop is normalised: at 2x scale a Cityscapes image has 8 M pixels."""
        ch, cw = self.crop_size
        h, w = label.shape
        x0 = draws.integers("crop_x", 0, max(w, cw) - cw + 1)
        y0 = draws.integers("crop_y", 0, max(h, ch) - ch + 1)
        img = image[y0:y0 + ch, x0:x0 + cw]
        lbl = label[y0:y0 + ch, x0:x0 + cw]
        if img.shape[:2] == (ch, cw):
            return self.normalise(img), lbl
        x = np.empty((ch, cw, 3), dtype=np.float32)
        x[...] = self._pad_pixel
        y = np.full((ch, cw), self.ignore_label, dtype=np.uint8)
        x[:img.shape[0], :img.shape[1]] = self.normalise(img)
        y[:lbl.shape[0], :lbl.shape[1]] = lbl
        return x, y

    def _draw_flip(self, draws: SampleDraws) -> bool:
        """Whether this sample is flipped (no draw when flipping is off)."""
        if self.flip_prob <= 0:
            return False
        if self.flip_prob == 0.5:
            # a fair coin as an integer, 0 = flip (the official np.random.choice(2) * 2 - 1)
            return draws.integers("flip", 0, 2) == 0
        return draws.random("flip") < self.flip_prob

    def flip_label(self, label: np.ndarray) -> np.ndarray:
        """Mirror a label map and exchange the values of ``flip_pairs``."""
        label = label[:, ::-1]
        if not self.flip_pairs:
            return label
        # built per call (256 entries): follows ``flip_pairs`` if a caller changes it
        swap = np.arange(256, dtype=np.uint8)
        for a, b in self.flip_pairs:
            swap[a], swap[b] = b, a
        return swap[label]

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        image = self.load_image(index)
        label = self.load_label(index)
        if image.shape[:2] != label.shape:
            raise ValueError(f"{self.dataset_name}: image {image.shape[:2]} and label "
                             f"{label.shape} differ in size: {self.files[index]}")
        if not self.train:
            h, w = label.shape
            if self.eval_image_size is not None:
                eh, ew = self.eval_image_size
                image = cv2.resize(image, (ew, eh), interpolation=cv2.INTER_LINEAR)
            return {
                "image": torch.from_numpy(np.ascontiguousarray(
                    self.normalise(image).transpose(2, 0, 1))),
                "label": torch.from_numpy(label.astype(np.int64)),
                "meta": {"index": index, "image_file": self.files[index][0],
                         "height": int(h), "width": int(w)},
            }
        draws = self.draws_for(index)
        if self.flip_first and self._draw_flip(draws):
            image = image[:, ::-1]
            label = self.flip_label(label)
        if self.resize_to_crop:
            ch, cw = self.crop_size
            image = cv2.resize(image, (cw, ch), interpolation=cv2.INTER_LINEAR)
            label = cv2.resize(label, (cw, ch), interpolation=cv2.INTER_NEAREST)
        image, label = self.random_scale(draws, image, label)
        if self.crop_size is not None:
            x, y = self.pad_crop(draws, image, label)
        else:
            x, y = self.normalise(image), label
        if not self.flip_first and self._draw_flip(draws):
            x = x[:, ::-1]
            y = self.flip_label(y)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))),
            "label": torch.from_numpy(y.astype(np.int64)),
            "meta": {"index": index},
        }

    # ------------------------------------------------------------------ protocol
    @classmethod
    def resolve_root(cls, data_root, data_dir: str | None = None) -> Path:
        """``data_root/<data_dir or dataset name>``, or ``data_root`` itself when it is
        already the dataset folder (holds ``layout_marker``, e.g. a shared sample). When
        neither exists the first is returned, so the error names the usual place."""
        data_root = Path(data_root)
        sub = data_root / (data_dir or cls.dataset_name)
        if cls.layout_marker and not sub.exists() and (data_root / cls.layout_marker).exists():
            return data_root
        return sub

    @classmethod
    def kwargs_from_protocol(cls, protocol, train: bool) -> dict[str, Any]:
        """Constructor arguments read from a segmentation protocol: ``num_classes``,
        ``crop_size`` [H, W], ``base_size``, ``ignore_label``, the image padding and, for
        training, the ``augmentation`` (an entry left out is off; the defaults are the
        schema's, ``SegAugmentation``); for evaluation, ``evaluation.image_size`` when
        ``evaluation.image_resize`` is 'loader'."""
        p = seg_protocol(protocol)
        aug, ev = p.augmentation, p.evaluation
        kw: dict[str, Any] = {
            "crop_size": p.crop_size, "base_size": p.base_size, "pad_image": aug.pad_image,
            "num_classes": p.num_classes, "ignore_label": p.ignore_label,
            "scale_range": aug.scale_range if train else None,
            "scale_factor": aug.scale_factor if train else None,
            "flip_prob": aug.flip_prob if train else 0.0,
            "resize_to_crop": aug.resize_to_crop and train,
            "flip_first": aug.flip_first and train,
        }
        if not train and ev.image_resize == "loader":
            kw["eval_image_size"] = ev.image_size
        return kw

    @classmethod
    def from_protocol(cls, protocol, data_root, train: bool,
                      seed: int = 0) -> "SegmentationDataset":
        """The split of a protocol (``train_split`` / ``val_split``, default 'train' /
        'val') under ``data_root/<data_dir or dataset name>``; on the base class, the
        dataset class the protocol names."""
        p = seg_protocol(protocol)
        if cls is SegmentationDataset:
            return build_segmentation_dataset(p, data_root, train, seed=seed)
        if p.dataset != cls.dataset_name:
            raise ValueError(f"{cls.__name__} reads {cls.dataset_name!r}, the protocol "
                             f"names {p.dataset!r}")
        split = (p.train_split if train else p.val_split) or ("train" if train else "val")
        root = cls.resolve_root(data_root, p.data_dir)
        return cls(root, split, train, seed=seed, **cls.kwargs_from_protocol(p, train))

