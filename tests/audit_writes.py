"""An audit hook that records every file this process writes, for the write-confinement
and fuzz tests (issue 29). ``recording()`` collects ``(event, absolute path)`` pairs:
files opened for writing (``open``, ``os.open``), renames and replaces, removals, folder
creation and ``shutil.rmtree``, whoever calls them."""
from __future__ import annotations

import contextlib
import os
import sys

_EVENTS: list | None = None        # (event, path) while a test records
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _path(arg, dir_fd=None) -> str | None:
    """The absolute path an event names (relative to ``dir_fd``'s folder when given:
    ``shutil.rmtree`` removes by names relative to an open folder)."""
    if isinstance(arg, int) or arg is None:
        return None                     # a file descriptor: opened earlier, recorded then
    try:
        name = os.fsdecode(arg)
        if isinstance(dir_fd, int) and not os.path.isabs(name):
            return os.path.normpath(os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), name))
        return os.path.abspath(name)
    except (TypeError, ValueError, OSError):
        return None


def _hook(event: str, args: tuple) -> None:
    if _EVENTS is None:
        return
    if event == "open":
        path, mode, flags = (tuple(args) + (None, None))[:3]
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                 (mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS)
        if writes and _path(path):
            _EVENTS.append((event, _path(path)))
    elif event in ("os.rename", "os.link"):           # (src, dst, src_dir_fd, dst_dir_fd)
        for arg, fd in zip(args[:2], (tuple(args) + (None, None, None, None))[2:4]):
            if _path(arg, fd):
                _EVENTS.append((event, _path(arg, fd)))
    elif event in ("shutil.copyfile", "shutil.move", "os.symlink"):
        for arg in args[:2]:
            if _path(arg):
                _EVENTS.append((event, _path(arg)))
    elif event in ("os.remove", "os.rmdir", "os.mkdir", "shutil.rmtree", "os.truncate",
                   "os.chmod", "os.utime"):
        fd = args[-1] if event in ("os.remove", "os.rmdir", "os.mkdir", "shutil.rmtree") else None
        if args and _path(args[0], fd):
            _EVENTS.append((event, _path(args[0], fd)))


sys.addaudithook(_hook)


@contextlib.contextmanager
def recording():
    """Collect the writes of the ``with`` block (nested blocks share one list)."""
    global _EVENTS
    outer = _EVENTS
    _EVENTS = [] if outer is None else outer
    try:
        yield _EVENTS
    finally:
        _EVENTS = outer
