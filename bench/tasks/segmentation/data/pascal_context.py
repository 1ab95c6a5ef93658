"""PASCAL-Context (Mottaghi et al., CVPR 2014) semantic segmentation.

Serves the PASCAL-Context rows of HRNetV2 (Sun et al., 2019; 59 and 60 classes) and
FlatteNet (59 classes): VOC2010 images, train 4,998 / val 5,105. Layout (label PNGs
holding the class index 0..59 converted from the PASCAL in Detail masks)::

    <root>/JPEGImages/<id>.jpg
    <root>/SegmentationClassContext/<id>.png      uint8: 0 background, 1..59 classes
    <root>/ImageSets/SegmentationContext/{train,val}.txt

Label spaces: ``num_classes=59`` (the usual benchmark, mIoU without background):
background -> ignore, c -> c - 1; ``num_classes=60``: values kept, 0 = background.
These indices are the ones HRNet-Semantic-Segmentation's ``pascal_ctx.py`` derives from
the Detail masks (``_class_to_index``), and both label spaces give its training labels
(tests/test_samples_golden_seg_train.py, where its ignore value -1 is written 255).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..labels import PASCAL_CONTEXT_CLASSES, PASCAL_CONTEXT_CLASSES_60
from .base import SegmentationDataset, read_id_list
from ....data.common import require_path

__all__ = ["PascalContextDataset"]


class PascalContextDataset(SegmentationDataset):
    """PASCAL-Context with 59 or 60 classes (see module docstring)."""

    dataset_name = "pascal_context"
    supported_num_classes = (59, 60)
    layout_marker = "SegmentationClassContext"

    @property
    def class_names(self) -> tuple[str, ...]:
        return PASCAL_CONTEXT_CLASSES if self.num_classes == 59 else PASCAL_CONTEXT_CLASSES_60

    def list_files(self) -> list[tuple[Path, Path]]:
        image_dir = require_path(self.root / "JPEGImages", "PASCAL-Context image folder")
        label_dir = require_path(self.root / "SegmentationClassContext",
                                 "PASCAL-Context label folder")
        ids = read_id_list(self.root / "ImageSets" / "SegmentationContext" /
                           f"{self.split}.txt", f"PASCAL-Context {self.split} id list")
        return [(require_path(image_dir / f"{i}.jpg", "PASCAL-Context image"),
                 require_path(label_dir / f"{i}.png", "PASCAL-Context label")) for i in ids]

    def build_label_lut(self) -> np.ndarray:
        lut = np.arange(60, dtype=np.uint8)
        if self.num_classes == 59:
            lut = np.concatenate([[self.ignore_label], np.arange(59)]).astype(np.uint8)
        return lut
