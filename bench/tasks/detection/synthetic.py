"""A small synthetic PASCAL VOC written in the devkit's own layout (FlatteNet Table X).

Tests and the ``smoke`` profile of the detection table run on these files, so they go
through the same loading code as the real VOC 2007 + 2012 (``bench.tasks.detection.data.voc``); never
compared with published accuracy.

Design reasoning, readings and measurements: docs/design-notes.md, "Module notes",
bench/tasks/detection/synthetic.py.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .labels import VOC_CLASSES
from ..segmentation.synthetic import class_palette

__all__ = ["VOC_CLASSES", "write_voc"]


_POSES = ("Unspecified", "Left", "Right", "Frontal", "Rear")
# colour 0 is the background's, 1..20 the classes'; a salt of its own so the colours do
# not follow any segmentation writer's
_PALETTE = class_palette(len(VOC_CLASSES) + 1, salt=7)


def _iou(a, b) -> float:
    """IoU of two [x0, y0, x1, y1] boxes (inclusive pixel extents)."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
    return inter / float(area(a) + area(b) - inter)


def _scene(rng: np.random.Generator, h: int, w: int, small_difficult: bool):
    """(RGB image, objects): objects are dicts with ``label``, ``box`` (0-based inclusive
    pixel extent inside the image), ``truncated``, ``difficult``."""
    # low-saturation background: the palette's background colour pulled towards grey,
    # with smooth blotches so it is not flat
    # (mostly brightness, little colour, so no class colour is mimicked)
    base = 0.25 * _PALETTE[0].astype(np.float32) + 0.75 * 128.0
    img = np.broadcast_to(base, (h, w, 3)).astype(np.float32).copy()
    grid = (max(2, h // 24), max(2, w // 24))
    blotch = (rng.normal(0.0, 14.0, size=(*grid, 1))
              + rng.normal(0.0, 4.0, size=(*grid, 3))).astype(np.float32)
    img += cv2.resize(blotch, (w, h), interpolation=cv2.INTER_CUBIC)

    objects: list[dict] = []
    taken: list[list[int]] = []
    wanted = int(rng.integers(1, 5))
    for _ in range(40):
        if len(objects) == wanted:
            break
        label = int(rng.integers(len(VOC_CLASSES)))
        bw = int(w * rng.uniform(0.18, 0.5))
        bh = int(h * rng.uniform(0.18, 0.5))
        truncate = rng.random() < 0.2
        # a truncated object's centre may sit near the border, so part of it is cut off
        margin_x, margin_y = (0, 0) if truncate else (bw // 2, bh // 2)
        cx = int(rng.integers(margin_x, w - margin_x))
        cy = int(rng.integers(margin_y, h - margin_y))
        full = [cx - bw // 2, cy - bh // 2, cx - bw // 2 + bw - 1, cy - bh // 2 + bh - 1]
        box = [max(0, full[0]), max(0, full[1]), min(w - 1, full[2]), min(h - 1, full[3])]
        if box[2] - box[0] < 8 or box[3] - box[1] < 8:
            continue
        if any(_iou(box, t) >= 0.3 for t in taken):
            continue
        shape = int(rng.integers(2))
        objects.append({"label": label, "box": box, "full": full, "shape": shape,
                        "truncated": box != full, "difficult": False})
        taken.append(box)
    if small_difficult:
        for _ in range(40):
            side = int(rng.integers(10, 17))
            x0 = int(rng.integers(0, w - side))
            y0 = int(rng.integers(0, h - side))
            box = [x0, y0, x0 + side - 1, y0 + side - 1]
            if any(_iou(box, t) > 0.0 for t in taken):
                continue
            objects.append({"label": int(rng.integers(len(VOC_CLASSES))), "box": box,
                            "full": box, "shape": 0, "truncated": False, "difficult": True})
            taken.append(box)
            break

    for obj in objects:
        colour = tuple(float(v) for v in _PALETTE[obj["label"] + 1])
        x0, y0, x1, y1 = obj["full"]
        if obj["shape"] == 0:
            cv2.rectangle(img, (x0, y0), (x1, y1), colour, -1)
        else:
            # an ellipse touching its (odd- or even-sized) box on all four sides
            cv2.ellipse(img, (((x0 + x1) / 2.0, (y0 + y1) / 2.0),
                              (float(x1 - x0 + 1), float(y1 - y0 + 1)), 0.0), colour, -1)
    light = rng.uniform(0.9, 1.1, size=(3, 3)).astype(np.float32)
    img *= cv2.resize(light, (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
    img += rng.normal(0.0, 5.0, size=img.shape).astype(np.float32)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8), objects


def _xml(year: str, image_id: str, w: int, h: int, objects: list[dict],
         rng: np.random.Generator) -> str:
    lines = ["<annotation>",
             f"\t<folder>VOC{year}</folder>",
             f"\t<filename>{image_id}.jpg</filename>",
             "\t<source>",
             f"\t\t<database>The VOC{year} Database</database>",
             f"\t\t<annotation>PASCAL VOC{year}</annotation>",
             "\t\t<image>synthetic</image>",
             "\t</source>",
             "\t<size>",
             f"\t\t<width>{w}</width>",
             f"\t\t<height>{h}</height>",
             "\t\t<depth>3</depth>",
             "\t</size>",
             "\t<segmented>0</segmented>"]
    for obj in objects:
        x0, y0, x1, y1 = obj["box"]
        lines += ["\t<object>",
                  f"\t\t<name>{VOC_CLASSES[obj['label']]}</name>",
                  f"\t\t<pose>{_POSES[int(rng.integers(len(_POSES)))]}</pose>",
                  f"\t\t<truncated>{int(obj['truncated'])}</truncated>",
                  f"\t\t<difficult>{int(obj['difficult'])}</difficult>",
                  "\t\t<bndbox>",
                  # the devkit counts pixels from 1
                  f"\t\t\t<xmin>{x0 + 1}</xmin>",
                  f"\t\t\t<ymin>{y0 + 1}</ymin>",
                  f"\t\t\t<xmax>{x1 + 1}</xmax>",
                  f"\t\t\t<ymax>{y1 + 1}</ymax>",
                  "\t\t</bndbox>",
                  "\t</object>"]
    lines.append("</annotation>")
    return "\n".join(lines) + "\n"


def _write_lists(folder: Path, lists: dict[str, list[str]]) -> None:
    main = folder / "ImageSets" / "Main"
    main.mkdir(parents=True, exist_ok=True)
    for name, ids in lists.items():
        (main / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))


def write_voc(root, seed: int = 0, num_trainval: int = 8, num_test: int = 4,
              years=("2007", "2012"), size_range=(160, 320)) -> Path:
    """Write ``root/VOCdevkit/VOC{year}`` for each of ``years`` (2007: trainval and test,
    other years: trainval) with ``num_trainval`` / ``num_test`` images, sides drawn in
    ``size_range``; ids as the devkit's (``000005`` for 2007, ``2008_000123`` later).
    ``trainval`` is split in ``train`` (first half) and ``val``. Returns ``root``."""
    root = Path(root)
    lo, hi = int(size_range[0]), int(size_range[1])
    if not 32 <= lo <= hi:
        raise ValueError(f"size_range must satisfy 32 <= lo <= hi, got {size_range}")
    n = 0
    for year in years:
        year = str(year)
        folder = root / "VOCdevkit" / f"VOC{year}"
        rng = np.random.default_rng([seed, int(year)])
        splits = [("trainval", num_trainval)]
        if year == "2007":                        # VOC2012 test annotations are not public
            splits.append(("test", num_test))
        lists: dict[str, list[str]] = {}
        for split, count in splits:
            ids = []
            for i in range(int(count)):
                image_id = (f"{n + 1:06d}" if year == "2007"
                            else f"{int(year) - 4 + n % 4}_{1000 + 13 * n:06d}")
                n += 1
                h, w = int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))
                image, objects = _scene(rng, h, w, small_difficult=(i % 3 == 0))
                path = folder / "JPEGImages" / f"{image_id}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, 95]):
                    raise OSError(f"could not write {path}")
                xml = folder / "Annotations" / f"{image_id}.xml"
                xml.parent.mkdir(parents=True, exist_ok=True)
                xml.write_text(_xml(year, image_id, w, h, objects, rng))
                ids.append(image_id)
            lists[split] = ids
        half = (len(lists["trainval"]) + 1) // 2
        lists["train"], lists["val"] = lists["trainval"][:half], lists["trainval"][half:]
        _write_lists(folder, lists)
    return root
