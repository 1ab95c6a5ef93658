"""The protocol schema every task shares: dataset and splits, input size, the training recipe
(optimiser, schedule, the paper's batch and GPUs), validation during training, seeds and
the recipe's fidelity. A task's package adds its own sections by subclassing ``Protocol``
(``bench.tasks.<task>.protocol``); a protocol file says which by ``task:``."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Mapping, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from .names import check_name

# a name that becomes part of a path (bench.names: one pattern, stated in docs/suites.md)
Name = Annotated[str, AfterValidator(check_name)]


class FrozenModel(BaseModel):
    """Base of every schema of suite and protocol files: unknown keys are errors, values
    are frozen."""
    # allow_inf_nan: a published value, tolerance or rate of "1e400" (YAML leaves it a
    # string, which becomes infinity as a float) is an error, not a number
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Optimizer(FrozenModel):
    type: Literal["adam", "adamw", "sgd"]
    lr: float = Field(gt=0)
    # applied as L2 (adam, sgd) or decoupled (adamw); 0 means none
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)          # sgd only
    nesterov: bool = False                             # sgd only
    betas: tuple[float, float] = (0.9, 0.999)          # adam / adamw


class Warmup(FrozenModel):
    type: Literal["linear", "constant"] = "linear"
    iters: int = Field(ge=0)
    ratio: float = Field(0.001, gt=0, le=1)           # the rate starts at lr x ratio


class Schedule(FrozenModel):
    """The length and learning-rate policy. The length is ``epochs`` (the pose recipes,
    HRNetV2's 484 Cityscapes epochs) or ``iterations`` (Lite-HRNet's 160k): one of them."""
    epochs: Optional[int] = Field(None, gt=0)
    iterations: Optional[int] = Field(None, gt=0)
    policy: Literal["step", "poly"] = "step"
    milestones: tuple[int, ...] = ()                   # step: epochs where lr *= gamma
    gamma: float = Field(0.1, gt=0, le=1)
    power: float = Field(0.9, gt=0)                    # poly: lr (1 - it/total)^power
    min_lr: float = Field(0.0, ge=0)
    warmup: Optional[Warmup] = None
    # poly: the rate of step g is that of g - lag (HRNet-Semantic-Segmentation sets the rate
    # after optimizer.step(), so its steps 0 and 1 share the first rate)
    rate_lag: int = Field(0, ge=0)
    # poly: what the rate's iteration counts. steps: every optimiser step. samples:
    # HRNet-Semantic-Segmentation's epoch_iters = floor(train samples / total batch) per
    # epoch, restarting at epoch x epoch_iters (its padded DistributedSampler takes one
    # step more per epoch on 4 GPUs: that step shares the next epoch's first rate), the
    # lag counted within the epoch
    rate_epoch: Literal["steps", "samples"] = "steps"

    @model_validator(mode="after")
    def _milestones_in_range(self):
        if (self.epochs is None) == (self.iterations is None):
            raise ValueError("give the length as epochs or as iterations (one of them)")
        ms = list(self.milestones)
        if ms and self.epochs is None:
            raise ValueError("milestones are epochs: an iteration-based schedule uses policy: poly")
        if ms != sorted(set(ms)):
            raise ValueError(f"milestones must be strictly increasing, got {ms}")
        if ms and (ms[0] <= 0 or ms[-1] >= self.epochs):
            raise ValueError(f"milestones must lie in 1..{self.epochs - 1}, got {ms}")
        if self.rate_epoch == "samples" and (self.policy != "poly" or self.epochs is None):
            raise ValueError("rate_epoch: samples counts a poly rate over epochs "
                             "(policy: poly with epochs)")
        return self


class Batch(FrozenModel):
    """The paper's batch: ``per_gpu`` images on each of ``gpus`` devices. A run with a
    different total batch scales the learning rate linearly and records it."""
    per_gpu: int = Field(gt=0)
    gpus: int = Field(1, gt=0)
    # the last, partial batch of an epoch: dropped (mmpose, HRNet-Semantic-Segmentation,
    # CenterNet) or trained on (HRNet's and SimpleBaseline's pose loaders set no drop_last)
    drop_last: bool = True

    @property
    def total(self) -> int:
        return self.per_gpu * self.gpus


class Validation(FrozenModel):
    """Validation during training, as the official recipe runs it: every ``interval``
    epochs (0: only after training) on the protocol's evaluation with ``evaluation``'s
    changes (SimpleBaseline validates on ground-truth boxes without flipping, then
    reports detector boxes with flipping), the weights kept as the best by
    ``best_metric`` (``mode`` max or min). The run record holds the final and the best
    epoch's numbers."""
    interval: int = Field(0, ge=0)
    best_metric: Optional[str] = None
    mode: Literal["max", "min"] = "max"
    # a value equal to the best so far: the earlier epoch stays (SimpleBaseline's ">")
    # or the later one wins (HRNet's ">=")
    ties: Literal["earlier", "later"] = "earlier"
    evaluation: dict[str, Any] = Field(default_factory=dict)


FIDELITY_KINDS = ("official-code", "model-zoo-config", "paper-text", "project")


