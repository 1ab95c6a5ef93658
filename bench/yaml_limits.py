"""Resource limits on suite and protocol files, checked before any YAML is composed.

Suite and protocol files may come from other people's repositories (issue 29), so a
file must not be able to exhaust the machine while it is read:

- ``MAX_FILE_BYTES``: a larger file is refused unread (the bundled ones are < 11 KB);
- ``MAX_DEPTH``: nesting of mappings and sequences, aliases expanded (bundled: <= 7);
- ``MAX_NODES``: the number of nodes the document has once every alias is expanded
  (bundled: < 800). Aliases (``*name``) are allowed, the bundled suites share a
  ``published_at`` link that way, but a "billion laughs" file, a few lines of aliases
  of aliases that expand to 10^9 nodes, is refused at the alias that crosses the budget;
  an alias of a node that contains it (a recursive structure) is refused too;
- duplicated keys in one mapping (YAML keeps the last one silently) are refused.

``check_events`` walks the parser's event stream, which needs memory proportional to
the nesting depth only: nothing is expanded and no node tree is built. Imports neither
torch nor any other part of HRBench.
"""
from __future__ import annotations

from pathlib import Path

import yaml

MAX_FILE_BYTES = 1 << 20          # 1 MiB
MAX_DEPTH = 32
MAX_NODES = 100_000


class InputLimitError(ValueError):
    """A suite or protocol file exceeds a limit; ``line`` (1-based, or None) and
    ``field`` (the dotted key path there, or "") locate it."""

    def __init__(self, line: int | None, field: str, message: str):
        self.line, self.field, self.message = line, field, message
        super().__init__(message)


