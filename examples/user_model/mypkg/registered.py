"""The same network registered by name with ``bench.register_model``: import this module
(``hrbench run ... --import mypkg.registered``, or the ``hrbench.models`` entry point of an
installed package) and suite rows can say ``model: tiny_pose_net``."""
from __future__ import annotations

from dataclasses import dataclass

from bench import register_model

from .mymodule import TinyPoseNet


@dataclass(frozen=True)
class TinyPoseSpec:
    """The fields a suite row may override (``model: {name: tiny_pose_net, width: 32}``)."""
    width: int = 16
    num_joints: int = 17
    blocks: int = 2

    def validate(self) -> None:
        if self.width < 1 or self.blocks < 0:
            raise ValueError(f"width must be >= 1 and blocks >= 0, got {self.width}, {self.blocks}")


@register_model(TinyPoseSpec())
def tiny_pose_net(spec: TinyPoseSpec):
    """TinyPoseNet registered by name (see mypkg.mymodule)."""
    return TinyPoseNet(spec.width, spec.num_joints, spec.blocks)
