"""Top-down human pose estimation: the task of most tables (HRNet, Lite-HRNet, DPN, GSTO
and FlatteNet on COCO and MPII; LSP-extended for the CPU sanity runs).

``protocol`` (schema), ``data`` (COCO / MPII / LSP datasets on one top-down base),
``codecs`` (heatmap targets and decoding), ``losses``, ``metrics`` (COCO OKS AP, MPII
PCKh, LSP PCK, the mean-pose baseline), ``synthetic`` (smoke data in the official
layouts), ``task`` (the plug-in). Only the protocol is imported here.
"""
from .. import TaskSpec
from .protocol import PoseProtocol

#: MPII PCKh@0.5 per body part, left and right pooled (also PoseTrack's parts)
BODY_PARTS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")

SPEC = TaskSpec(
    name="pose",
    protocol=PoseProtocol,
    # COCO keypoints; MPII PCKh, AUC and parts; LSP PCK; MeanPose-PCK@0.2: the training
    # set's mean pose scored on the same split, the reference a trained model must beat
    metric_names=("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "PCKh@0.5", "PCKh@0.1",
                  "AUC", *BODY_PARTS, "PCK@0.2", "MeanPose-PCK@0.2"),
    # PoseTrack's frame-wise AP (mAP, per part) and tracking accuracy (MOTA, per part),
    # scored by poseval: no local run reads PoseTrack
    external_metric_names=("mAP", "MOTA") + tuple(f"{m}.{part}" for m in ("AP", "MOTA")
                                                  for part in BODY_PARTS),
    datasets=("coco", "mpii", "lsp"),
    implementation="bench.tasks.pose.task:PoseTask",
)
