"""PASCAL VOC detection in the devkit's layout, with CenterNet's pipeline (FlatteNet Table X).

FlatteNet's detection rows are trained on VOC 2007 + 2012 trainval (16,551 images) and
tested on VOC 2007 test (4,952 images) with CenterNet's ``ctdet`` recipe at 512x512.
Files are read as the devkit ships them::

    root/VOCdevkit/VOC{year}/Annotations/<id>.xml
    root/VOCdevkit/VOC{year}/JPEGImages/<id>.jpg
    root/VOCdevkit/VOC{year}/ImageSets/Main/<set>.txt

Defaults are CenterNet's behaviour, bit for bit given the same draws
(``tests/test_samples_golden_det.py``); ``channel_order``, ``box_convention``,
``numerics`` and ``heatmap_radius`` select the alternatives. Every draw is a named call on
``draws_for(index)``; call ``set_epoch`` once per epoch. The pipeline step by step, the
coordinate conventions and what is inferred: docs/design-notes.md, "Module notes",
bench/tasks/detection/data/voc.py.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..codecs import HEATMAP_RADII, CenterNetCodec, center_scale_of_image, color_augment
from ....data.draws import SampleDraws
from ..labels import VOC_CLASSES
from ....data.common import IMAGENET_MEAN, IMAGENET_STD, require_path
from ..protocol import DetAugmentation, det_protocol
from ....data.transforms import (affine_transform, get_affine_transform, get_affine_transform_points,
                         scale_range_of)

__all__ = ["VOC_CLASSES", "VOCDetection", "parse_voc_xml", "DEVKIT_PIXEL_OFFSET",
           "CHANNEL_ORDERS", "BOX_CONVENTIONS", "NUMERICS"]

#: image channel order fed to the network: CenterNet's "bgr" (OpenCV's, never converted)
CHANNEL_ORDERS = ("bgr", "rgb")
#: training boxes from the devkit's [xmin, ymin, xmax, ymax]: "centernet" [xmin - 1,
#: ymin - 1, xmax, ymax] (Detectron's COCO-style json as CenterNet reads it), or
#: "zero_based" all four minus one (py-faster-rcnn's)
BOX_CONVENTIONS = ("centernet", "zero_based")
#: "centernet": the official rounding (float32 three-point affine matrices, boxes by the
#: output-grid transform, the scale grid's float values, its colour arithmetic, float64
#: test normalisation); "exact": closed-form matrices and float32 throughout
NUMERICS = ("centernet", "exact")

#: devkit coordinate = 0-based pixel coordinate + 1
DEVKIT_PIXEL_OFFSET = 1.0

_CLASS_INDEX = {name: i for i, name in enumerate(VOC_CLASSES)}


def _text(node, tag: str, path, default=None) -> str:
    child = node.find(tag)
    if child is None or child.text is None:
        if default is not None:
            return default
        raise ValueError(f"{path}: <{node.tag}> has no <{tag}>")
    return child.text.strip()


def _flag(node, tag: str, path) -> bool:
    # VOC2012 leaves <truncated>/<difficult> out of some objects; absent means 0
    return bool(int(float(_text(node, tag, path, default="0"))))


def parse_voc_xml(path: str | os.PathLike) -> dict[str, Any]:
    """One devkit annotation file: ``{"filename", "width", "height", "objects"}``, the
    objects in file order as ``{"category", "label" (index in VOC_CLASSES), "bbox"
    [xmin, ymin, xmax, ymax] (1-based pixel coordinates as written, float), "difficult",
    "truncated" (bool), "pose"}``. An unknown class name is an error naming the file."""
    path = require_path(path, "VOC annotation")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path}: not valid XML ({err})") from None
    size = root.find("size")
    if size is None:
        raise ValueError(f"{path}: no <size>")
    objects = []
    for obj in root.findall("object"):
        name = _text(obj, "name", path).lower()
        if name not in _CLASS_INDEX:
            raise ValueError(f"{path}: unknown VOC class {name!r}")
        box = obj.find("bndbox")     # a direct child: person layout <part>s have their own
        if box is None:
            raise ValueError(f"{path}: object {name!r} has no <bndbox>")
        objects.append({
            "category": name,
            "label": _CLASS_INDEX[name],
            "bbox": [float(_text(box, t, path)) for t in ("xmin", "ymin", "xmax", "ymax")],
            "difficult": _flag(obj, "difficult", path),
            "truncated": _flag(obj, "truncated", path),
            "pose": _text(obj, "pose", path, default="Unspecified"),
        })
    return {
        "filename": _text(root, "filename", path, default=""),
        "width": int(float(_text(size, "width", path))),
        "height": int(float(_text(size, "height", path))),
        "objects": objects,
    }


def _get_border(border: int, size: int) -> int:
    """CenterNet's ``_get_border``: the border halved until a centre can be drawn."""
    i = 1
    while size - border // i <= border // i:
        i *= 2
    return border // i


