"""Suite files: one paper table as YAML data, validated into frozen objects.

A suite names its paper and table, the protocols its columns refer to, the columns (what
the paper prints, with units, how each is measured and gated) and the rows (a registered
model, optional overrides, the published cells, notes). Loading stops at the first
problem with one message naming the file, the line and the field, before any work starts.

Imports neither torch nor the model families unless ``check_models=True`` (the default
for the runner; the reporter loads suites without it).
"""
from __future__ import annotations

import fnmatch
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, PositiveInt, ValidationError,
                      field_validator, model_validator)

from .complexity.conventions import CONVENTIONS
from .paths import PROTOCOLS_DIR, SUITES_DIR
from .profiles import has
from .yaml_limits import (_dotted, InputLimitError, UnreadableValue, check_events, construct_checked,
                          read_limited)
from .names import MAX_KEY_LENGTH, check_model_name, check_name, name_problem

# a name that becomes part of a path (bench.names: one pattern, stated in docs/suites.md)
Name = Annotated[str, AfterValidator(check_name)]


# receptive_field / contributing_fraction: measured from a gradient on the built module
# (bench.complexity.receptive_field), for claims that need no training (DPN)
# fold_equivalence_error: max |prediction through the rearrangement - folded prediction|
# on the built model (bench.complexity.fold_equivalence; FlatteNet Sec. III-C)
# attribute: a number read from the built model at a dotted path (``Column.attribute``,
# below ``Column.submodule``; ``divided_by``: over another), e.g. a layer's kernel size,
# groups or expansion: hyperparameter tables (FlatteNet Tables I, VII, IX, XI)
# output_stride / subsamplings / out_channels: from the shape of the model's (or the
# ``submodule``'s) output in a shape-only forward on the column's input: input size over
# output size, its log2, the output's channels
STRUCTURE_MEASURES = ("attribute", "output_stride", "subsamplings", "out_channels")
COMPLEXITY_MEASURES = ("params", "flops", "formula_flops", "latency_ms", "receptive_field",
                       "contributing_fraction", "fold_equivalence_error") + STRUCTURE_MEASURES
# accuracy measures a protocol's evaluator reports (COCO keypoints, MPII PCKh, LSP PCK)
# (MeanPose-PCK@0.2: the training set's mean pose scored on the same split, the
# reference a trained model must beat; bench.evaluation.baselines)
# (Head ... Ankle: MPII PCKh@0.5 per body part, left and right pooled)
# (mAP@0.5: PASCAL VOC detection, mean over classes of the AP at IoU 0.5)
# (mIoU, aAcc, mAcc: segmentation, in percent: mean IoU over classes, pixel accuracy and
# mean class accuracy; bench.evaluation.segmentation)
# (iIoU, IoU_category, iIoU_category: Cityscapes instance-level IoU over classes, and IoU
# and iIoU over the 7 categories; reported only by the Cityscapes evaluation server: their
# protocols are server_only, so no local run fills them)
# (mAP, AP.<part>: PoseTrack's frame-wise multi-person pose estimation, the mean AP over
# joints and the AP per body part; MOTA, MOTA.<part>: its multi-object tracking accuracy
# (poseval). No task plug-in reads PoseTrack, so no local run fills them)
POSETRACK_PARTS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")
ACCURACY_MEASURES = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50",
                     "PCKh@0.5", "PCKh@0.1", "AUC", "Head", "Shoulder", "Elbow", "Wrist",
                     "Hip", "Knee", "Ankle", "PCK@0.2", "MeanPose-PCK@0.2", "mIoU", "aAcc",
                     "mAcc", "iIoU", "IoU_category", "iIoU_category", "mAP@0.5",
                     "mAP", "MOTA") + tuple(f"{m}.{part}" for m in ("AP", "MOTA")
                                            for part in POSETRACK_PARTS)
MEASURES = COMPLEXITY_MEASURES + ACCURACY_MEASURES
Unit = Literal["", "K", "M", "G", "%", "ms"]   # multiples of a measure's base unit


class SuiteError(ValueError):
    """A problem in a suite or protocol file, located by file, line and field."""

    def __init__(self, path: Path | str, line: int | None, field: str, message: str):
        self.path, self.line, self.field, self.message = str(path), line, field, message
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


class _Frozen(BaseModel):
    # allow_inf_nan: a published value, tolerance or rate of "1e400" (YAML leaves it a
    # string, which becomes infinity as a float) is an error, not a number
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Tolerance(_Frozen):
    abs: Optional[float] = Field(None, ge=0)
    rel: Optional[float] = Field(None, ge=0)
    # "both": |m - p| within; "below": only falling short fails (accuracy);
    # "above": only exceeding fails (a complexity budget)
    side: Literal["both", "below", "above"] = "both"
    # also allow half a unit of the published value's last printed digit: "reproduced to
    # the printed precision" whatever the row's number of decimals (Lite-HRNet's tables
    # print its own GFLOPs with two decimals and HRNet's with one)
    printed: bool = False

    @model_validator(mode="after")
    def _one_bound(self):
        if self.abs is None and self.rel is None and not self.printed:
            raise ValueError("give abs and/or rel (or printed: true)")
        return self

    def allowed(self, published: float, digits: Optional[int] = None) -> float:
        bounds = [b for b in (self.abs, None if self.rel is None else self.rel * abs(published))
                  if b is not None]
        if self.printed and digits is not None:
            bounds.append(0.5 * 10.0 ** -digits)
        return max(bounds, default=0.0)


class Column(_Frozen):
    id: Name                                # the key in ``columns`` (plot file names)
    label: str = ""
    unit: Unit = ""
    measure: str
    protocol: Optional[str] = None          # key into the suite's protocols
    # FLOP counting convention (flops columns); on a params column, the convention's
    # parameter count (``param_modules``: the full count is kept beside it; every
    # parameter when the convention names none)
    convention: Optional[str] = None
    input: Optional[list[list[int]]] = None  # explicit (C, H, W) inputs instead of a protocol
    digits: Optional[int] = None            # printed precision in the paper
    tolerance: Optional[Tolerance] = None
    # accuracy columns run with --seeds: the published value may also lie within this many
    # sample standard deviations of the mean over the seeds (the larger bound applies)
    tolerance_std: Optional[float] = Field(None, gt=0)
    gate: bool = True                       # part of --check
    batch: int = Field(1, ge=1)             # latency_ms: images per timed forward pass
    # compare with another column's published value (the paper prints one number that
    # two measurements should reproduce, e.g. by formula and by counting modules)
    published_from: Optional[str] = None
    # params columns: count only this submodule of the row's model (a dotted path, e.g.
    # FlatteNet Table II's "#Params of the layer"), the rest of the row being the network
    submodule: Optional[str] = None
    # the cell is the ratio of this measure for the row's model to the same measure for the
    # row's model with these overrides (a claim such as "the 32x24 variant needs a third
    # of the FLOPs of the 64x48 one"); params and flops columns only, unit ""
    relative_to: Optional[dict[str, Any]] = None
    # attribute columns: the dotted path (below ``submodule`` when given) of the number the
    # cell reads from the built model, e.g. ``dwconv.kernel_size`` or ``groups``; and an
    # optional second path it is divided by (``out_channels`` / ``in_channels``: a ratio)
    attribute: Optional[str] = None
    divided_by: Optional[str] = None

    @field_validator("submodule", "attribute", "divided_by")
    @classmethod
    def _dotted_path(cls, v):
        if v is not None and not re.fullmatch(r"(?:[A-Za-z_]\w*|\d+)(?:\.(?:[A-Za-z_]\w*|\d+))*", v):
            raise ValueError(f"{v!r} is not a dotted path of names and indices "
                             "(e.g. flatten.layers.0.dwconv)")
        return v

    @field_validator("measure")
    @classmethod
    def _known_measure(cls, v):
        if v not in MEASURES:
            raise ValueError(f"unknown measure {v!r}; known: {', '.join(MEASURES)}")
        return v

    @field_validator("convention")
    @classmethod
    def _known_convention(cls, v):
        if v is not None and v not in CONVENTIONS:
            raise ValueError(f"unknown counting convention {v!r}; known: {', '.join(CONVENTIONS)}")
        return v

    @property
    def is_complexity(self) -> bool:
        return self.measure in COMPLEXITY_MEASURES

    @property
    def title(self) -> str:
        return self.label or self.id


