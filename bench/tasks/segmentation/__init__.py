"""Semantic segmentation: GSTO Tables 1-9 and 11, Lite-HRNet Table 8, FlatteNet Table VIII,
HRNetV2 (Cityscapes, LIP, PASCAL-Context; mIoU).

``protocol`` (schema), ``data`` (the three datasets on one base), ``labels`` (class
tables), ``losses`` (cross-entropy, OHEM), ``inference`` (scales, flip, sliding window),
``metrics`` (confusion-matrix mIoU), ``synthetic`` (smoke data), ``task`` (the plug-in).
Only the protocol is imported here.
"""
from .. import TaskSpec
from .protocol import SegmentationProtocol

SPEC = TaskSpec(
    name="segmentation",
    protocol=SegmentationProtocol,
    # in percent: mean IoU over classes, pixel accuracy, mean class accuracy
    metric_names=("mIoU", "aAcc", "mAcc"),
    # Cityscapes' instance-level IoU and the IoU / iIoU over its 7 categories: reported
    # only by its evaluation server (those protocols are server_only)
    external_metric_names=("iIoU", "IoU_category", "iIoU_category"),
    datasets=("cityscapes", "pascal_context", "lip"),
    implementation="bench.tasks.segmentation.task:SegmentationTask",
)
