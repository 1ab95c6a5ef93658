"""What the datasets of every task share: ``transforms`` (crops and affine maps, flips with
joint pairs, half-body and scale / rotation draws), ``draws`` (a sample's named random
draws, the seam of the golden-sample tests) and ``common`` (ImageNet statistics, file
checks). numpy + OpenCV only. Each task's own datasets are in its package
(``bench.tasks.<task>.data``).
"""
from .transforms import (
    COCO_FLIP_PAIRS,
    COCO_JOINT_WEIGHTS,
    COCO_LOWER_BODY_IDS,
    COCO_UPPER_BODY_IDS,
    LSP_FLIP_PAIRS,
    MPII_FLIP_PAIRS,
    MPII_LOWER_BODY_IDS,
    MPII_UPPER_BODY_IDS,
    PIXEL_STD,
    affine_crop,
    affine_transform,
    box_to_center_scale,
    fliplr_center,
    fliplr_joints,
    get_affine_transform,
    half_body_transform,
    sample_flip,
    sample_rotation,
    sample_scale_factor,
    transform_preds,
)

__all__ = [
    "COCO_FLIP_PAIRS", "COCO_JOINT_WEIGHTS", "COCO_LOWER_BODY_IDS", "COCO_UPPER_BODY_IDS",
    "LSP_FLIP_PAIRS", "MPII_FLIP_PAIRS", "MPII_LOWER_BODY_IDS", "MPII_UPPER_BODY_IDS",
    "PIXEL_STD", "affine_crop", "affine_transform", "box_to_center_scale", "fliplr_center",
    "fliplr_joints", "get_affine_transform", "half_body_transform",
    "sample_flip", "sample_rotation", "sample_scale_factor", "transform_preds",
]
