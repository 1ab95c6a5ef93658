"""The one pattern for names that become part of a path (issue 29).

A suite's ``suite``, a protocol's ``name`` (its file's stem by default), a row's key (made
from its ``name``), a model name and key, the suite's protocol keys and column ids (plot
file names), a released weights ``file``, and what the command line adds (profile, seed
suffix ``seed<N>``, settings tag such as ``epochs=1,batch=8``) all end up in file or
folder names under results/, reports/, work_dirs/ or the weights folder. Each must be a
*name*:

    [A-Za-z0-9_][A-Za-z0-9_.=,-]*      at most 100 characters (ASCII only)

so no path separator, no ``.`` or ``..``, no leading dot (hidden files) and no empty
name. A model given as ``package.module:function`` is two names joined by one colon;
a model key (the name plus its overrides, ``bench.results.safe_name``'d) is at most 150
characters. Suites are checked where they are loaded (``bench.suite``), so a bad name
is an error naming the file, line and field before anything runs; the writers check the
paths themselves as well (``bench.paths``). Imports nothing of HRBench.
"""
from __future__ import annotations

import re

NAME_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.=,-]*"
MAX_NAME_LENGTH = 100
MAX_KEY_LENGTH = 150
_NAME = re.compile(NAME_PATTERN, re.ASCII)

RULE = (f"a name that becomes part of a path starts with a letter, digit or underscore and "
        f"goes on with letters, digits and _ . - = , (ASCII, at most {MAX_NAME_LENGTH} "
        "characters; docs/suites.md)")


def name_problem(text: object, max_length: int = MAX_NAME_LENGTH) -> str | None:
    """Why ``text`` is not a name (None when it is one)."""
    if not isinstance(text, str):
        return f"expected a name, got a {type(text).__name__}"
    if not text:
        return f"an empty name; {RULE}"
    if len(text) > max_length:
        return f"{text[:40]!r}... has {len(text)} characters, more than {max_length}; {RULE}"
    if not _NAME.fullmatch(text):
        return f"{text!r} is not a name: {RULE}"
    return None


def check_name(text: str, max_length: int = MAX_NAME_LENGTH) -> str:
    """``text`` when it is a name; ValueError saying why not (pydantic validators)."""
    problem = name_problem(text, max_length)
    if problem:
        raise ValueError(problem)
    return text


def check_model_name(text: str) -> str:
    """A registered model name, or ``package.module:function`` (two names, one colon)."""
    if isinstance(text, str) and text.count(":") == 1:
        module, function = text.split(":")
        for part in (module, function):
            problem = name_problem(part)
            if problem:
                raise ValueError(f"model {text!r}: {problem}")
        return text
    return check_name(text)


def is_name(text: object) -> bool:
    return name_problem(text) is None
