"""Small synthetic segmentation datasets written in the official file layouts.

Tests and the ``smoke`` profile of the segmentation tables (HRNetV2 Cityscapes /
PASCAL-Context / LIP, GSTO, DPN, FlatteNet) run on these files, so they go through the
same loading code as the real data (``cityscapes.py``, ``pascal_context.py``, ``lip.py``)
without it. Never compared with published accuracy.

``write_cityscapes``, ``write_pascal_context``, ``write_lip`` and
``write_segmentation_all`` write the layouts.

Design reasoning, readings and measurements: docs/design-notes.md, "Module notes",
bench/tasks/segmentation/synthetic.py.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .labels import CITYSCAPES_LABELS, PASCAL_CONTEXT_CLASSES

__all__ = ["write_cityscapes", "write_pascal_context", "write_lip",
           "write_segmentation_all", "class_palette"]

# The palette seed is fixed, not the writer's: a class must look the same in every
# dataset written, or train and val (or two seeds) would teach different colours.
_PALETTE_SEED = 20240607


def class_palette(num_values: int, salt: int = 0) -> np.ndarray:
    """(num_values, 3) uint8 RGB colour per stored label value, fixed for ``salt``.

    Farthest-point picks from random candidates, so any two classes differ by about
    50+ (Euclidean, 0..255 scale) even for PASCAL-Context's 60 values, well above what
    illumination and noise move a pixel; channels in 30..225 so they rarely clip."""
    rng = np.random.default_rng([_PALETTE_SEED, salt])
    candidates = rng.integers(30, 226, size=(4096, 3)).astype(np.float64)
    chosen = [0]
    nearest = np.linalg.norm(candidates - candidates[0], axis=1)
    for _ in range(num_values - 1):
        pick = int(nearest.argmax())
        chosen.append(pick)
        nearest = np.minimum(nearest, np.linalg.norm(candidates - candidates[pick], axis=1))
    return candidates[chosen].astype(np.uint8)


def _render(rng: np.random.Generator, label: np.ndarray, palette: np.ndarray,
            noise: float = 6.0) -> np.ndarray:
    """RGB image of a label map: class colour x smooth illumination (0.9..1.1) +
    Gaussian pixel noise, lightly blurred so region edges are not perfectly sharp."""
    h, w = label.shape
    img = palette[label].astype(np.float32)
    light = rng.uniform(0.9, 1.1, size=(3, 3)).astype(np.float32)
    img *= cv2.resize(light, (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
    img += rng.normal(0.0, noise, size=img.shape).astype(np.float32)
    img = cv2.GaussianBlur(img, (3, 3), 0)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def _write(path: Path, array: np.ndarray, rgb: bool = True) -> None:
    """PNG or JPEG (by suffix); ``rgb`` arrays are converted to OpenCV's BGR."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if rgb and array.ndim == 3 else array
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix == ".jpg" else []
    if not cv2.imwrite(str(path), data, params):
        raise OSError(f"could not write {path}")


def _ellipse(label, center, axes, value, angle=0.0) -> None:
    cv2.ellipse(label, (int(center[0]), int(center[1])),
                (max(1, int(axes[0])), max(1, int(axes[1]))), float(angle), 0, 360,
                int(value), -1)


def _rect(label, x0, y0, x1, y1, value) -> None:
    cv2.rectangle(label, (int(x0), int(y0)), (int(x1), int(y1)), int(value), -1)


# --------------------------------------------------------------------------- Cityscapes
_CS = {name: label_id for name, label_id, _ in CITYSCAPES_LABELS}
_CITIES = {"train": ("aachen", "bochum"), "val": ("frankfurt", "lindau")}