class ModelRef(_Frozen):
    name: Annotated[str, AfterValidator(check_model_name)]
    overrides: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _key_fits_a_file_name(self):
        from .results import safe_name
        if len(safe_name(self.key)) > MAX_KEY_LENGTH:
            raise ValueError(f"the model key (name and overrides, which names its run "
                             f"records and work dirs) has {len(safe_name(self.key))} "
                             f"characters, more than {MAX_KEY_LENGTH}")
        return self

    @property
    def key(self) -> str:
        """Stable identifier of the resolved model: name plus sorted overrides."""
        if not self.overrides:
            return self.name
        args = ",".join(f"{k}={_plain(v)}" for k, v in sorted(self.overrides.items()))
        return f"{self.name}({args})"


class ReleasedWeights(_Frozen):
    """A file of trained weights the authors released for a row under one of the suite's
    protocols (the ``released`` profile scores it, evaluation only). ``model_zoo`` holds
    the numbers the authors' repository prints for these weights where they are given
    (its model-zoo table, in the column's unit); they are what a released cell is
    compared with, the paper's value (``published``) where the zoo prints none."""
    file: str                                # the file name as the authors published it
    sha256: Optional[str] = None             # its digest, where known (64 hex digits)
    published_at: str                        # where the authors publish it (a page or link)
    source: str = ""                         # the table the model-zoo numbers come from
    model_zoo: dict[str, float] = Field(default_factory=dict)
    # the forward the weights were trained with, where it differs from the row's model
    # (HRNetV2's released W48 configs: align_corners false); merged into its overrides
    model_overrides: dict[str, Any] = Field(default_factory=dict)
    # a protocol (a file of suites/protocols) holding the authors' test settings where
    # they differ from the suite's; its validation set is the same dataset's
    protocol: Optional["AnyProtocol"] = None
    note: str = ""

    @field_validator("file")
    @classmethod
    def _bare_name(cls, v):
        if not v.strip() or "/" in v or "\\" in v:
            raise ValueError(f"{v!r}: give the file name alone (the weights are looked up "
                             "by name under --weights-dir)")
        return check_name(v)

    @field_validator("sha256", mode="before")
    @classmethod
    def _quoted(cls, v):
        if v is not None and not isinstance(v, str):
            raise ValueError(f"YAML read the digest as a {type(v).__name__}: write it in quotes")
        return v

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, v):
        if v is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", v):
            raise ValueError(f"{v!r} is not a sha256 digest (64 hexadecimal digits)")
        return None if v is None else v.lower()


class Row(_Frozen):
    name: str
    # a registered model, or (for a method this project does not build) ``not_built``:
    # why not; such a row keeps its published cells so the report shows the whole table
    model: Optional[ModelRef] = None
    not_built: str = ""
    # ImageNet weights for the backbone (overrides the protocol's); see Protocol.pretrained
    pretrained: Optional[str] = None
    # column id -> counting convention for this row only: a number the paper copied from
    # another paper, which counted differently (Lite-HRNet's HRNet rows are HRNet's figures)
    conventions: dict[str, str] = Field(default_factory=dict)
    published: dict[str, Optional[float]] = Field(default_factory=dict)
    note: str = ""
    # cells whose deviation is understood and explained: shown, not gated
    known_deviations: dict[str, str] = Field(default_factory=dict)
    # column id -> k: this row's cell passes when the published value lies within k
    # standard deviations of the mean over seeds (overrides the column's tolerance_std)
    tolerance_std: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    group: str = ""
    # this row's replacement for some of the suite's protocols (e.g. a 384x288 input)
    protocols: dict[str, "AnyProtocol"] = Field(default_factory=dict)
    # decimals of each published value as written in the file ("87.0" -> 1, "28" -> 0)
    printed_digits: dict[str, int] = Field(default_factory=dict)
    # the columns this row fills (all by default): a suite of claims can hold rows that
    # measure different things; the other cells are "not applicable" and never measured
    columns: Optional[tuple[str, ...]] = None
    # protocol key -> the weights the authors released for this row under that protocol
    released: dict[str, ReleasedWeights] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _model_or_reason(self):
        if self.model is None and not self.not_built.strip():
            raise ValueError("a row needs a model, or a not_built reason for a method "
                             "this project does not build")
        if self.model is not None and self.not_built:
            raise ValueError("a row with not_built names no model (drop one of the two)")
        if self.pretrained is not None and self.model is None:
            raise ValueError("pretrained weights need a model")
        if self.released and self.model is None:
            raise ValueError("released weights need a model")
        return self

    @property
    def built(self) -> bool:
        return self.model is not None

    @property
    def key(self) -> str:
        return _row_key(self.name)

    @field_validator("name")
    @classmethod
    def _key_is_a_name(cls, v):
        problem = name_problem(_row_key(v))
        if problem:
            raise ValueError(f"the row's key (its record's file name, made of the name's "
                             f"letters and digits) would be {_row_key(v)!r}: {problem}")
        return v


