"""Accuracy metrics of the pose tables, as plain functions plus thin ``process`` /
``compute`` evaluators: COCO keypoint AP / AR (OKS, pycocotools) with rescoring and
OKS-NMS (``coco``), MPII PCKh@0.5 / @0.1 / AUC against gt_valid.mat (``mpii``), LSP
PCK@0.2 (``lsp``) and the mean-pose baseline (``baselines``). Every metric is a
percentage; numpy, scipy and pycocotools only (the last two imported when a metric is
computed), never torch.
"""
from .baselines import mean_pose, mean_pose_predictions
from .coco import (COCO_SIGMAS, CocoKeypointEvaluator, coco_keypoint_ap, oks_iou, oks_nms,
                   rescore_and_nms)
from .lsp import LspPCKEvaluator, lsp_pck
from .mpii import MpiiPCKhEvaluator, load_gt_valid, mpii_pckh, pckh_curve

__all__ = ["COCO_SIGMAS", "oks_iou", "oks_nms", "rescore_and_nms", "coco_keypoint_ap",
           "CocoKeypointEvaluator", "load_gt_valid", "pckh_curve", "mpii_pckh",
           "MpiiPCKhEvaluator", "lsp_pck", "LspPCKEvaluator", "mean_pose",
           "mean_pose_predictions"]
