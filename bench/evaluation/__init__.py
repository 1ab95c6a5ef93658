"""Accuracy metrics of the pose tables, as plain functions plus thin accumulating classes.

* COCO keypoint AP/AR (OKS, pycocotools) with HRNet-style rescoring and OKS-NMS:
  the COCO columns of HRNet (Sun et al., CVPR 2019) and Lite-HRNet (Yu et al., CVPR 2021)
  tables and of GSTO, DPN, FlatteNet -> ``coco_keypoint_ap``, ``CocoKeypointEvaluator``.
* MPII PCKh@0.5 / @0.1 / AUC against gt_valid.mat: HRNet's MPII table, Lite-HRNet
  Tables 5-7, FlatteNet's MPII tables -> ``mpii_pckh``, ``MpiiPCKhEvaluator``.
* LSP PCK@0.2 (torso-normalised) for runs on LSP-extended -> ``lsp_pck``.
* Segmentation mIoU / aAcc / mAcc from a confusion matrix (HRNet, Lite-HRNet, GSTO,
  FlatteNet segmentation tables) -> ``segmentation_metrics``, ``SegmentationEvaluator``.

Every metric is a percentage. Imports only numpy, scipy and pycocotools (the latter two
lazily, when a metric is computed); never torch, so reports and tests stay light.
"""
from .coco import (COCO_SIGMAS, CocoKeypointEvaluator, coco_keypoint_ap, oks_iou, oks_nms,
                   rescore_and_nms)
from .lsp import LspPCKEvaluator, lsp_pck
from .baselines import mean_pose, mean_pose_predictions
from .mpii import MpiiPCKhEvaluator, load_gt_valid, mpii_pckh, pckh_curve
from .segmentation import SegmentationEvaluator, confusion_matrix, segmentation_metrics

__all__ = ["COCO_SIGMAS", "oks_iou", "oks_nms", "rescore_and_nms", "coco_keypoint_ap",
           "CocoKeypointEvaluator", "load_gt_valid", "pckh_curve", "mpii_pckh",
           "MpiiPCKhEvaluator", "lsp_pck", "LspPCKEvaluator", "mean_pose",
           "mean_pose_predictions"]
__all__ += ["confusion_matrix", "segmentation_metrics", "SegmentationEvaluator"]
from .voc import VOC_CLASSES, VOCDetectionEvaluator, voc_ap, voc_detection_map, voc_iou
__all__ += ["VOC_CLASSES", "voc_iou", "voc_ap", "voc_detection_map", "VOCDetectionEvaluator"]
