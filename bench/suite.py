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
from typing import Annotated, Any, Literal, Mapping, Optional, Union

import yaml
from pydantic import (AfterValidator, BeforeValidator, Field, SerializeAsAny, ValidationError,
                      field_validator, model_validator)

from .complexity.conventions import CONVENTIONS
from .measures import check_column, complexity_measure_names, is_complexity_measure
from .paths import PROTOCOLS_DIR, SUITES_DIR
from .profiles import has
from .protocol import FrozenModel, Name, Protocol
from .tasks import all_specs, task_names, task_spec
from .yaml_limits import (_dotted, InputLimitError, UnreadableValue, check_events, construct_checked,
                          read_limited)
from .names import MAX_KEY_LENGTH, check_model_name, check_name, name_problem

def accuracy_measures() -> tuple[str, ...]:
    """Every measure a task reports or its papers print (``TaskSpec.metric_names`` and
    ``external_metric_names``), over the registered tasks: the one source of their names."""
    out: dict[str, None] = {}
    for spec in all_specs():
        out.update(dict.fromkeys(spec.metric_names + spec.external_metric_names))
    return tuple(out)


def measure_names() -> tuple[str, ...]:
    """The registered complexity measures (``bench.measures``), then the accuracy ones."""
    return complexity_measure_names() + accuracy_measures()


Unit = Literal["", "K", "M", "G", "%", "ms"]   # multiples of a measure's base unit


class SuiteError(ValueError):
    """A problem in a suite or protocol file, located by file, line and field."""

    def __init__(self, path: Path | str, line: int | None, field: str, message: str):
        self.path, self.line, self.field, self.message = str(path), line, field, message
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


class Tolerance(FrozenModel):
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


class Column(FrozenModel):
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
        known = measure_names()
        if v not in known:
            raise ValueError(f"unknown measure {v!r}; known: {', '.join(known)}")
        return v

    @field_validator("convention")
    @classmethod
    def _known_convention(cls, v):
        if v is not None and v not in CONVENTIONS:
            raise ValueError(f"unknown counting convention {v!r}; known: {', '.join(CONVENTIONS)}")
        return v

    @property
    def is_complexity(self) -> bool:
        return is_complexity_measure(self.measure)

    @property
    def title(self) -> str:
        return self.label or self.id


class ModelRef(FrozenModel):
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


class ReleasedWeights(FrozenModel):
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


class Row(FrozenModel):
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


def _typed_protocol(value: Any) -> Any:
    """A protocol given as a mapping becomes its task's protocol type (``task:``)."""
    if isinstance(value, Mapping):
        task = value.get("task")
        if not isinstance(task, str) or task not in task_names():
            raise ValueError(f"{'missing task' if task is None else f'unknown task {task!r}'};"
                             f" a protocol says which task it is for: {', '.join(task_names())}")
        return task_spec(task).protocol.model_validate(dict(value))
    return value


# a field holding any task's protocol: each task's own type (the task registry's), kept
# and written out as that type
AnyProtocol = Annotated[SerializeAsAny[Protocol], BeforeValidator(_typed_protocol)]


ReleasedWeights.model_rebuild()   # refers to Protocol, defined after it
Row.model_rebuild()   # Row refers to Protocol, defined after it


class Suite(FrozenModel):
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
    if not isinstance(task, str) or task not in task_names():     # (a list is unhashable)
        owner = next(((p, pos) for p, pos, own in sources if "task" in own), (path, positions))
        what = "missing" if task is None else f"unknown task {task!r}"
        raise SuiteError(owner[0], _line_for(owner[1], ("task",)), "task",
                         f"{what}; a protocol says which task it is for: "
                         f"{', '.join(task_names())}")
    try:
        return task_spec(task).protocol(**data)
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
        # the measure's own field rules (bench.measures: each handle's check)
        check_column(col, lambda where, msg: fail(loc + where, msg))
        if col.published_from is not None and col.published_from not in suite.columns:
            fail(loc + ("published_from",), f"unknown column {col.published_from!r}")
        if not col.is_complexity and col.protocol is None:
            fail(loc + ("protocol",), f"accuracy measure {col.measure!r} needs a protocol")
        if col.tolerance_std is not None and col.is_complexity:
            fail(loc + ("tolerance_std",), f"tolerance_std applies to accuracy columns (a "
                 f"spread over training seeds), not to a {col.measure} column")

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
