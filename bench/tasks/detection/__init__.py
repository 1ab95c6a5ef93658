"""Object detection with CenterNet's recipe on PASCAL VOC (FlatteNet Table X).

``protocol`` (schema), ``data`` (VOC), ``codecs`` (CenterNet targets and decoding),
``labels`` (the class table), ``losses`` (focal + L1), ``metrics`` (VOC AP), ``synthetic``
(smoke data), ``task`` (the plug-in). Only the protocol is imported here.
"""
from .. import TaskSpec
from .protocol import DetectionProtocol

SPEC = TaskSpec(
    name="detection",
    protocol=DetectionProtocol,
    # the mean over classes of the VOC AP at IoU 0.5 (mAP: the same, as some tables name it)
    metric_names=("mAP@0.5", "mAP"),
    datasets=("voc",),
    implementation="bench.tasks.detection.task:DetectionTask",
)