def _cityscapes_scene(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """labelIds of a street scene: sky, skyline of buildings/walls/vegetation, road with
    sidewalks and terrain, then objects (cars, trucks, buses, people, riders, bicycles,
    poles with signs and lights, fences), an ego-vehicle strip and unlabelled patches."""
    lab = np.full((h, w), _CS["sky"], dtype=np.uint8)
    horizon = int(h * rng.uniform(0.38, 0.52))
    x = 0
    while x < w:                                   # skyline
        bw = int(w * rng.uniform(0.06, 0.2))
        top = int(h * rng.uniform(0.05, 0.3))
        kind = rng.choice(["building", "building", "vegetation", "wall"])
        if kind == "vegetation":
            _ellipse(lab, (x + bw / 2, (top + horizon) / 2), (bw / 1.6, (horizon - top) / 1.6),
                     _CS[kind])
            _rect(lab, x, (top + horizon) // 2, x + bw, horizon, _CS[kind])
        else:
            _rect(lab, x, top, x + bw, horizon, _CS[kind])
        x += bw
    lab[horizon:] = _CS["sidewalk"]
    vanish = w * rng.uniform(0.35, 0.65)
    road = np.array([[vanish - w * 0.05, horizon], [vanish + w * 0.05, horizon],
                     [w * rng.uniform(0.9, 1.1), h], [w * rng.uniform(-0.1, 0.1), h]])
    cv2.fillPoly(lab, [road.astype(np.int32)], _CS["road"])
    for _ in range(int(rng.integers(0, 3))):       # terrain patches at the roadside
        side = rng.choice([0.05, 0.95])
        _ellipse(lab, (w * side, rng.uniform(horizon, h)), (w * 0.06, h * 0.05),
                 _CS["terrain"])
    if rng.random() < 0.5:
        _rect(lab, 0, horizon - h * 0.06, w * rng.uniform(0.1, 0.3), horizon, _CS["fence"])
    for _ in range(int(rng.integers(1, 4))):       # poles, with a sign or a light
        px, pw = w * rng.uniform(0.05, 0.95), max(2, w // 120)
        ptop = h * rng.uniform(0.1, 0.3)
        pbot = horizon + h * rng.uniform(0.05, 0.2)
        _rect(lab, px, ptop, px + pw, pbot, _CS["pole"])
        kind = "traffic sign" if rng.random() < 0.5 else "traffic light"
        _rect(lab, px - pw * 2, ptop, px + pw * 3, ptop + h * 0.05, _CS[kind])
    vehicles = ["car"] * 4 + ["truck", "bus"]
    for _ in range(int(rng.integers(1, 4))):       # vehicles on the road, nearer = larger
        y1 = rng.uniform(horizon + h * 0.1, h * 0.95)
        size = (y1 - horizon) / (h - horizon)
        vw, vh = w * 0.2 * size + 6, h * 0.22 * size + 4
        cx = vanish + (rng.uniform(-0.5, 0.5)) * w * size
        kind = vehicles[int(rng.integers(len(vehicles)))]
        _rect(lab, cx - vw / 2, y1 - vh * (1.5 if kind == "bus" else 1), cx + vw / 2, y1,
              _CS[kind])
    for _ in range(int(rng.integers(1, 4))):       # people, riders with bicycles
        y1 = rng.uniform(horizon + h * 0.05, h * 0.9)
        size = (y1 - horizon) / (h - horizon)
        ph = h * 0.35 * size + 8
        cx = w * rng.uniform(0.05, 0.95)
        if rng.random() < 0.3:
            _ellipse(lab, (cx, y1 - ph * 0.15), (ph * 0.3, ph * 0.15), _CS["bicycle"])
            _ellipse(lab, (cx, y1 - ph * 0.55), (ph * 0.12, ph * 0.3), _CS["rider"])
        else:
            _ellipse(lab, (cx, y1 - ph / 2), (ph * 0.13, ph / 2), _CS["person"])
    for _ in range(int(rng.integers(0, 3))):       # static objects, unlabelled patches
        kind = "static" if rng.random() < 0.5 else "unlabeled"
        cx, cy = w * rng.uniform(0, 1), h * rng.uniform(0.3, 0.9)
        _rect(lab, cx, cy, cx + w * 0.04, cy + h * 0.05, _CS[kind])
    lab[int(h * 0.92):] = _CS["ego vehicle"]
    return lab


def write_cityscapes(root, seed: int = 0, num_train: int = 6, num_val: int = 3,
                     size=(128, 256), sizes=None) -> Path:
    """Cityscapes layout under ``root`` with images of ``size`` (H, W): train images in
    two cities, val in two others; labelIds PNGs (ignored ids included). ``sizes``, a
    list of (H, W), gives image i of each split ``sizes[i % len(sizes)]`` instead (e.g.
    portrait images, whose scaled copies are narrower than a landscape crop)."""
    root = Path(root)
    rng = np.random.default_rng([seed, 1])
    palette = class_palette(34, salt=1)
    shapes = [(int(a), int(b)) for a, b in (sizes or [size])]
    for split, count in (("train", num_train), ("val", num_val)):
        cities = _CITIES[split]
        for i in range(count):
            h, w = shapes[i % len(shapes)]
            city = cities[i % len(cities)]
            stem = f"{city}_{i:06d}_{19 + 7 * i:06d}"
            label = _cityscapes_scene(rng, h, w)
            image = _render(rng, label, palette)
            _write(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", image)
            _write(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", label,
                   rgb=False)
    return root


# --------------------------------------------------------------------------- PASCAL-Context
def _pc(name: str) -> int:
    """Stored value (1..59) of a PASCAL-Context class."""
    return PASCAL_CONTEXT_CLASSES.index(name) + 1


_PC_TOP = ("sky", "ceiling", "wall", "mountain", "tree", "building")
_PC_BOTTOM = ("grass", "ground", "floor", "road", "water", "snow", "sidewalk")


def _pascal_context_scene(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    top = _pc(_PC_TOP[int(rng.integers(len(_PC_TOP)))])
    bottom = _pc(_PC_BOTTOM[int(rng.integers(len(_PC_BOTTOM)))])
    lab = np.full((h, w), top, dtype=np.uint8)
    horizon = int(h * rng.uniform(0.35, 0.65))
    lab[horizon:] = bottom
    stuff = {top, bottom}
    objects = [v for v in range(1, 60) if v not in stuff]
    for _ in range(int(rng.integers(2, 6))):
        value = objects[int(rng.integers(len(objects)))]
        cx, cy = w * rng.uniform(0.1, 0.9), h * rng.uniform(0.15, 0.9)
        ax, ay = w * rng.uniform(0.06, 0.22), h * rng.uniform(0.06, 0.22)
        shape = int(rng.integers(3))
        if shape == 0:
            _ellipse(lab, (cx, cy), (ax, ay), value, angle=rng.uniform(0, 180))
        elif shape == 1:
            _rect(lab, cx - ax, cy - ay, cx + ax, cy + ay, value)
        else:
            tri = np.array([[cx, cy - ay], [cx + ax, cy + ay], [cx - ax, cy + ay]])
            cv2.fillPoly(lab, [tri.astype(np.int32)], value)
    for _ in range(int(rng.integers(1, 3))):       # unlabelled: background (0)
        cx, cy = w * rng.uniform(0, 1), h * rng.uniform(0, 1)
        _rect(lab, cx, cy, cx + w * rng.uniform(0.05, 0.15), cy + h * rng.uniform(0.05, 0.15),
              0)
    return lab


def write_pascal_context(root, seed: int = 0, num_train: int = 6, num_val: int = 3,
                         size_range=(120, 200)) -> Path:
    """PASCAL-Context layout (converted label PNGs) under ``root``; image sides drawn in
    ``size_range``; ids in VOC's ``2008_000123`` form."""
    root = Path(root)
    rng = np.random.default_rng([seed, 2])
    palette = class_palette(60, salt=2)
    lo, hi = int(size_range[0]), int(size_range[1])
    n = 0
    for split, count in (("train", num_train), ("val", num_val)):
        ids = []
        for _ in range(count):
            h, w = int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))
            image_id = f"{2008 + n % 3}_{100 + 17 * n:06d}"
            n += 1
            label = _pascal_context_scene(rng, h, w)
            _write(root / "JPEGImages" / f"{image_id}.jpg", _render(rng, label, palette))
            _write(root / "SegmentationClassContext" / f"{image_id}.png", label, rgb=False)
            ids.append(image_id)
        lists = root / "ImageSets" / "SegmentationContext"
        lists.mkdir(parents=True, exist_ok=True)
        (lists / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


# --------------------------------------------------------------------------- LIP
def _lip_palette() -> np.ndarray:
    palette = class_palette(20, salt=3)
    for left, right in ((14, 15), (16, 17), (18, 19)):
        palette[right] = palette[left]             # limbs look alike; position decides
    return palette


def _lip_person(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Label map of one person facing the viewer: their left (14, 16, 18) is on the
    image's right."""
    lab = np.zeros((h, w), dtype=np.uint8)
    cx = w * rng.uniform(0.42, 0.58)
    top = h * rng.uniform(0.03, 0.08)
    unit = (h - top) * rng.uniform(0.9, 0.97) / 8.0        # body height = 8 head units
    thick = max(2, int(unit * 0.45))
    head_c = (cx, top + unit * 0.55)
    sho_y, hip_y = top + unit * 1.4, top + unit * 4.0
    half_sho, half_hip = unit * 0.95, unit * 0.7
    # legs (drawn first: pants / skirt cover the thighs)
    for side, leg, shoe in ((1, 16, 18), (-1, 17, 19)):
        hip = (cx + side * half_hip * 0.6, hip_y)
        knee = (hip[0] + side * unit * rng.uniform(0.0, 0.4), hip_y + unit * 1.8)
        ankle = (knee[0] + side * unit * rng.uniform(-0.2, 0.4), hip_y + unit * 3.6)
        for a, b in ((hip, knee), (knee, ankle)):
            cv2.line(lab, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), leg, thick + 1)
        _ellipse(lab, (ankle[0] + side * unit * 0.15, ankle[1] + unit * 0.15),
                 (unit * 0.35, unit * 0.18), shoe)
    lower = 12 if rng.random() < 0.3 else 9        # skirt or pants
    if lower == 9:
        poly = np.array([[cx - half_hip, hip_y], [cx + half_hip, hip_y],
                         [cx + half_hip * 1.1, hip_y + unit * 2.2],
                         [cx - half_hip * 1.1, hip_y + unit * 2.2]])
    else:
        poly = np.array([[cx - half_hip, hip_y], [cx + half_hip, hip_y],
                         [cx + half_hip * 1.6, hip_y + unit * 1.5],
                         [cx - half_hip * 1.6, hip_y + unit * 1.5]])
    cv2.fillPoly(lab, [poly.astype(np.int32)], lower)
    # arms: shoulder -> elbow -> wrist, hanging or raised
    for side, arm in ((1, 14), (-1, 15)):
        sho = (cx + side * half_sho, sho_y + unit * 0.2)
        ang = np.deg2rad(rng.uniform(5, 70))
        elb = (sho[0] + side * np.sin(ang) * unit * 1.5, sho[1] + np.cos(ang) * unit * 1.5)
        ang2 = ang + np.deg2rad(rng.uniform(-40, 60))
        wri = (elb[0] + side * np.sin(ang2) * unit * 1.3, elb[1] + np.cos(ang2) * unit * 1.3)
        for a, b in ((sho, elb), (elb, wri)):
            cv2.line(lab, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), arm, thick)
        if rng.random() < 0.25:
            _ellipse(lab, wri, (thick * 0.8, thick * 0.8), 3)          # glove
    upper = (5, 5, 7, 6, 10)[int(rng.integers(5))]  # upper clothes, coat, dress, jumpsuit
    bottom = hip_y + (unit * 2.0 if upper in (6, 10) else unit * 0.3)
    torso = np.array([[cx - half_sho, sho_y], [cx + half_sho, sho_y],
                      [cx + half_hip * 1.05, bottom], [cx - half_hip * 1.05, bottom]])
    cv2.fillPoly(lab, [torso.astype(np.int32)], upper)
    if rng.random() < 0.2:
        _rect(lab, cx - half_sho * 0.6, sho_y - unit * 0.1, cx + half_sho * 0.6,
              sho_y + unit * 0.3, 11)                                    # scarf
    _ellipse(lab, (head_c[0], head_c[1] - unit * 0.12), (unit * 0.5, unit * 0.55), 2)  # hair
    _ellipse(lab, (head_c[0], head_c[1] + unit * 0.1), (unit * 0.36, unit * 0.45), 13)
    if rng.random() < 0.2:
        _rect(lab, head_c[0] - unit * 0.32, head_c[1], head_c[0] + unit * 0.32,
              head_c[1] + unit * 0.12, 4)                                # sunglasses
    if rng.random() < 0.25:
        _ellipse(lab, (head_c[0], head_c[1] - unit * 0.45), (unit * 0.6, unit * 0.25), 1)
    return lab


def write_lip(root, seed: int = 0, num_train: int = 6, num_val: int = 3,
              size_range=(100, 160)) -> Path:
    """LIP layout under ``root``: portrait images (height in ``size_range``, width
    0.55-0.8 of it), one person each; val image 0 is a single-channel JPEG."""
    root = Path(root)
    rng = np.random.default_rng([seed, 3])
    palette = _lip_palette()
    lo, hi = int(size_range[0]), int(size_range[1])
    n = 0
    for split, count in (("train", num_train), ("val", num_val)):
        ids = []
        for i in range(count):
            h = int(rng.integers(lo, hi + 1))
            w = int(h * rng.uniform(0.55, 0.8))
            image_id = f"{100 + 37 * n}_{1000000 + 4099 * n}"
            n += 1
            label = _lip_person(rng, h, w)
            image = _render(rng, label, palette)
            if split == "val" and i == 0:
                image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
            _write(root / "TrainVal_images" / f"{split}_images" / f"{image_id}.jpg", image)
            _write(root / "TrainVal_parsing_annotations" / f"{split}_segmentations" /
                   f"{image_id}.png", label, rgb=False)
            ids.append(image_id)
        (root / "TrainVal_images" / f"{split}_id.txt").write_text(
            "".join(f"{i}\n" for i in ids))
    return root


def write_segmentation_all(root, seed: int = 0, num_train: int = 6, num_val: int = 3
                           ) -> dict[str, Path]:
    """Cityscapes, PASCAL-Context and LIP under ``root/{cityscapes,pascal_context,lip}``
    (the default data folders of the segmentation protocols). Returns {name: root}."""
    root = Path(root)
    sizes = {"seed": seed, "num_train": num_train, "num_val": num_val}
    return {
        "cityscapes": write_cityscapes(root / "cityscapes", **sizes),
        "pascal_context": write_pascal_context(root / "pascal_context", **sizes),
        "lip": write_lip(root / "lip", **sizes),
    }