class Fidelity(FrozenModel):
    """How far the protocol's training recipe is shown to be the authors':
    ``official-code`` (a training golden file recorded from the authors' code,
    ``tests/golden/<golden>.json``, reproduced by HRBench within ``max_rel_diff`` over
    ``steps`` steps; ``source`` is repo@commit), ``model-zoo-config`` (read from the
    config file ``source``, no code run), ``paper-text`` (only what the paper states,
    quoted in ``source``) or ``project`` (HRBench's own recipe, e.g. the CPU sanity run).
    ``covers`` says what the check does and does not cover."""
    kind: Literal["official-code", "model-zoo-config", "paper-text", "project"]
    source: str = Field(min_length=1)
    golden: Optional[str] = None
    steps: Optional[int] = Field(None, gt=0)
    max_rel_diff: Optional[float] = Field(None, ge=0)
    covers: str = ""

    @model_validator(mode="after")
    def _official_needs_numbers(self):
        numbers = (self.golden, self.steps, self.max_rel_diff)
        if self.kind == "official-code" and None in numbers:
            raise ValueError("official-code fidelity needs golden, steps and max_rel_diff")
        if self.kind != "official-code" and any(n is not None for n in numbers):
            raise ValueError("golden, steps and max_rel_diff belong to official-code fidelity")
        return self

    @property
    def summary(self) -> str:
        """One line: ``official-code: <repo>@<commit>, steps K, max rel diff x`` or
        ``<kind>: <source>`` (``hrbench list protocols``)."""
        if self.kind == "official-code":
            return (f"official-code: {self.source}, steps {self.steps}, "
                    f"max rel diff {self.max_rel_diff:.0e}")
        return f"{self.kind}: {self.source}"

    @property
    def line(self) -> str:
        """The summary with what it covers (reports)."""
        return f"{self.summary} ({self.covers})" if self.covers else self.summary


class Protocol(FrozenModel):
    """What a run needs, whatever the task: dataset and splits, the input size (at which
    the complexity columns count), the training recipe (optimiser, schedule, the paper's
    batch and GPU count) and seeds. Each task's protocol adds its own fields
    (``bench.tasks.<task>.protocol``); a file says which by ``task:``.
    The complexity profile reads only the shapes; training reads the rest."""
    name: Name                           # names its run records and work dirs
    task: str
    dataset: str
    input_size: tuple[int, int]          # (H, W)
    num_classes: Optional[int] = None
    in_channels: int = 3
    data_files: tuple[str, ...] = ()     # relative to --data-root; all needed to evaluate
    model_overrides: dict[str, Any] = Field(default_factory=dict)
    train_split: Optional[str] = None
    val_split: Optional[str] = None
    optimizer: Optional[Optimizer] = None
    schedule: Optional[Schedule] = None
    batch: Optional[Batch] = None
    # BatchNorm synchronised across GPUs under DDP (HRNetV2's Cityscapes recipe); per GPU
    # otherwise, as the pose recipes
    sync_bn: bool = False
    seed: int = Field(0, ge=0, lt=2**32)       # what numpy's generators accept (--seeds too)
    # the protocol file this one extends (``base:``; its fields, then this file's)
    base: Optional[str] = None
    # why no local run can score this protocol: an evaluation server holds the labels
    # (COCO test-dev, the MPII test set, Cityscapes test); its accuracy cells say so
    server_only: str = ""
    # ImageNet-pretrained backbone weights (a torch file in the backbone's usual layout,
    # e.g. torchvision's resnet50); "~" and $VARIABLES are expanded, relative paths are
    # taken from the working directory. Checked when a training job starts.
    pretrained: Optional[str] = None
    validation: Validation = Field(default_factory=Validation)
    fidelity: Optional[Fidelity] = None

    @model_validator(mode="after")
    def _validation_evaluation_fits(self):
        changes = self.validation.evaluation
        current = getattr(self, "evaluation", None)
        if changes and current is not None:
            # the changes must make a valid evaluation of this task (unknown keys fail)
            type(current).model_validate({**current.model_dump(), **changes})
        elif changes:
            raise ValueError("validation.evaluation needs a protocol with an evaluation")
        return self

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, *self.input_size)

    @property
    def trainable(self) -> bool:
        return None not in (self.optimizer, self.schedule, self.batch)

    def task_overrides(self) -> dict[str, Any]:
        """Model arguments the protocol implies: its ``model_overrides`` and class count
        (a task's protocol adds its own, e.g. pose's joint count)."""
        out = dict(self.model_overrides)
        if self.num_classes is not None:
            out.setdefault("num_classes", self.num_classes)
        return out


def as_protocol(protocol, schema: type[Protocol]) -> Protocol:
    """``protocol`` as an instance of ``schema`` (a task's protocol class): a typed one as it
    is; a mapping (a job's stored JSON, a caller's dict) validated by ``schema`` once, so the
    defaults come from the schema alone and a task's code reads attributes."""
    if isinstance(protocol, schema):
        return protocol
    if isinstance(protocol, Mapping):
        return schema.model_validate(dict(protocol))
    if isinstance(protocol, Protocol):
        raise TypeError(f"protocol {protocol.name!r} is a {type(protocol).__name__} "
                        f"(task {protocol.task!r}), not a {schema.__name__}")
    raise TypeError(f"a protocol is a {schema.__name__} or a mapping, not a "
                    f"{type(protocol).__name__}")
