"""LIP, Look Into Person (Gong et al., CVPR 2017), single-person human parsing.

Serves HRNetV2's LIP table (Sun et al., 2019): 20 classes (0 = background), train
30,462 / val 10,000 images of varying, small size, some of them greyscale (loaded as 3
equal channels). Official layout::

    <root>/TrainVal_images/{train,val}_images/<id>.jpg
    <root>/TrainVal_images/{train,val}_id.txt
    <root>/TrainVal_parsing_annotations/{train,val}_segmentations/<id>.png

A horizontal flip exchanges left and right arm, leg and shoe (``LIP_FLIP_PAIRS``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..labels import LIP_CLASSES, LIP_FLIP_PAIRS
from .base import SegmentationDataset, read_id_list
from ....data.common import require_path

__all__ = ["LIPDataset"]


class LIPDataset(SegmentationDataset):
    """LIP human parsing, 20 classes (see module docstring)."""

    dataset_name = "lip"
    splits = ("train", "val")
    unavailable_splits = {"test": "LIP test labels are not public"}
    supported_num_classes = (20,)
    class_names = LIP_CLASSES
    flip_pairs_default = LIP_FLIP_PAIRS
    layout_marker = "TrainVal_images"

    def list_files(self) -> list[tuple[Path, Path]]:
        image_dir = require_path(self.root / "TrainVal_images" / f"{self.split}_images",
                                 "LIP image folder")
        label_dir = require_path(self.root / "TrainVal_parsing_annotations" /
                                 f"{self.split}_segmentations", "LIP label folder")
        ids = read_id_list(self.root / "TrainVal_images" / f"{self.split}_id.txt",
                           f"LIP {self.split} id list")
        return [(require_path(image_dir / f"{i}.jpg", "LIP image"),
                 require_path(label_dir / f"{i}.png", "LIP label")) for i in ids]

    def build_label_lut(self) -> np.ndarray:
        return np.arange(20, dtype=np.uint8)