class VOCDetection(Dataset):
    """PASCAL VOC detection images with CenterNet targets (see module docstring).

    Args:
        root: the folder holding ``VOCdevkit``.
        sets: (year, image set) pairs, e.g. (("2007", "trainval"), ("2012", "trainval"))
            for training, (("2007", "test"),) for evaluation.
        train: augment and return targets; else whole images for evaluation.
        input_size: network input (H, W).
        output_stride: input pixels per output cell (4).
        seed: base seed of the per-sample generators.
        flip_prob: probability of a horizontal flip.
        scale_range: (lo, hi) of the random scale; None: no random scale / crop.
        shift: None for CenterNet's default random crop, a fraction for its
            ``--not_rand_crop`` Gaussian shift and scale.
        color_jitter: CenterNet's colour augmentation.
        keep_difficult: train on objects marked difficult (CenterNet does).
        max_objects: target slots per image (CenterNet's VOC value: 50).
        border: CenterNet's crop border in pixels (128).
        channel_order: "bgr" (CenterNet's) or "rgb"; ``mean`` / ``std`` apply in the
            order given (CenterNet applies its RGB-ordered values to BGR channels).
        box_convention: "centernet" or "zero_based" (``BOX_CONVENTIONS``).
        numerics: "centernet" or "exact" (``NUMERICS``).
        heatmap_radius: "centernet" or "exact" (``CenterNetCodec``).
    """

    dataset_name = "voc"
    num_classes = len(VOC_CLASSES)
    class_names = VOC_CLASSES

    def __init__(self, root, sets: Sequence[Sequence[str]] = (("2007", "trainval"),
                                                               ("2012", "trainval")),
                 train: bool = True, *, input_size=(512, 512), output_stride: int = 4,
                 seed: int = 0, flip_prob: float = 0.5, scale_range=(0.6, 1.4),
                 shift: float | None = None, color_jitter: bool = True,
                 keep_difficult: bool = True, max_objects: int = 50, border: int = 128,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD, channel_order: str = "bgr",
                 box_convention: str = "centernet", numerics: str = "centernet",
                 heatmap_radius: str = "centernet"):
        for name, value, allowed in (("channel_order", channel_order, CHANNEL_ORDERS),
                                     ("box_convention", box_convention, BOX_CONVENTIONS),
                                     ("numerics", numerics, NUMERICS),
                                     ("heatmap_radius", heatmap_radius, tuple(HEATMAP_RADII))):
            if value not in allowed:
                raise ValueError(f"VOCDetection: {name} must be one of {allowed}, got "
                                 f"{value!r}")
        self.channel_order = channel_order
        self.box_convention = box_convention
        self.numerics = numerics
        self.root = require_path(root, "VOC data folder (the one holding VOCdevkit)")
        self.devkit = require_path(self.root / "VOCdevkit", "VOCdevkit folder")
        self.sets = tuple((str(year), str(name)) for year, name in sets)
        if not self.sets:
            raise ValueError("VOCDetection needs at least one (year, image set)")
        self.train = bool(train)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.codec = CenterNetCodec(self.input_size, output_stride, self.num_classes,
                                    max_objects, heatmap_radius=heatmap_radius)
        self.seed = int(seed)
        self.epoch = 0
        self.flip_prob = float(flip_prob)
        self.scale_range = scale_range_of(scale_range)
        self.shift = None if shift is None else float(shift)
        self.color_jitter = bool(color_jitter)
        self.keep_difficult = bool(keep_difficult)
        self.border = int(border)
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, 1, 3)
        self.std = np.asarray(std, dtype=np.float32).reshape(1, 1, 3)

        self.ids: list[tuple[str, str]] = []
        self.records: list[dict[str, Any]] = []
        for year, name in self.sets:
            folder = require_path(self.devkit / f"VOC{year}",
                                  f"VOC{year} folder (image set {year} {name})")
            listing = require_path(folder / "ImageSets" / "Main" / f"{name}.txt",
                                   f"VOC{year} image set {name!r}")
            ids = [line.split()[0] for line in listing.read_text().splitlines()
                   if line.strip()]
            if not ids:
                raise ValueError(f"VOC image set is empty: {listing}")
            for image_id in ids:
                ann = parse_voc_xml(folder / "Annotations" / f"{image_id}.xml")
                self.ids.append((year, image_id))
                self.records.append({
                    "image_file": str(folder / "JPEGImages" / f"{image_id}.jpg"),
                    "image_id": image_id,
                    "objects": ann["objects"],
                })

    # ------------------------------------------------------------------ basics
    @property
    def output_stride(self) -> int:
        return self.codec.output_stride

    @property
    def max_objects(self) -> int:
        return self.codec.max_objects

    def set_epoch(self, epoch: int) -> None:
        """Select the random stream of an epoch (augmentations differ between epochs)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        sets = ", ".join(f"{y} {n}" for y, n in self.sets)
        return (f"VOCDetection({len(self)} images, sets=[{sets}], input_size="
                f"{self.input_size}, train={self.train})")

    def rng_for(self, index: int) -> np.random.Generator:
        """The generator of one sample: a function of (seed, epoch, index) only."""
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def draws_for(self, index: int) -> SampleDraws:
        """The named draws of one sample (tests replay recorded ones through this)."""
        return SampleDraws(self.rng_for(index))

    def load_image(self, index: int) -> np.ndarray:
        """HxWx3 uint8 of sample ``index`` in ``channel_order``."""
        path = self.records[index]["image_file"]
        # IGNORE_ORIENTATION: the boxes refer to the stored pixels, not an EXIF view
        image = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if image is None:
            require_path(path, "VOC image")
            raise ValueError(f"voc: OpenCV could not decode {path}")
        return image if self.channel_order == "bgr" else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def boxes(self, index: int, with_difficult: bool = True):
        """(boxes (N, 4) float32 in OpenCV's 0-based pixel frame by ``box_convention``,
        labels (N,) int64) of an image, in file order; difficult objects only with
        ``with_difficult``."""
        objs = [o for o in self.records[index]["objects"]
                if with_difficult or not o["difficult"]]
        boxes = np.array([o["bbox"] for o in objs], dtype=np.float32).reshape(-1, 4)
        labels = np.array([o["label"] for o in objs], dtype=np.int64)
        one = np.float32(DEVKIT_PIXEL_OFFSET)
        if self.box_convention == "centernet":
            boxes[:, :2] -= one                  # x = xmin - 1, x + w = xmax (w = xmax - xmin + 1)
            return boxes, labels
        return boxes - one, labels

    def annotations(self) -> dict[str, list[dict[str, Any]]]:
        """Ground truth for the evaluator: image id -> [{category, bbox (devkit
        coordinates as written), difficult}], difficult objects included."""
        out: dict[str, list[dict[str, Any]]] = {}
        for (year, image_id), rec in zip(self.ids, self.records):
            if image_id in out:
                raise ValueError(f"image id {image_id} occurs twice in {self.sets}")
            out[image_id] = [{"category": o["category"], "bbox": list(o["bbox"]),
                              "difficult": o["difficult"]} for o in rec["objects"]]
        return out

    @staticmethod
    def to_devkit(detections) -> np.ndarray:
        """Decoded detections ([x1, y1, x2, y2, ...] in 0-based pixels) in the devkit's
        1-based coordinates, as ``annotations()``; other columns unchanged."""
        det = np.array(detections, dtype=np.float32, copy=True)
        det[..., :4] += np.float32(DEVKIT_PIXEL_OFFSET)
        return det

    # ------------------------------------------------------------------ samples
    def _normalise(self, image: np.ndarray) -> torch.Tensor:
        image = (image - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1),
                                                     dtype=np.float32))

    def _matrix(self, center, scale: float, size) -> np.ndarray:
        """Crop matrix of (centre, scale) to ``size`` (w, h)."""
        if self.numerics == "centernet":
            # CenterNet: float32 centre and scale, three float32 point pairs
            return get_affine_transform_points(np.asarray(center, dtype=np.float32),
                                               np.float32(scale), 0.0, size, pixel_std=1.0)
        return get_affine_transform(center, scale, 0.0, size, pixel_std=1.0)

    def _warp(self, image: np.ndarray, center, scale: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.input_size
        M = self._matrix(center, scale, (w, h))
        return cv2.warpAffine(image, M, (w, h), flags=cv2.INTER_LINEAR), M

    def _scale_grid(self) -> list[float]:
        lo, hi = self.scale_range
        if self.numerics == "centernet":
            return [float(v) for v in np.arange(lo, hi, 0.1)]   # 0.7999999999999999, ...
        # CenterNet's np.arange(lo, hi, 0.1) rounded: hi itself is not on the grid
        count = max(1, int(np.ceil(round((hi - lo) / 0.1, 6))))
        return [round(lo + 0.1 * i, 6) for i in range(count)]

    def random_crop(self, draws, height: int, width: int):
        """(centre (2,) float32, scale) of a training crop (module docstring, step 2);
        ``draws`` a ``SampleDraws`` (or a numpy Generator)."""
        if isinstance(draws, np.random.Generator):
            draws = SampleDraws(draws)
        center, scale = center_scale_of_image(height, width)
        if self.shift is not None:
            f = self.shift
            step = np.array([draws.normal("shift_x"), draws.normal("shift_y")])
            center = center + scale * np.clip(step * f, -2 * f, 2 * f)
            if self.scale_range is not None:
                lo, hi = self.scale_range
                sf = max(1.0 - lo, hi - 1.0)
                scale *= float(np.clip(draws.normal("scale") * sf + 1.0, lo, hi))
        elif self.scale_range is not None:
            scale *= float(draws.choice("scale", self._scale_grid()))
            wb, hb = _get_border(self.border, width), _get_border(self.border, height)
            center = np.array([draws.integers("center_x", wb, width - wb),
                               draws.integers("center_y", hb, height - hb)], dtype=np.float32)
        return np.asarray(center, dtype=np.float32), float(scale)

    def _grid_boxes(self, boxes: np.ndarray, center, scale: float) -> np.ndarray:
        """Boxes (N, 4) in image pixels -> float32 output-grid coordinates through the
        output transform, one ``np.dot`` per corner as CenterNet's ``affine_transform``."""
        h, w = self.codec.output_size
        T = self._matrix(center, scale, (w, h))
        out = np.array(boxes, dtype=np.float32, copy=True)
        for box in out:
            box[:2] = np.dot(T, np.array([box[0], box[1], 1.0], dtype=np.float32))[:2]
            box[2:] = np.dot(T, np.array([box[2], box[3], 1.0], dtype=np.float32))[:2]
        return out

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        image = self.load_image(index)
        height, width = image.shape[:2]
        official = self.numerics == "centernet"
        if not self.train:
            center, scale = center_scale_of_image(height, width)
            warped, _ = self._warp(image, center, scale)
            if official:     # CenterNet's pre_process: uint8 / 255. in float64, then float32
                x = ((warped / 255.0 - self.mean) / self.std).astype(np.float32)
                image_t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))
            else:
                image_t = self._normalise(warped.astype(np.float32) / np.float32(255.0))
            return {
                "image": image_t,
                "meta": {"index": index, "image_id": self.records[index]["image_id"],
                         "center": center, "scale": scale,
                         "height": int(height), "width": int(width)},
            }

        draws = self.draws_for(index)
        center, scale = self.random_crop(draws, height, width)
        boxes, labels = self.boxes(index, with_difficult=self.keep_difficult)
        flipped = bool(self.flip_prob > 0 and draws.random("flip") < self.flip_prob)
        if flipped:
            image = np.ascontiguousarray(image[:, ::-1])
            center[0] = width - center[0] - 1
            boxes[:, [0, 2]] = width - boxes[:, [2, 0]] - 1
        warped, M = self._warp(image, center, scale)
        x = warped.astype(np.float32) / np.float32(255.0)
        if self.color_jitter:
            color_augment(draws, x, channel_order=self.channel_order, numerics=self.numerics)
        if official:
            targets = self.codec.encode(self._grid_boxes(boxes, center, scale), labels,
                                        on_grid=True)
        else:
            # both corners through the crop transform (no rotation: the box stays
            # axis-aligned), then divided by the stride in the codec
            boxes = affine_transform(boxes.reshape(-1, 2), M).reshape(-1, 4)
            targets = self.codec.encode(boxes, labels)
        item = {"image": self._normalise(x)}
        item.update({k: torch.from_numpy(v) for k, v in targets.items()})
        item["meta"] = {"index": index, "center": center, "scale": scale, "flipped": flipped}
        return item

    # ------------------------------------------------------------------ protocol
    @classmethod
    def resolve_root(cls, data_root, data_dir: str | None = None) -> Path:
        """``data_root/<data_dir or "voc">``, or ``data_root`` itself when it holds
        ``VOCdevkit`` (a shared sample). When neither exists the first is returned, so
        the error names the usual place."""
        data_root = Path(data_root)
        sub = data_root / (data_dir or cls.dataset_name)
        if not (sub / "VOCdevkit").exists() and (data_root / "VOCdevkit").exists():
            return data_root
        return sub

    @classmethod
    def kwargs_from_protocol(cls, protocol, train: bool) -> dict[str, Any]:
        """Constructor arguments from a detection protocol: ``input_size`` [H, W],
        ``output_stride``, ``max_objects``, ``keep_difficult``, ``channel_order``,
        ``box_convention``, ``numerics``, ``heatmap_radius``, ``train_sets`` /
        ``val_sets`` and, for training, the ``augmentation`` (an entry left out is off;
        the defaults are the schema's, ``DetAugmentation``)."""
        p = det_protocol(protocol)
        if p.num_classes != cls.num_classes:
            raise ValueError(f"VOC has {cls.num_classes} classes, the protocol says "
                             f"{p.num_classes}")
        default_sets = ((("2007", "trainval"), ("2012", "trainval")) if train
                        else (("2007", "test"),))
        kw: dict[str, Any] = {
            "sets": (p.train_sets if train else p.val_sets) or default_sets,
            "input_size": p.input_size, "output_stride": p.output_stride,
            "max_objects": p.max_objects, "keep_difficult": p.keep_difficult,
            "channel_order": p.channel_order, "box_convention": p.box_convention,
            "numerics": p.numerics, "heatmap_radius": p.heatmap_radius,
        }
        # evaluation draws nothing (the constructor's defaults are CenterNet's training ones)
        aug = p.augmentation if train else DetAugmentation()
        kw.update(flip_prob=aug.flip_prob, scale_range=aug.scale_range, shift=aug.shift,
                  color_jitter=aug.color_jitter)
        return kw

    @classmethod
    def from_protocol(cls, protocol, data_root, train: bool, seed: int = 0) -> "VOCDetection":
        """The training (``train_sets``, default 07+12 trainval) or evaluation
        (``val_sets``, default 07 test) images of a protocol under
        ``data_root/<data_dir or "voc">``."""
        p = det_protocol(protocol)
        if p.dataset != cls.dataset_name:
            raise ValueError(f"{cls.__name__} reads {cls.dataset_name!r}, the protocol "
                             f"names {p.dataset!r}")
        root = cls.resolve_root(data_root, p.data_dir)
        return cls(root, train=train, seed=seed, **cls.kwargs_from_protocol(p, train))