def _row_key(name: str) -> str:
    """A row's key: its name lower-cased, every run of other characters one ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


class HalfBody(_Frozen):
    prob: float = Field(ge=0, le=1)
    num_joints: int = Field(8, ge=1)       # more visible joints than this are needed


class BoxCenterJitter(_Frozen):
    """mmpose 0.x's COCO training boxes: with probability ``prob`` a box's centre moves by
    ``factor x (U(0, 1) - 0.5) x (w, h)``, drawn once when the dataset is built."""
    prob: float = Field(ge=0, le=1)
    factor: float = Field(ge=0)


class Augmentation(_Frozen):
    """Training augmentation; an entry left out is switched off (no silent default)."""
    flip_prob: float = Field(0.0, ge=0, le=1)
    half_body: Optional[HalfBody] = None
    box_center_jitter: Optional[BoxCenterJitter] = None   # COCO only (boxes)
    rotation: float = Field(0.0, ge=0, le=180)        # degrees, N(0, r) clipped to 2r
    rotation_prob: float = Field(0.6, ge=0, le=1)
    scale: float = Field(0.0, ge=0, lt=1)             # zoom N(1, s) clipped to 1 +- s
    # whose sample pipeline: HRNet's JointsDataset (half body, zoom, rotation, flip last)
    # or mmpose 0.x's (flip first); see bench.data.topdown
    order: Literal["mmpose", "hrnet"] = "mmpose"


class Optimizer(_Frozen):
    type: Literal["adam", "adamw", "sgd"]
    lr: float = Field(gt=0)
    # applied as L2 (adam, sgd) or decoupled (adamw); 0 means none
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)          # sgd only
    nesterov: bool = False                             # sgd only
    betas: tuple[float, float] = (0.9, 0.999)          # adam / adamw


class Warmup(_Frozen):
    type: Literal["linear", "constant"] = "linear"
    iters: int = Field(ge=0)
    ratio: float = Field(0.001, gt=0, le=1)           # the rate starts at lr x ratio


class Schedule(_Frozen):
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


class Batch(_Frozen):
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


class Evaluation(_Frozen):
    """How a top-down pose protocol is scored."""
    boxes: Literal["detector", "ground_truth"] = "ground_truth"
    detection_file: Optional[str] = None               # relative to --data-root
    box_score_threshold: float = Field(0.0, ge=0)
    flip_test: bool = True
    shift_heatmap: bool = True                         # flipped heatmaps moved 1 px right
    post_process: Optional[Literal["default", "gaussian", "dark"]] = "default"
    modulate_kernel: int = Field(11, ge=1)             # gaussian / dark
    oks_nms_threshold: float = Field(0.9, gt=0, le=1)  # COCO
    keypoint_score_threshold: float = Field(0.2, ge=0, le=1)   # COCO rescoring
    pck_threshold: float = Field(0.2, gt=0)           # LSP PCK, fraction of the torso
    # the alpha MPII's Mean@0.1 is read at: 0.1, or 0.11 as HRNet's lib/dataset/mpii.py
    # evaluate reads it (row 11 of its 0.01 grid)
    pckh_low_alpha: Literal[0.1, 0.11] = 0.1
    # whose arithmetic maps heatmaps back to image pixels: HRNet's (lib/core/inference.py
    # get_final_preds: inverse affine, (0, 0) for a maximum <= 0) or mmpose 0.13's
    # (mmpose/core/evaluation/top_down_eval.py keypoints_from_heatmaps: transform_preds'
    # per-axis float32 formula, (-1, -1) for a maximum <= 0)
    decode: Literal["hrnet", "mmpose"] = "hrnet"
    # COCO rescoring + OKS-NMS: HRNet's lib/dataset/coco.py evaluate + lib/nms/nms.py, or
    # mmpose 0.13's topdown_coco_dataset.py evaluate + core/post_processing/nms.py oks_nms
    # (float32 pose scores and OKS, ties ordered by argsort()[::-1])
    coco_postprocess: Literal["hrnet", "mmpose"] = "hrnet"
    # MPII PCKh: HRNet's lib/dataset/mpii.py evaluate, or mmpose 0.13's
    # topdown_mpii_dataset.py evaluate (float32 predictions + 1, float32 PCK curve)
    pckh_arithmetic: Literal["hrnet", "mmpose"] = "hrnet"
    batch_size: int = Field(32, gt=0)

    @model_validator(mode="after")
    def _detector_needs_file(self):
        if self.boxes == "detector" and not self.detection_file:
            raise ValueError("boxes: detector needs a detection_file")
        if self.modulate_kernel % 2 == 0:
            raise ValueError(f"modulate_kernel must be odd, got {self.modulate_kernel}")
        return self


class Validation(_Frozen):
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


class Fidelity(_Frozen):
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


class Protocol(_Frozen):
    """What a run needs, whatever the task: dataset and splits, the input size (at which
    the complexity columns count), the training recipe (optimiser, schedule, the paper's
    batch and GPU count) and seeds. Each task's protocol adds its own fields
    (``PoseProtocol``, ``SegmentationProtocol``); a file says which by ``task:``.
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
        out = dict(self.model_overrides)
        if getattr(self, "num_joints", None) is not None:
            out.setdefault("num_joints", self.num_joints)
        if self.num_classes is not None:
            out.setdefault("num_classes", self.num_classes)
        return out


class PoseLoss(_Frozen):
    # the heatmap MSE is mse_factor x the mean squared error: HRNet's JointsMSELoss (and
    # SimpleBaseline's, DARK's) halves it, mmpose's JointsMSELoss (Lite-HRNet and the
    # mmpose baselines) does not. Under Adam the factor only acts through eps.
    mse_factor: float = Field(0.5, gt=0)


class PoseProtocol(Protocol):
    """Top-down pose: heatmap targets, pose augmentation, detector or GT boxes."""
    task: Literal["pose"] = "pose"
    heatmap_size: Optional[tuple[int, int]] = None
    num_joints: Optional[int] = None
    sigma: Optional[float] = Field(None, gt=0)        # Gaussian target, heatmap pixels
    unbiased_encoding: bool = False                    # DARK targets
    use_target_weight: bool = True
    # images as RGB (HRNet COLOR_RGB true, mmpose to_rgb) or as OpenCV's BGR with the RGB
    # ImageNet statistics (SimpleBaseline's loader, HRNet's resnet configs COLOR_RGB false)
    color_rgb: bool = True
    # which sanitised COCO ground-truth boxes are kept: x2 >= x1 and y2 >= y1 (HRNet's
    # lib/dataset/coco.py) or x2 > x1 and y2 > y1 (mmpose 0.13's topdown_coco_dataset.py)
    box_filter: Literal["hrnet", "mmpose"] = "hrnet"
    # a JPEG's EXIF orientation tag: ignored (HRNet's JointsDataset, cv2.IMREAD_IGNORE_
    # ORIENTATION) or applied (mmpose 0.x LoadImageFromFile: mmcv.imread 'color', i.e.
    # cv2.IMREAD_COLOR, as we read mmcv 1.3's source)
    exif_orientation: Literal["ignore", "apply"] = "ignore"
    augmentation: Augmentation = Field(default_factory=Augmentation)
    evaluation: Evaluation = Field(default_factory=Evaluation)
    loss: PoseLoss = Field(default_factory=PoseLoss)
    # weights of the auxiliary heatmaps a model returns in training mode (GSTO's stage
    # predictors, Sec. 3.2.2: 0.2 / 0.3 / 0.5)
    aux_weights: dict[str, float] = Field(
        default_factory=lambda: {"stage1": 0.2, "stage2": 0.3, "stage3": 0.5})

    @model_validator(mode="after")
    def _jitter_needs_boxes(self):
        if self.augmentation.box_center_jitter is not None and self.dataset != "coco":
            raise ValueError(f"augmentation.box_center_jitter moves COCO person boxes; "
                             f"dataset {self.dataset!r} has none")
        if self.box_filter != "hrnet" and self.dataset != "coco":
            raise ValueError(f"box_filter selects COCO ground-truth boxes; dataset "
                             f"{self.dataset!r} has none")
        return self