def read_limited(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The file's bytes; InputLimitError when it holds more than ``limit`` bytes (at most
    ``limit + 1`` bytes are ever read). OSError as ``open`` raises it."""
    with open(path, "rb") as fh:
        raw = fh.read(limit + 1)
    if len(raw) > limit:
        raise InputLimitError(None, "", f"the file is larger than {limit:,} bytes "
                              f"({limit // (1 << 20)} MiB), the limit for suite and protocol "
                              "files")
    return raw


def _dotted(loc: list) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Frame:
    """An open mapping or sequence: its expanded size and height so far, and where its
    next child goes (the key of a mapping's value, a sequence's index)."""
    __slots__ = ("mapping", "anchor", "nodes", "height", "index", "key", "keys", "at_key")

    def __init__(self, mapping: bool, anchor):
        self.mapping, self.anchor = mapping, anchor
        self.nodes, self.height = 1, 1
        self.index, self.key, self.keys, self.at_key = -1, None, {}, True

    @property
    def loc(self):
        return self.key if self.mapping else self.index


def check_events(text: str, loader_class=yaml.SafeLoader, max_depth: int = MAX_DEPTH,
                 max_nodes: int = MAX_NODES) -> None:
    """Raise InputLimitError when the YAML ``text`` nests deeper than ``max_depth``, holds
    more than ``max_nodes`` nodes with its aliases expanded, has a recursive alias or a
    key twice in one mapping. A syntax error is left to the loader (``yaml.YAMLError``
    propagates: the events before it were within the limits)."""
    loader = loader_class(text)
    stack: list[_Frame] = []
    anchors: dict[str, tuple[int, int]] = {}     # anchor -> (expanded nodes, height)
    total = 0
    try:
        while True:
            event = loader.get_event()
            if event is None or isinstance(event, yaml.StreamEndEvent):
                return
            if isinstance(event, (yaml.StreamStartEvent, yaml.DocumentStartEvent,
                                  yaml.DocumentEndEvent)):
                continue
            if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                frame = stack.pop()
                if frame.anchor is not None:
                    anchors[frame.anchor] = (frame.nodes, frame.height)
                _finished(stack, frame.nodes, frame.height)
                continue
            line = event.start_mark.line + 1 if event.start_mark else None
            key = _child_starts(stack, event, line)
            where = _dotted([f.loc for f in stack] + ([] if key is None else [key]))
            if isinstance(event, yaml.AliasEvent):
                if event.anchor not in anchors:
                    if any(f.anchor == event.anchor for f in stack):
                        raise InputLimitError(line, where, f"alias *{event.anchor} refers to a "
                                              "node that contains it (a recursive structure); "
                                              "write the value out")
                    return                       # undefined: the loader reports it
                nodes, height = anchors[event.anchor]
            elif isinstance(event, yaml.ScalarEvent):
                nodes, height = 1, 0
                if event.anchor is not None:
                    anchors[event.anchor] = (1, 0)
            else:                                # a mapping or sequence starts
                nodes, height = 1, 1
            total += nodes
            if total > max_nodes:
                what = (f"alias *{event.anchor} expands to {nodes:,} nodes, and the file to more "
                        if isinstance(event, yaml.AliasEvent) else "the file holds more ")
                raise InputLimitError(line, where, f"{what}than {max_nodes:,} YAML nodes, the "
                                      "limit for suite and protocol files (aliases of aliases: "
                                      "a 'billion laughs' file?)")
            if len(stack) + height > max_depth:
                raise InputLimitError(line, where, f"nested more than {max_depth} levels deep, "
                                      "the limit for suite and protocol files")
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                stack.append(_Frame(isinstance(event, yaml.MappingStartEvent), event.anchor))
            else:
                _finished(stack, nodes, height)
    finally:
        loader.dispose()


def _child_starts(stack: list[_Frame], event, line) -> object:
    """Move the innermost collection to its next child; for a mapping's key, return it
    (after refusing one the mapping already has), else None."""
    if not stack:
        return None
    frame = stack[-1]
    if not frame.mapping:
        frame.index += 1
        return None
    if not frame.at_key:                         # the value of frame.key
        frame.at_key = True
        return None
    frame.at_key = False
    key = event.value if isinstance(event, yaml.ScalarEvent) else None
    frame.key = key if key is not None else "?"
    if key is not None:
        if key in frame.keys:
            where = _dotted([f.loc for f in stack[:-1]] + [key])
            raise InputLimitError(line, where, f"duplicate key (first given on line "
                                  f"{frame.keys[key]}); YAML would keep the last one silently")
        frame.keys[key] = line
    return key


def _finished(stack: list[_Frame], nodes: int, height: int) -> None:
    """A child of ``nodes`` expanded nodes and ``height`` levels is complete."""
    if stack:
        stack[-1].nodes += nodes
        stack[-1].height = max(stack[-1].height, height + 1)


class UnreadableValue(ValueError):
    """A scalar YAML parses but cannot turn into a value (an integer of more than 4,300
    digits, which Python refuses to convert; a date such as 2026-13-45): ``line`` and
    ``field`` locate it."""

    def __init__(self, line: int | None, field: str, message: str):
        self.line, self.field, self.message = line, field, message
        super().__init__(message)


def construct_checked(loader, node):
    """``loader.construct_document(node)``; a ValueError or OverflowError from a value's
    constructor becomes UnreadableValue naming the first scalar that cannot be read."""
    try:
        return loader.construct_document(node)
    except (ValueError, OverflowError) as err:
        line, field = _failing_scalar(node)
        raise UnreadableValue(line, field, f"YAML cannot read this value: {err}") from None


def _failing_scalar(root) -> tuple[int | None, str]:
    constructor = yaml.constructor.SafeConstructor()
    todo, seen = [(root, [])], set()
    while todo:
        node, loc = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            try:
                constructor.construct_object(node)
            except (ValueError, OverflowError, yaml.YAMLError):
                return node.start_mark.line + 1, _dotted(loc)
        elif isinstance(node, yaml.MappingNode):
            todo += [(v, loc + [getattr(k, "value", "?")]) for k, v in reversed(node.value)]
            todo += [(k, loc) for k, _ in reversed(node.value)]
        elif isinstance(node, yaml.SequenceNode):
            todo += [(v, loc + [i]) for i, v in reversed(list(enumerate(node.value)))]
    return root.start_mark.line + 1, ""
