"""Data side of top-down pose estimation for the HRNet / Lite-HRNet tables.

``transforms``: person crops (center/scale in 200 px units), flips with joint pairs,
half-body and scale/rotation augmentation. ``codecs``: Gaussian heatmap targets and
heatmap decoding (quarter offset, DARK), flip-test helpers. Both are numpy + OpenCV
only; dataset modules (which may need torch) are not imported here.

``synthetic`` / ``synthetic_seg`` / ``synthetic_det``: small datasets written in the
official file layouts for tests and smoke runs (numpy, OpenCV, scipy; no torch); their
writers are re-exported here but imported on first use (about 1,100 lines that most
imports of ``bench.data`` never need). The torch datasets are imported
from their own modules: ``bench.data.coco.COCODataset``, ``bench.data.mpii.MPIIDataset``,
``bench.data.lsp.LSPDataset`` (base: ``bench.data.topdown.TopDownDataset``).
"""
from .codecs import (
    MSRAHeatmapCodec,
    POST_PROCESS_MODES,
    dark_refine,
    decode_heatmap_coords,
    decode_heatmaps,
    default_modulate_kernel,
    flip_back,
    flip_test_average,
    gaussian_modulation,
    gaussian_targets,
    get_max_preds,
    quarter_offset,
    shift_heatmaps,
)
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
    "MSRAHeatmapCodec", "POST_PROCESS_MODES", "dark_refine", "decode_heatmap_coords",
    "decode_heatmaps", "default_modulate_kernel", "flip_back", "flip_test_average",
    "gaussian_modulation", "gaussian_targets", "get_max_preds", "quarter_offset",
    "shift_heatmaps",
    "COCO_FLIP_PAIRS", "COCO_JOINT_WEIGHTS", "COCO_LOWER_BODY_IDS", "COCO_UPPER_BODY_IDS",
    "LSP_FLIP_PAIRS", "MPII_FLIP_PAIRS", "MPII_LOWER_BODY_IDS", "MPII_UPPER_BODY_IDS",
    "PIXEL_STD", "affine_crop", "affine_transform", "box_to_center_scale", "fliplr_center",
    "fliplr_joints", "get_affine_transform", "half_body_transform",
    "sample_flip", "sample_rotation", "sample_scale_factor", "transform_preds",
    "SyntheticDataset", "write_all", "write_coco", "write_lsp", "write_mpii",
]

# Semantic segmentation (HRNetV2 Cityscapes / PASCAL-Context / LIP, GSTO, DPN, FlatteNet):
# label tables and synthetic writers, numpy + OpenCV only. The torch datasets live in
# ``bench.data.segmentation`` (base, ``build_segmentation_dataset``), ``.cityscapes``,
# ``.pascal_context`` and ``.lip``.
from .seg_labels import (
    CITYSCAPES_CLASSES,
    LIP_CLASSES,
    LIP_FLIP_PAIRS,
    PASCAL_CONTEXT_CLASSES,
    PASCAL_CONTEXT_CLASSES_60,
    cityscapes_train_ids,
)

__all__ += [
    "CITYSCAPES_CLASSES", "LIP_CLASSES", "LIP_FLIP_PAIRS", "PASCAL_CONTEXT_CLASSES",
    "PASCAL_CONTEXT_CLASSES_60", "cityscapes_train_ids",
    "write_cityscapes", "write_lip", "write_pascal_context", "write_segmentation_all",
]

# Object detection (FlatteNet Table X, PASCAL VOC with CenterNet's recipe): the class
# table and the synthetic writer, numpy + OpenCV only. The torch dataset is
# ``bench.data.voc.VOCDetection``; its codec ``bench.data.centernet.CenterNetCodec``.
__all__ += ["VOC_CLASSES", "write_voc"]

#: re-exported names imported on first use: name -> module
_LAZY = {
    **dict.fromkeys(("SyntheticDataset", "write_all", "write_coco", "write_lsp", "write_mpii"),
                    ".synthetic"),
    **dict.fromkeys(("write_cityscapes", "write_lip", "write_pascal_context",
                     "write_segmentation_all"), ".synthetic_seg"),
    "VOC_CLASSES": ".det_labels", "write_voc": ".synthetic_det",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