class SegAugmentation(_Frozen):
    """Training augmentation of the segmentation recipes; left out = off
    (bench.data.segmentation's module docstring says what each entry does)."""
    scale_range: Optional[tuple[float, float]] = None  # long side x U(lo, hi)
    # HRNet-Semantic-Segmentation's SCALE_FACTOR: long side x (0.5 + k / 10), k uniform
    # in 0..scale_factor (its base_dataset.py gen_sample); instead of scale_range
    scale_factor: Optional[int] = Field(None, ge=0)
    flip_prob: float = Field(0.0, ge=0, le=1)
    # image padding below the crop size: pixel 0 before normalisation, or 0 after it
    pad_image: Literal["black", "mean"] = "black"
    resize_to_crop: bool = False       # image and label resized to crop_size first (LIP)
    flip_first: bool = False           # flip before resizing, not after the crop (LIP)

    @field_validator("scale_range")
    @classmethod
    def _ordered(cls, v):
        if v is not None and not 0 < v[0] <= v[1]:
            raise ValueError(f"scale_range must be 0 < low <= high, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _one_scale_rule(self):
        if self.scale_range is not None and self.scale_factor is not None:
            raise ValueError("give scale_range (continuous) or scale_factor (0.1 grid), "
                             "not both")
        return self


class Ohem(_Frozen):
    """Online hard example mining (HRNet-Semantic-Segmentation's OhemCrossEntropy): keep
    the pixels whose true-class probability is below ``threshold``, at least ``min_kept``."""
    threshold: float = Field(0.9, gt=0, le=1)
    min_kept: int = Field(131072, ge=1)


class SegLoss(_Frozen):
    # per-class weights of the cross-entropy: a list (one per class) or a named table
    # ("hrnet_cityscapes": HRNet-Semantic-Segmentation's Cityscapes weights)
    class_weights: Optional[Union[Literal["hrnet_cityscapes"], tuple[float, ...]]] = None
    ohem: Optional[Ohem] = None
    # auxiliary outputs of the model (training mode) and their weights; the main output
    # weighs main_weight (GSTO: 0.2 / 0.3 / 0.5 for the stage predictors, 1.0 the final)
    aux_weights: dict[str, float] = Field(default_factory=dict)
    main_weight: float = Field(1.0, gt=0)
    align_corners: bool = True                         # logits resized to the labels


class SlidingWindow(_Frozen):
    crop: tuple[int, int]                              # (H, W)
    stride: tuple[int, int]
    # window placement (bench.tasks.segmentation_inference.window_boxes): "shift" (last
    # windows shifted back, image zero-padded to the crop), "hrnet" (HRNet-Semantic-
    # Segmentation's BaseDataset: image and edge windows padded with black), or
    # "hrnet_cityscapes" (its Cityscapes override: whole image at scales <= 1, shifted-back
    # windows above); the two hrnet styles need ensemble: hrnet
    style: Literal["shift", "hrnet", "hrnet_cityscapes"] = "shift"

    @model_validator(mode="after")
    def _stride_within_crop(self):
        if any(s <= 0 or s > c for s, c in zip(self.stride, self.crop)):
            raise ValueError(f"stride {list(self.stride)} must be positive and at most the "
                             f"crop {list(self.crop)}")
        return self


class SegEvaluation(_Frozen):
    """How a segmentation protocol is scored: single scale (``scales: [1.0]``) or several
    with flipping; whole images or a sliding window; logits resized to the label."""
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    # long side of the image at scale 1 (PASCAL-Context: 520); None: the image's own size
    base_size: Optional[int] = Field(None, gt=0)
    # (H, W) every image is resized to at scale 1, aspect ratio not kept (LIP: 473 x 473)
    image_size: Optional[tuple[PositiveInt, PositiveInt]] = None
    # where that resize happens: "inference" (the normalised tensor, bilinear, inside the
    # prediction) or "loader" (the uint8 image, cv2.resize INTER_LINEAR, before normalising:
    # HRNet-Semantic-Segmentation's lib/datasets/lip.py testval)
    image_resize: Literal["inference", "loader"] = "inference"
    sliding_window: Optional[SlidingWindow] = None
    batch_size: int = Field(1, gt=0)
    # how views are combined (bench.tasks.segmentation_inference): "softmax_mean" (mean of
    # the views' softmax) or "hrnet" (HRNet-Semantic-Segmentation: exp of the mean of the
    # plain and flipped logits per window, summed over scales)
    ensemble: Literal["softmax_mean", "hrnet"] = "softmax_mean"
    # bilinear resizes of the scores; None: loss.align_corners
    align_corners: Optional[bool] = None
    # a class absent from label and prediction: "skip" (left out of mIoU / mAcc) or "zero"
    # (counted as 0: HRNet-Semantic-Segmentation's lib/core/function.py testval)
    absent_classes: Literal["skip", "zero"] = "skip"

    @model_validator(mode="after")
    def _one_size_rule(self):
        if self.base_size is not None and self.image_size is not None:
            raise ValueError("give base_size (long side, aspect kept) or image_size "
                             "(exact size), not both")
        if self.image_resize == "loader" and self.image_size is None:
            raise ValueError("image_resize: loader resizes to image_size; give image_size")
        if (self.sliding_window is not None and self.sliding_window.style != "shift"
                and self.ensemble != "hrnet"):
            raise ValueError(f"sliding_window.style {self.sliding_window.style!r} is "
                             f"HRNet-Semantic-Segmentation's; it needs ensemble: hrnet")
        return self

    @field_validator("scales")
    @classmethod
    def _positive(cls, v):
        if not v or any(s <= 0 for s in v):
            raise ValueError(f"scales must be a non-empty list of positive numbers, got {list(v)}")
        return v


class SegmentationProtocol(Protocol):
    """Semantic segmentation: random scale / crop / flip, pixel cross-entropy (class
    weights, OHEM, auxiliary terms), single- or multi-scale evaluation, mIoU."""
    task: Literal["segmentation"]
    num_classes: int = Field(gt=0)
    crop_size: Optional[tuple[int, int]] = None        # training crop (H, W)
    base_size: Optional[int] = Field(None, gt=0)       # long side before random scaling
    ignore_label: int = 255
    data_dir: Optional[str] = None                     # folder under --data-root
    augmentation: SegAugmentation = Field(default_factory=SegAugmentation)
    loss: SegLoss = Field(default_factory=SegLoss)
    evaluation: SegEvaluation = Field(default_factory=SegEvaluation)

    @model_validator(mode="after")
    def _weights_per_class(self):
        w = self.loss.class_weights
        if isinstance(w, tuple) and len(w) != self.num_classes:
            raise ValueError(f"loss.class_weights has {len(w)} entries for {self.num_classes} classes")
        if self.trainable and self.crop_size is None:
            raise ValueError("a trainable segmentation protocol needs a crop_size")
        return self


class DetAugmentation(_Frozen):
    """CenterNet's training augmentation (its ctdet sampler); left out = off."""
    flip_prob: float = Field(0.0, ge=0, le=1)
    # CenterNet's random crop: crop size x one of lo, lo + 0.1, ... (below hi), centre
    # anywhere inside a 128-px border of the image
    scale_range: Optional[tuple[float, float]] = None
    # CenterNet's --not_rand_crop branch instead: centre shifted by N(0, shift) of the crop
    # and scale N(1, max(1 - lo, hi - 1)) clipped to the range
    shift: Optional[float] = Field(None, gt=0, lt=1)
    color_jitter: bool = False                         # brightness / contrast / saturation + PCA lighting


class DetLoss(_Frozen):
    """CenterNet's loss: penalty-reduced focal loss on the centre heatmaps, L1 on box
    sizes and centre offsets at the object centres (weights 1 / 0.1 / 1)."""
    heatmap_weight: float = Field(1.0, ge=0)
    size_weight: float = Field(0.1, ge=0)
    offset_weight: float = Field(1.0, ge=0)


class DetEvaluation(_Frozen):
    flip: bool = True                                   # average heatmaps and sizes with the mirror
    top_k: int = Field(100, gt=0)                       # boxes kept per image
    iou_threshold: float = Field(0.5, gt=0, lt=1)
    use_07_metric: bool = True                          # VOC07 11-point AP (else the area)
    batch_size: int = Field(8, gt=0)
    # CenterNet's test path and evaluation by default (tests/golden/
    # predictions_centernet_voc.json), the other behaviour as an option
    heatmap_activation: Literal["sigmoid", "clamped_sigmoid"] = "sigmoid"  # ctdet.py / the loss's
    top_k_selection: Literal["per_class", "global"] = "per_class"  # decode.py _topk / one top-k
    results_rounding: Literal["devkit_file", "none"] = "devkit_file"  # scores .3f, boxes .1f / none
    score_sort: Literal["quicksort", "stable"] = "quicksort"  # voc_eval's np.argsort / stable
    empty_classes: Literal["zero", "skip"] = "zero"     # no-GT class: AP 0 in the mean / left out


class DetectionProtocol(Protocol):
    """Object detection, CenterNet-style (FlatteNet Table X): centre heatmaps, sizes and
    offsets at ``output_stride``; PASCAL VOC sets as (year, image set) pairs."""
    task: Literal["detection"]
    num_classes: int = Field(gt=0)
    output_stride: int = Field(4, gt=0)
    train_sets: tuple[tuple[str, str], ...] = ()        # e.g. [[2007, trainval], [2012, trainval]]
    val_sets: tuple[tuple[str, str], ...] = ()          # e.g. [[2007, test]]
    max_objects: int = Field(50, gt=0)                  # target slots per image (CenterNet's pascal)
    keep_difficult: bool = True                         # train on difficult objects too
    data_dir: Optional[str] = None                      # folder under --data-root
    # CenterNet's behaviour by default (tests/golden/samples_centernet_voc.json), the
    # other as an option; see bench.data.voc / bench.data.centernet
    channel_order: Literal["bgr", "rgb"] = "bgr"        # bgr: OpenCV's, never converted
    box_convention: Literal["centernet", "zero_based"] = "centernet"  # [x0-1, y0-1, x1, y1] / all -1
    numerics: Literal["centernet", "exact"] = "centernet"   # official float32 rounding / closed form
    heatmap_radius: Literal["centernet", "exact"] = "centernet"  # gaussian_radius as coded / solved
    augmentation: DetAugmentation = Field(default_factory=DetAugmentation)
    loss: DetLoss = Field(default_factory=DetLoss)
    evaluation: DetEvaluation = Field(default_factory=DetEvaluation)


PROTOCOL_TYPES = {"pose": PoseProtocol, "segmentation": SegmentationProtocol,
                  "detection": DetectionProtocol}
# a protocol field holds any task's protocol, chosen by its ``task``
AnyProtocol = Annotated[Union[PoseProtocol, SegmentationProtocol, DetectionProtocol],
                        Field(discriminator="task")]


ReleasedWeights.model_rebuild()   # refers to Protocol, defined after it
Row.model_rebuild()   # Row refers to Protocol, defined after it


class Suite(_Frozen):
    suite: Name                         # names its records folder and report page
    paper: str
    table: Union[int, str]
    title: str
    source: str = ""                    # where in the paper (page/section), free text
    protocols: dict[str, AnyProtocol] = Field(default_factory=dict)
    columns: dict[str, Column]
    rows: tuple[Row, ...]
    notes: str = ""
    path: str = ""

    def column(self, cid: str) -> Column:
        return self.columns[cid]

    def published(self, row: Row, cid: str) -> Optional[float]:
        """The published value a cell is compared with (follows ``published_from``)."""
        source = self.columns[cid].published_from or cid
        return row.published.get(source)

    def released_for(self, row: Row, cid: str) -> Optional["ReleasedWeights"]:
        """The released weights that fill a row's accuracy cell (None: none named)."""
        key = self.columns[cid].protocol
        return row.released.get(key) if key is not None else None

    def reference(self, row: Row, cid: str, profile: Optional[str] = None
                  ) -> tuple[Optional[float], str]:
        """(value, source) a cell is compared with: the paper's value (``published``),
        or for a cell scored from released weights the authors' model-zoo number for
        those weights where their repository prints one."""
        released = self.released_for(row, cid) if has(profile, "released_weights") else None
        if released is not None and cid in released.model_zoo:
            return released.model_zoo[cid], "model zoo"
        return self.published(row, cid), "paper"

    def protocol_for(self, row: Row, key: Optional[str]) -> Optional[Protocol]:
        """The protocol a row's cell runs under: the row's override, else the suite's."""
        if key is None:
            return None
        return row.protocols.get(key) or self.protocols[key]

    def applies(self, row: Row, cid: str) -> bool:
        """Whether the row fills the column (``Row.columns``; every column by default)."""
        return row.columns is None or cid in row.columns

    def tolerance_std_for(self, row: Row, cid: str) -> Optional[float]:
        """k of the cell's "within k standard deviations over seeds" bound, if any."""
        return row.tolerance_std.get(cid, self.columns[cid].tolerance_std)

    def convention_for(self, row: Row, cid: str) -> Optional[str]:
        """The counting convention of a row's cell: the row's override, else the column's."""
        return row.conventions.get(cid) or self.columns[cid].convention

    def printed_digits(self, row: Row, cid: str) -> Optional[int]:
        """Decimals the paper printed for the cell's published value."""
        col = self.columns[cid]
        if col.digits is not None:
            return col.digits
        return row.printed_digits.get(col.published_from or cid)


# --- YAML with line numbers --------------------------------------------------------------

def _plain(v: Any) -> str:
    return str(list(v)) if isinstance(v, tuple) else str(v)


def _positions(node: yaml.Node, path: tuple = (), out: dict | None = None,
               texts: dict | None = None) -> dict[tuple, int]:
    """Map every key path of a composed YAML document to its 1-based line (and, in
    ``texts``, every scalar's path to its source text)."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value
            _positions(v, path + (key,), out, texts)
            out[path + (key,)] = k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _positions(v, path + (i,), out, texts)
    elif texts is not None and isinstance(node, yaml.ScalarNode):
        texts[path] = node.value
    return out


def _decimals(text: str) -> int | None:
    m = re.fullmatch(r"[+-]?\d*(?:\.(\d*))?", text.strip())
    return None if m is None else len(m.group(1) or "")


def _field_on_line(text: str, line: int) -> str:
    """The dotted key path whose key or value starts on ``line`` (the deepest), for
    locating a problem found before the YAML could be read; "" when none is found."""
    try:
        check_events(text)              # no alias bomb is expanded to find the field
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, InputLimitError):
        return ""
    if node is None:
        return ""
    on_line = [loc for loc, n in _positions(node).items() if n == line and loc]
    return _dotted(max(on_line, key=len)) if on_line else ""


def _decode(path: Path, raw: bytes) -> str:
    """The file's text as UTF-8 (a leading byte-order mark is dropped); anything else is
    a SuiteError naming the line, the field on it and the offending byte."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        field = _field_on_line(raw.decode("utf-8-sig", errors="replace"), line)
        raise SuiteError(path, line, field, f"not UTF-8 text: byte 0x{raw[err.start]:02x} at "
                         f"column {column} ({err.reason}); save the file as UTF-8") from None


def _non_finite(path: Path, data: Any, positions: dict, loc: tuple = ()) -> None:
    """Refuse ``.inf``, ``.nan`` and numbers beyond a float's range (YAML reads ``1.0e400``
    as infinity): no published value, tolerance or override can be one."""
    if isinstance(data, float) and not math.isfinite(data):
        raise SuiteError(path, _line_for(positions, loc), _dotted(loc),
                         f"{data} is not a finite number (a float holds at most about 1.8e308)")
    items = data.items() if isinstance(data, dict) else (
        enumerate(data) if isinstance(data, list) else ())
    for key, value in items:
        _non_finite(path, value, positions, loc + (key,))


# libyaml where PyYAML was built with it (about 5x faster on the 49 bundled suites); its
# errors give byte offsets, so a file it refuses is read again by the Python parser
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _compose_and_construct(text: str, loader_class) -> tuple[Any, Any]:
    """One parse: the node tree (for line numbers) and the data built from it, after the
    event stream is checked against the size, depth and alias limits (bench.yaml_limits:
    InputLimitError) so that nothing large is ever composed or expanded."""
    check_events(text, loader_class)
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        return node, (construct_checked(loader, node) if node is not None else None)
    finally:
        loader.dispose()


def _read_yaml(path: Path, texts: dict | None = None) -> tuple[Any, dict[tuple, int]]:
    try:
        raw = read_limited(path)        # at most MAX_FILE_BYTES + 1 bytes are read
    except InputLimitError as err:
        raise SuiteError(path, None, "", err.message) from None
    except OSError as err:
        raise SuiteError(path, None, "", f"cannot read: {err.strerror}") from None
    text = _decode(path, raw)
    try:
        try:
            node, data = _compose_and_construct(text, _FAST_LOADER)
        except yaml.YAMLError:
            node = None  # the pure-Python parser below reports it with exact positions
        if node is None:
            node, data = _compose_and_construct(text, yaml.SafeLoader)
    except (InputLimitError, UnreadableValue) as err:
        raise SuiteError(path, err.line, err.field, err.message) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else None
        raise SuiteError(path, line, "", f"YAML syntax error: {err.problem or err}") from None
    except yaml.reader.ReaderError as err:   # a control character YAML does not allow
        line = text[:err.position].count("\n") + 1
        raise SuiteError(path, line, _field_on_line(text.replace(text[err.position], " "), line),
                         f"character #x{err.character:04x} is not allowed in YAML "
                         "(a control character)") from None
    except yaml.YAMLError as err:
        raise SuiteError(path, None, "", f"YAML error: {err}") from None
    if node is None or not isinstance(data, dict):
        raise SuiteError(path, 1, "", "expected a mapping at the top level")
    positions = _positions(node, texts=texts)
    _non_finite(path, data, positions)
    return data, positions


def _line_for(positions: dict[tuple, int], loc: tuple) -> int | None:
    for k in range(len(loc), -1, -1):
        if tuple(loc[:k]) in positions:
            return positions[tuple(loc[:k])]
    return None


def _raise_first(path: Path, positions: dict, err: ValidationError, prefix: tuple = (),
                 data_loc=lambda loc: loc) -> None:
    e = err.errors()[0]
    loc = prefix + data_loc(tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-"))))
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        msg = "unknown field"
    elif e["type"] == "finite_number":   # e.g. "1e400": YAML leaves it a string, too big a float
        msg = f"{e.get('input')!r} is not a finite number (a float holds at most about 1.8e308)"
    raise SuiteError(path, _line_for(positions, loc), _dotted(loc), msg) from None


# --- loading -------------------------------------------------------------------------

def _deep_merge(base: dict, child: dict) -> dict:
    """``child`` over ``base``: mappings merged key by key, anything else replaced."""
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


# one protocols folder, or several searched in order
ProtocolDirs = Union[Path, str, tuple, list]


def _search_path(protocols_dir: ProtocolDirs) -> tuple[Path, ...]:
    """One folder or several, searched in order (a user's own before the bundled)."""
    dirs = (protocols_dir,) if isinstance(protocols_dir, (str, Path)) else tuple(protocols_dir)
    out: list[Path] = []
    for d in map(Path, dirs):
        if all(d.resolve() != o.resolve() for o in out):
            out.append(d)
    return tuple(out)


def find_protocol_file(name: str, protocols_dir: ProtocolDirs = PROTOCOLS_DIR) -> Path:
    """The first ``<dir>/<name>.yaml`` along the search path; FileNotFoundError listing
    the known names otherwise."""
    dirs = _search_path(protocols_dir)
    if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name) and not name.endswith(".yaml"):
        for d in dirs:
            if (d / f"{name}.yaml").is_file():
                return d / f"{name}.yaml"
    known = sorted({p.stem for d in dirs for p in d.glob("*.yaml")})
    where = " or ".join(str(d) for d in dirs)
    raise FileNotFoundError(f"unknown protocol {name!r} (looked in {where}); "
                            f"known: {', '.join(known)}")


def _protocol_sources(name: str, protocols_dir: ProtocolDirs, chain: tuple = ()
                      ) -> tuple[dict, list[tuple[Path, dict, dict]]]:
    """The protocol's fields after its ``base`` chain, and the files they came from
    (``(path, positions, own data)``, the protocol's own file first)."""
    path = find_protocol_file(name, protocols_dir)
    data, positions = _read_yaml(path)
    sources = [(path, positions, data)]
    base = data.get("base")
    if base is None:
        return dict(data), sources
    where = _line_for(positions, ("base",))
    if not isinstance(base, str):
        raise SuiteError(path, where, "base", "expected the name of another protocol")
    if base == name or base in chain:
        raise SuiteError(path, where, "base", f"protocols extend each other in a cycle: "
                         f"{' -> '.join(chain + (name, base))}")
    try:
        inherited, more = _protocol_sources(base, protocols_dir, chain + (name,))
    except FileNotFoundError as err:
        raise SuiteError(path, where, "base", str(err)) from None
    inherited.pop("name", None)
    inherited.pop("fidelity", None)      # each file states its own (a claim is not inherited)
    return _deep_merge(inherited, data), sources + more


def load_protocol(name: str, protocols_dir: ProtocolDirs = PROTOCOLS_DIR) -> Protocol:
    """Read ``<protocols_dir>/<name>.yaml`` (after its ``base`` chain) into the protocol
    type its ``task`` names; errors name the file and line that set the field.
    ``protocols_dir`` may be several folders, searched in order (the file and each of
    its ``base`` protocols are looked up along them)."""
    data, sources = _protocol_sources(name, protocols_dir)
    path, positions, _ = sources[0]
    data.setdefault("name", name)
    task = data.get("task")
    if not isinstance(task, str) or task not in PROTOCOL_TYPES:     # (a list is unhashable)
        owner = next(((p, pos) for p, pos, own in sources if "task" in own), (path, positions))
        what = "missing" if task is None else f"unknown task {task!r}"
        raise SuiteError(owner[0], _line_for(owner[1], ("task",)), "task",
                         f"{what}; a protocol says which task it is for: "
                         f"{', '.join(PROTOCOL_TYPES)}")
    try:
        return PROTOCOL_TYPES[task](**data)
    except ValidationError as err:
        loc = tuple(p for p in err.errors()[0]["loc"]
                    if not (isinstance(p, str) and p.startswith("function-")))

        def depth(source) -> int:   # how much of the field's path this file spells
            return max((k for k in range(len(loc), 0, -1) if tuple(loc[:k]) in source[1]),
                       default=0)
        file, pos, _ = max(sources, key=depth) if loc else sources[0]
        _raise_first(file, pos, err)


def _load_protocol_map(path: Path, positions: dict, raw: Any, where: tuple,
                       protocols_dir: ProtocolDirs) -> dict[str, Protocol]:
    """``{key: protocol file name}`` -> ``{key: Protocol}``, errors located in the suite."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SuiteError(path, _line_for(positions, where), _dotted(where),
                         "expected a mapping of key: protocol name")
    out = {}
    for key, name in raw.items():
        loc = where + (key,)
        if name_problem(key):           # protocol keys name plot files
            raise SuiteError(path, _line_for(positions, loc), _dotted(loc), name_problem(key))
        if not isinstance(name, str):
            raise SuiteError(path, _line_for(positions, loc), _dotted(loc), "expected a protocol name")
        try:
            out[key] = load_protocol(name, protocols_dir)
        except FileNotFoundError as err:
            raise SuiteError(path, _line_for(positions, loc), _dotted(loc), str(err)) from None
    return out


def _load_released(path: Path, positions: dict, raw: dict, index: int,
                   protocols_dir: ProtocolDirs) -> dict:
    """A row's ``released`` entries with their ``protocol`` names read into protocols."""
    out = {}
    for key, entry in raw.items():
        if isinstance(entry, dict) and isinstance(entry.get("protocol"), str):
            loc = ("rows", index, "released", key, "protocol")
            try:
                entry = {**entry, "protocol": load_protocol(entry["protocol"], protocols_dir)}
            except FileNotFoundError as err:
                raise SuiteError(path, _line_for(positions, loc), _dotted(loc), str(err)) from None
        out[key] = entry
    return out


def _printed_digits(texts: dict, index: int, published: Any) -> dict[str, int]:
    if not isinstance(published, dict):
        return {}
    out = {}
    for cid in published:
        d = _decimals(texts.get(("rows", index, "published", cid), ""))
        if d is not None:
            out[cid] = d
    return out


def _normalize_model(raw: Any) -> Any:
    """``model: name`` or ``model: {name: ..., <overrides>}`` -> ModelRef fields."""
    if raw is None:
        return None
    if isinstance(raw, str):
        return {"name": raw}
    if isinstance(raw, dict) and "name" in raw:
        return {"name": raw["name"], "overrides": {k: v for k, v in raw.items() if k != "name"}}
    return raw


def load_suite(path: str | Path, check_models: bool = True,
               protocols_dir: ProtocolDirs | None = None) -> Suite:
    """Read and validate a suite file; raise SuiteError naming file, line and field.
    Protocol names are looked up in ``protocols_dir`` when given; otherwise in a
    ``protocols/`` folder beside the suite file, then among the bundled protocols."""
    path = Path(path)
    texts: dict[tuple, str] = {}
    data, positions = _read_yaml(path, texts)
    if protocols_dir is None:
        beside = path.parent / "protocols"
        protocols_dir = (beside, PROTOCOLS_DIR) if beside.is_dir() else (PROTOCOLS_DIR,)

    protocols = _load_protocol_map(path, positions, data.get("protocols"), ("protocols",),
                                   protocols_dir)
    columns = data.get("columns")
    if isinstance(columns, dict):
        columns = {cid: ({**c, "id": cid} if isinstance(c, dict) else c) for cid, c in columns.items()}
    rows = data.get("rows")
    if isinstance(rows, list):
        rows = [({**r, **({"model": _normalize_model(r["model"])} if "model" in r else {}),
                  "printed_digits": _printed_digits(texts, i, r.get("published")),
                  "protocols": _load_protocol_map(path, positions, r.get("protocols"),
                                                  ("rows", i, "protocols"), protocols_dir),
                  **({"released": _load_released(path, positions, r["released"], i, protocols_dir)}
                     if isinstance(r.get("released"), dict) else {})}
                 if isinstance(r, dict) else r)
                for i, r in enumerate(rows)]

    def data_loc(loc: tuple) -> tuple:
        # ModelRef's "overrides" level does not exist in the file: map it back
        if len(loc) >= 4 and loc[0] == "rows" and loc[2] == "model" and loc[3] == "overrides":
            return loc[:3] + loc[4:]
        return loc

    fields = {k: v for k, v in data.items() if k not in ("protocols", "columns", "rows")}
    try:
        suite = Suite(**fields, protocols=protocols, columns=columns, rows=rows, path=str(path))
    except ValidationError as err:
        _raise_first(path, positions, err, data_loc=data_loc)

    _check_references(path, positions, suite, check_models)
    return suite


def _check_references(path: Path, positions: dict, suite: Suite, check_models: bool) -> None:
    def fail(loc: tuple, msg: str):
        raise SuiteError(path, _line_for(positions, loc), _dotted(loc), msg)

    for cid, col in suite.columns.items():
        loc = ("columns", cid)
        if col.protocol is not None and col.protocol not in suite.protocols:
            fail(loc + ("protocol",), f"unknown protocol key {col.protocol!r}; "
                 f"the suite's protocols are: {', '.join(suite.protocols) or 'none'}")
        if col.measure not in ("params", "attribute") and col.is_complexity \
                and col.protocol is None and col.input is None:
            fail(loc, f"a {col.measure} column needs a protocol or an explicit input")
        if col.measure == "flops" and col.convention is None:
            fail(loc + ("convention",), "a flops column must name its counting convention")
        if col.published_from is not None and col.published_from not in suite.columns:
            fail(loc + ("published_from",), f"unknown column {col.published_from!r}")
        if col.batch != 1 and col.measure != "latency_ms":
            fail(loc + ("batch",), "batch applies to latency_ms columns only")
        if col.submodule is not None and col.measure not in ("params",) + STRUCTURE_MEASURES:
            fail(loc + ("submodule",), f"submodule applies to params and "
                 f"{', '.join(STRUCTURE_MEASURES)} columns only")
        if col.measure == "attribute" and col.attribute is None:
            fail(loc, "an attribute column names the attribute it reads (attribute: a dotted "
                 "path, e.g. dwconv.kernel_size)")
        for name in ("attribute", "divided_by"):
            if getattr(col, name) is not None and col.measure != "attribute":
                fail(loc + (name,), f"{name} applies to attribute columns only")
        if col.measure in STRUCTURE_MEASURES:
            if col.unit not in ("", "K", "M"):
                fail(loc + ("unit",), f"a {col.measure} column is a count: leave its unit empty "
                     "(or K, M)")
            if col.convention is not None:
                fail(loc + ("convention",), f"a {col.measure} column counts nothing: no convention")
        if not col.is_complexity and col.protocol is None:
            fail(loc + ("protocol",), f"accuracy measure {col.measure!r} needs a protocol")
        if col.tolerance_std is not None and col.is_complexity:
            fail(loc + ("tolerance_std",), f"tolerance_std applies to accuracy columns (a "
                 f"spread over training seeds), not to a {col.measure} column")
        if col.relative_to is not None:
            if col.measure not in ("params", "flops"):
                fail(loc + ("relative_to",), f"relative_to applies to params and flops columns, "
                     f"not {col.measure!r}")
            if col.unit != "":
                fail(loc + ("unit",), "a relative_to column is a ratio: leave its unit empty")
            if not col.relative_to:
                fail(loc + ("relative_to",), "name the overrides of the reference model")

    seen = {}
    for i, row in enumerate(suite.rows):
        loc = ("rows", i)
        for key in row.protocols:
            if key not in suite.protocols:
                fail(loc + ("protocols", key), f"the suite has no protocol key {key!r} to override")
        if row.key in seen:
            fail(loc + ("name",), f"duplicate row name (same key as row {seen[row.key]})")
        seen[row.key] = i
        for cid in list(row.published) + list(row.known_deviations):
            if cid not in suite.columns:
                where = "published" if cid in row.published else "known_deviations"
                fail(loc + (where, cid), f"unknown column {cid!r}; columns: {', '.join(suite.columns)}")
        for j, cid in enumerate(row.columns or ()):
            if cid not in suite.columns:
                fail(loc + ("columns", j), f"unknown column {cid!r}; columns: {', '.join(suite.columns)}")
        for cid in list(row.published) + list(row.known_deviations):
            if not suite.applies(row, cid):
                fail(loc + ("published", cid), f"column {cid!r} is not among the row's columns "
                     f"({', '.join(row.columns)})")
        for cid in row.tolerance_std:
            if cid not in suite.columns or suite.columns[cid].is_complexity:
                fail(loc + ("tolerance_std", cid), f"{cid!r} is not an accuracy column of this "
                     "suite (tolerance_std is a spread over training seeds)")
        for key, released in row.released.items():
            where = loc + ("released", key)
            if key not in suite.protocols:
                fail(where, f"unknown protocol key {key!r}; the suite's protocols are: "
                     f"{', '.join(suite.protocols) or 'none'}")
            if released.protocol is not None and key in suite.protocols:
                own = suite.protocol_for(row, key)
                if (released.protocol.task, released.protocol.dataset) != (own.task, own.dataset):
                    fail(where + ("protocol",), f"protocol {released.protocol.name} scores "
                         f"{released.protocol.dataset}, the row's {key!r} protocol "
                         f"{own.name} {own.dataset}: the weights must be scored on its dataset")
            if check_models and released.model_overrides:
                from .registry import BadOverrideError, resolve_spec
                try:
                    resolve_spec(row.model.name, **{**row.model.overrides, **released.model_overrides})
                except BadOverrideError as err:
                    fail(where + ("model_overrides",), str(err))
            for cid in released.model_zoo:
                col = suite.columns.get(cid)
                if col is None or col.is_complexity or col.protocol != key:
                    fail(where + ("model_zoo", cid), f"{cid!r} is not an accuracy column of "
                         f"protocol {key!r}; those are: " + (", ".join(
                             c for c, k in suite.columns.items()
                             if not k.is_complexity and k.protocol == key) or "none"))
                if not suite.applies(row, cid):
                    fail(where + ("model_zoo", cid), f"column {cid!r} is not among the row's "
                         f"columns ({', '.join(row.columns)})")
        for cid, name in row.conventions.items():
            where = loc + ("conventions", cid)
            if cid not in suite.columns or suite.columns[cid].measure != "flops":
                fail(where, f"{cid!r} is not a flops column of this suite")
            if name not in CONVENTIONS:
                fail(where, f"unknown counting convention {name!r}; known: {', '.join(CONVENTIONS)}")
        if check_models and row.built:
            from .registry import BadOverrideError, UnknownModelError, resolve_spec
            try:
                resolve_spec(row.model.name, **row.model.overrides)
            except UnknownModelError as err:
                fail(loc + ("model",), str(err))
            except BadOverrideError as err:
                fail(loc + ("model",), str(err))
            for cid, col in suite.columns.items():
                if col.relative_to and suite.applies(row, cid):
                    try:
                        resolve_spec(row.model.name, **{**row.model.overrides, **col.relative_to})
                    except BadOverrideError as err:
                        fail(("columns", cid, "relative_to"),
                             f"row {row.name!r} ({row.model.name}): {err}")


def discover_suites(directory: Path = SUITES_DIR) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml"))


def find_suites(spec: str | Path, directory: Path = SUITES_DIR) -> list[Path]:
    """The suite files a command-line argument names: an existing file, or the name (or
    a glob of names) of suites bundled with HRBench (``lite_hrnet_table6``,
    ``'lite_hrnet_*'``). Anything else is a SuiteError saying where it looked."""
    path = Path(spec)
    if path.is_file():
        return [path]
    text = str(spec)
    if path.is_dir():
        raise SuiteError(text, None, "", f"a folder, not a suite file (name its files: {path}/*.yaml)")
    if path.suffix in (".yaml", ".yml") or "/" in text or "\\" in text:
        raise SuiteError(text, None, "", "no such suite file")
    names = {p.stem: p for p in discover_suites(directory)}
    found = [names[n] for n in sorted(names) if fnmatch.fnmatchcase(n, text)]
    if not found:
        close = [n for n in sorted(names) if text.split("_")[0] in n][:6]
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise SuiteError(text, None, "", f"neither a suite file nor a bundled suite ({directory})"
                         f"{hint}; `hrbench list suites` lists them")
    return found
