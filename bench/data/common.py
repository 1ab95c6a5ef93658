"""What the datasets of every task share: the ImageNet normalisation statistics their
images are normalised with, and the check that a dataset file exists."""
from __future__ import annotations

import os
from pathlib import Path

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def require_path(path: str | os.PathLike, what: str) -> Path:
    """``Path(path)`` if it exists, else a FileNotFoundError that names it."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{what} not found: expected {p}")
    return p
