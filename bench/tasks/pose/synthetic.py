"""Small synthetic pose datasets written in the official file layouts.

The tests and the ``smoke`` profile of every pose table (HRNet, Lite-HRNet, GSTO, DPN,
FlatteNet) run on these files, so they exercise exactly the loading code real data goes
through (``coco.py``, ``mpii.py``, ``lsp.py``, pycocotools, ``gt_valid.mat``) without the
real datasets. Never compared with published accuracy.

``write_coco``, ``write_mpii``, ``write_lsp`` and ``write_all`` write the layouts; every
annotated, visible joint is a white disc centred exactly on its annotated position.

Design reasoning, readings and measurements: docs/design-notes.md, "Module notes",
bench/tasks/pose/synthetic.py.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ...data.transforms import COCO_KEYPOINT_NAMES, COCO_SKELETON, DETECTION_FILE

__all__ = ["SyntheticDataset", "write_coco", "write_mpii", "write_lsp", "write_all",
           "random_body", "draw_person"]

# Points of the synthetic body; each dataset annotates a subset under its own order.
BODY_POINTS = ("head_top", "nose", "l_eye", "r_eye", "l_ear", "r_ear", "upper_neck",
               "thorax", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist",
               "r_wrist", "pelvis", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle",
               "r_ankle")
COCO_POINTS = ("nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder",
               "l_elbow", "r_elbow", "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee",
               "r_knee", "l_ankle", "r_ankle")
MPII_POINTS = ("r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis",
               "thorax", "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder",
               "l_shoulder", "l_elbow", "l_wrist")
LSP_POINTS = ("r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "r_wrist",
              "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist", "upper_neck",
              "head_top")
LIMBS = (("l_shoulder", "l_elbow"), ("l_elbow", "l_wrist"), ("r_shoulder", "r_elbow"),
         ("r_elbow", "r_wrist"), ("l_hip", "l_knee"), ("l_knee", "l_ankle"),
         ("r_hip", "r_knee"), ("r_knee", "r_ankle"), ("upper_neck", "thorax"),
         ("thorax", "pelvis"), ("l_shoulder", "r_shoulder"), ("l_hip", "r_hip"))
MPII_JOINT_CODES = ("rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor",
                    "neck", "head", "rwri", "relb", "rsho", "lsho", "lelb", "lwri")
WHITE = (255, 255, 255)
MAX_BACKGROUND = 170


@dataclass
class SyntheticDataset:
    """What a writer produced: its root, the files it wrote and how many of what."""
    root: Path
    files: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- drawing
def random_body(rng: np.random.Generator, height: float) -> dict:
    """A random pose, as {point name: (x, y)} relative to the pelvis, y down.

    The figure faces the viewer (its left is image +x); limb angles, elbow/knee bends and
    a global tilt are random. The extent from head top to ankles is about ``height``.
    """
    h = float(height)

    def limb(angle_deg: float, side: float) -> np.ndarray:  # 0 = straight down
        a = math.radians(angle_deg)
        return np.array([side * math.sin(a), math.cos(a)])

    face = rng.uniform(-0.015, 0.015) * h
    p = {
        "pelvis": np.array([0.0, 0.0]),
        "thorax": np.array([0.0, -0.30 * h]),
        "upper_neck": np.array([0.0, -0.36 * h]),
        "head_top": np.array([face * 0.5, -0.52 * h]),
        "nose": np.array([face, -0.41 * h]),
        "l_eye": np.array([face + 0.045 * h, -0.455 * h]),
        "r_eye": np.array([face - 0.045 * h, -0.455 * h]),
        "l_ear": np.array([0.10 * h, -0.44 * h]),
        "r_ear": np.array([-0.10 * h, -0.44 * h]),
    }
    for name, side in (("l", 1.0), ("r", -1.0)):
        sho = np.array([side * 0.13 * h, -0.29 * h])
        hip = np.array([side * 0.09 * h, 0.0])
        upper = rng.uniform(10, 150)
        fore = upper + rng.uniform(-110, 60)
        thigh = rng.uniform(-10, 45)
        shin = thigh + rng.uniform(-50, 15)
        elb = sho + 0.17 * h * limb(upper, side)
        wri = elb + 0.15 * h * limb(fore, side)
        kne = hip + 0.25 * h * limb(thigh, side)
        ank = kne + 0.24 * h * limb(shin, side)
        p.update({f"{name}_shoulder": sho, f"{name}_elbow": elb, f"{name}_wrist": wri,
                  f"{name}_hip": hip, f"{name}_knee": kne, f"{name}_ankle": ank})
    tilt = math.radians(rng.uniform(-20, 20))
    rot = np.array([[math.cos(tilt), -math.sin(tilt)], [math.sin(tilt), math.cos(tilt)]])
    return {k: rot @ v for k, v in p.items()}


def _extent(points: dict) -> tuple[np.ndarray, np.ndarray]:
    pts = np.stack(list(points.values()))
    return pts.min(axis=0), pts.max(axis=0)


def _place(body: dict, lo_target: np.ndarray) -> dict:
    lo, _ = _extent(body)
    return {k: v - lo + lo_target for k, v in body.items()}


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Smooth colour gradient + clutter rectangles + pixel noise, all <= MAX_BACKGROUND."""
    low = rng.uniform(20, 130, size=(3, 3, 3)).astype(np.float32)
    img = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1 = x0 + int(rng.integers(8, max(9, width // 3)))
        y1 = y0 + int(rng.integers(8, max(9, height // 3)))
        color = tuple(float(c) for c in rng.uniform(20, 150, size=3))
        cv2.rectangle(img, (x0, y0), (x1, y1), color, thickness=-1)
    img += rng.normal(0.0, 12.0, size=img.shape).astype(np.float32)
    return np.clip(img, 0, MAX_BACKGROUND).astype(np.uint8)


_SHIFT = 4                       # cv2 sub-pixel drawing: coordinates in 1/16 px


def _pt(xy) -> tuple[int, int]:
    return int(round(xy[0] * (1 << _SHIFT))), int(round(xy[1] * (1 << _SHIFT)))


def draw_person(image: np.ndarray, body: dict, rng: np.random.Generator,
                joints_to_mark=(), joint_radius: float | None = None) -> None:
    """Draw a figure in place: torso, head, limbs, then white discs at ``joints_to_mark``
    (positions (x, y) in pixels, disc centre == annotation)."""
    h = float(np.linalg.norm(body["head_top"] - 0.5 * (body["l_ankle"] + body["r_ankle"])))
    thick = max(2, int(round(h / 28)))
    dim = tuple(int(c) for c in rng.integers(60, 150, size=3))
    torso = np.array([_pt(body[k]) for k in ("l_shoulder", "r_shoulder", "r_hip", "l_hip")],
                     dtype=np.int32)
    cv2.fillPoly(image, [torso], dim, lineType=cv2.LINE_AA, shift=_SHIFT)
    head_c = 0.5 * (body["head_top"] + body["upper_neck"])
    head_r = 0.5 * float(np.linalg.norm(body["head_top"] - body["upper_neck"]))
    cv2.circle(image, _pt(head_c), int(round(head_r * (1 << _SHIFT))), dim, -1,
               cv2.LINE_AA, _SHIFT)
    for a, b in LIMBS:
        color = tuple(int(c) for c in rng.integers(40, MAX_BACKGROUND, size=3))
        cv2.line(image, _pt(body[a]), _pt(body[b]), color, thick, cv2.LINE_AA, _SHIFT)
    r = joint_radius if joint_radius is not None else max(2.0, h / 45.0)
    for xy in joints_to_mark:
        cv2.circle(image, _pt(xy), int(round(r * (1 << _SHIFT))), WHITE, -1, cv2.LINE_AA,
                   _SHIFT)


def _write_jpg(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok = cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                     [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise OSError(f"could not write {path}")


def _savemat(path: Path, variables: dict) -> None:
    """``scipy.io.savemat`` with a fixed header: scipy stamps the creation time into the
    116-byte text header, which would make the bytes depend on the clock."""
    import io

    from scipy.io import savemat
    buf = io.BytesIO()
    savemat(buf, variables)
    data = bytearray(buf.getvalue())
    text = b"MATLAB 5.0 MAT-file, written by bench.tasks.pose.synthetic"
    data[:116] = text.ljust(116, b" ")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))


def _image_size(rng, size_range) -> tuple[int, int]:
    lo, hi = int(size_range[0]), int(size_range[1])
    return int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))   # W, H


def _bodies_in_slots(rng, width: int, height: int, n: int, margin: float = 0.06):
    """n figures side by side, each inside its own horizontal slot of the image."""
    bodies = []
    slot = width / n
    for i in range(n):
        body = random_body(rng, 100.0)
        lo, hi = _extent(body)
        size = hi - lo
        fit = min(slot * (1 - 2 * margin) / size[0], height * (1 - 2 * margin) / size[1])
        s = fit * rng.uniform(0.75, 1.0)
        body = {k: v * s for k, v in body.items()}
        lo, hi = _extent(body)
        size = hi - lo
        mx, my = slot * margin, height * margin
        x0 = i * slot + rng.uniform(mx, max(mx, slot - size[0] - mx))
        y0 = rng.uniform(my, max(my, height - size[1] - my))
        bodies.append(_place(body, np.array([x0, y0])))
    return bodies


def _box_of(body: dict, width: int, height: int, pad: float) -> list[float]:
    lo, hi = _extent(body)
    lo, hi = np.maximum(lo - pad, 0), np.minimum(hi + pad, [width - 1, height - 1])
    return [round(float(lo[0]), 2), round(float(lo[1]), 2),
            round(float(hi[0] - lo[0]), 2), round(float(hi[1] - lo[1]), 2)]


def _int_pt(xy) -> np.ndarray:
    return np.round(np.asarray(xy, dtype=np.float64))


# --------------------------------------------------------------------------- COCO
def write_coco(root, num_images: int = 8, persons_per_image=(1, 3), seed: int = 0,
               splits=("train2017", "val2017"), image_size=(128, 256),
               crowd_per_split: int = 1, zero_keypoint_prob: float = 0.5,
               false_boxes_per_image: int = 2) -> SyntheticDataset:
    """Write a COCO-format person-keypoints dataset under ``root`` (the COCO folder).

    ``num_images`` per split; ``persons_per_image`` an int or an inclusive (min, max);
    ``image_size`` the (min, max) side in pixels. Returns the files and counts, with
    ``counts['<split>/valid']`` the persons that must survive the reference filters
    (non-crowd, with keypoints), ``'<split>/crowd'``, ``'<split>/zero_keypoints'``,
    ``'detections'``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    ppi = (persons_per_image, persons_per_image) if isinstance(persons_per_image, int) \
        else tuple(persons_per_image)
    out = SyntheticDataset(root)
    categories = [{"supercategory": "person", "id": 1, "name": "person",
                   "keypoints": list(COCO_KEYPOINT_NAMES),
                   "skeleton": [list(s) for s in COCO_SKELETON]}]
    used_ids: set[int] = set()
    ann_id = 1
    detections: list[dict] = []
    for split in splits:
        images, annotations = [], []
        counts = {"valid": 0, "crowd": 0, "zero_keypoints": 0}
        crowd_images = set(rng.choice(num_images, size=min(crowd_per_split, num_images),
                                      replace=False).tolist()) if crowd_per_split else set()
        for i in range(num_images):
            while True:   # COCO-like 6-digit ids, unique over all splits
                image_id = int(rng.integers(1, 581930))
                if image_id not in used_ids:
                    used_ids.add(image_id)
                    break
            width, height = _image_size(rng, image_size)
            img = _background(rng, width, height)
            file_name = f"{image_id:012d}.jpg"
            images.append({"license": 1, "file_name": file_name, "height": height,
                           "width": width, "date_captured": "2013-11-14 11:18:45",
                           "id": image_id})
            image_anns: list[dict] = []
            # small people in the background first, so the main figures draw over them
            if rng.random() < zero_keypoint_prob:
                small = random_body(rng, rng.uniform(12, 20))
                lo, hi = _extent(small)
                offset = np.array([rng.uniform(0, width - (hi - lo)[0] - 1),
                                   rng.uniform(0, height - (hi - lo)[1] - 1)])
                small = _place(small, offset)
                draw_person(img, small, rng)
                bbox = _box_of(small, width, height, pad=1.5)
                image_anns.append(_coco_ann(image_id, bbox, np.zeros((17, 3)), crowd=False))
                counts["zero_keypoints"] += 1
                if split.startswith("val"):
                    detections.append(_jittered_det(rng, image_id, bbox, (0.3, 0.85)))
            if i in crowd_images:
                # a crowd region: a cluster of tiny figures annotated as one RLE region
                x0, y0 = rng.uniform(0, width * 0.5), rng.uniform(0, height * 0.7)
                cw, ch = width * 0.3, height * 0.2
                for _ in range(4):
                    fig = random_body(rng, ch * 0.8)
                    fig = _place(fig, np.array([x0 + rng.uniform(0, cw * 0.7), y0]))
                    draw_person(img, fig, rng)
                bbox = [round(x0, 2), round(y0, 2), round(cw, 2), round(ch, 2)]
                image_anns.append(_coco_ann(image_id, bbox, np.zeros((17, 3)), crowd=True,
                                            image_hw=(height, width)))
                counts["crowd"] += 1
            n = int(rng.integers(ppi[0], ppi[1] + 1))
            for body in _bodies_in_slots(rng, width, height, n):
                body = {k: _int_pt(v) for k, v in body.items()}   # COCO keypoints are ints
                vis = rng.choice([2, 1, 0], size=17, p=[0.85, 0.1, 0.05])
                if not (vis > 0).any():
                    vis[:] = 2
                kpts = np.zeros((17, 3))
                for k, name in enumerate(COCO_POINTS):
                    if vis[k] > 0:
                        kpts[k] = [body[name][0], body[name][1], vis[k]]
                draw_person(img, body, rng,
                            [body[name] for k, name in enumerate(COCO_POINTS) if vis[k] == 2])
                lo, hi = _extent(body)
                # the box encloses the drawn body (head disc, limb width), not just joints
                bbox = _box_of(body, width, height, pad=max(3.0, 0.06 * (hi - lo)[1]))
                image_anns.append(_coco_ann(image_id, bbox, kpts, crowd=False))
                counts["valid"] += 1
                if split.startswith("val"):
                    detections.append(_jittered_det(rng, image_id, bbox, (0.75, 0.9999)))
            if split.startswith("val"):
                for _ in range(false_boxes_per_image):
                    w, h = rng.uniform(10, width * 0.4), rng.uniform(10, height * 0.5)
                    box = [rng.uniform(0, width - w), rng.uniform(0, height - h), w, h]
                    detections.append({"bbox": [float(v) for v in box], "category_id": 1,
                                       "image_id": image_id,
                                       "score": float(rng.uniform(0.003, 0.1))})
            for a in image_anns:
                a["id"] = ann_id
                ann_id += 1
            annotations.extend(image_anns)
            _write_jpg(root / "images" / split / file_name, img)
        ann_path = root / "annotations" / f"person_keypoints_{split}.json"
        ann_path.parent.mkdir(parents=True, exist_ok=True)
        with open(ann_path, "w") as f:
            json.dump({"info": {"description": "HRBench synthetic COCO-format keypoints",
                                "version": "1.0", "year": 2024},
                       "licenses": [{"id": 1, "name": "synthetic", "url": ""}],
                       "images": images, "annotations": annotations,
                       "categories": categories}, f)
        out.files[f"{split}/annotations"] = ann_path
        out.files[f"{split}/images"] = root / "images" / split
        for k, v in counts.items():
            out.counts[f"{split}/{k}"] = v
    if any(s.startswith("val") for s in splits):
        det_path = root / DETECTION_FILE
        det_path.parent.mkdir(parents=True, exist_ok=True)
        with open(det_path, "w") as f:
            json.dump(detections, f)
        out.files["detections"] = det_path
        out.counts["detections"] = len(detections)
    return out


def _coco_ann(image_id: int, bbox, kpts: np.ndarray, crowd: bool, image_hw=None) -> dict:
    x, y, w, h = bbox
    if crowd:
        # uncompressed RLE of the box (column-major runs), as COCO's crowd regions
        height, width = image_hw
        mask = np.zeros((height, width), dtype=np.uint8)
        mask[int(y):int(math.ceil(y + h)), int(x):int(math.ceil(x + w))] = 1
        flat = mask.flatten(order="F")
        cuts = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        runs = np.diff(np.concatenate([[0], cuts, [flat.size]])).tolist()
        if flat[0] == 1:          # RLE counts start with a run of zeros
            runs = [0] + runs
        seg = {"counts": [int(r) for r in runs], "size": [height, width]}
        area = float(mask.sum())
    else:
        seg = [[x, y, x + w, y, x + w, y + h, x, y + h]]
        area = round(0.6 * w * h, 4)      # a person covers ~60 % of its box
    return {"segmentation": seg, "num_keypoints": int((kpts[:, 2] > 0).sum()),
            "area": area, "iscrowd": int(crowd),
            "keypoints": [int(v) for v in kpts.reshape(-1)], "image_id": int(image_id),
            "bbox": [float(v) for v in bbox], "category_id": 1}


def _jittered_det(rng, image_id: int, bbox, score_range) -> dict:
    x, y, w, h = bbox
    cx = x + w / 2 + rng.normal(0, 0.03) * w
    cy = y + h / 2 + rng.normal(0, 0.03) * h
    w2, h2 = w * rng.uniform(0.93, 1.07), h * rng.uniform(0.93, 1.07)
    return {"bbox": [float(cx - w2 / 2), float(cy - h2 / 2), float(w2), float(h2)],
            "category_id": 1, "image_id": int(image_id),
            "score": float(rng.uniform(*score_range))}


# --------------------------------------------------------------------------- MPII
def write_mpii(root, num_train: int = 8, num_val: int = 8, persons_per_image=(1, 2),
               seed: int = 0, image_size=(128, 256),
               missing_prob: float = 0.08) -> SyntheticDataset:
    """Write an HRNet-style MPII dataset under ``root`` (the MPII folder).

    ``num_train`` / ``num_val`` are person entries (several may share an image, as in
    MPII). ``num_val`` >= 2: MATLAB files drop trailing singleton axes, so a one-person
    gt_valid.mat would not have gt_valid's 16 x 2 x N shape.
    """
    if num_val < 2:
        raise ValueError("num_val must be >= 2 (gt_valid.mat keeps N only for N >= 2)")
    root = Path(root)
    rng = np.random.default_rng(seed)
    ppi = (persons_per_image, persons_per_image) if isinstance(persons_per_image, int) \
        else tuple(persons_per_image)
    out = SyntheticDataset(root)
    used: set[int] = set()
    gt = {"pos": [], "missing": [], "head": []}
    for split, total in (("train", num_train), ("valid", num_val)):
        entries: list[dict] = []
        while len(entries) < total:
            while True:
                num = int(rng.integers(1, 99999999))
                if num not in used:
                    used.add(num)
                    break
            name = f"{num:09d}.jpg"
            width, height = _image_size(rng, image_size)
            img = _background(rng, width, height)
            n = min(int(rng.integers(ppi[0], ppi[1] + 1)), total - len(entries))
            for body in _bodies_in_slots(rng, width, height, n):
                vis = (rng.random(16) >= missing_prob).astype(int)
                vis[[6, 7, 8, 9]] = 1      # pelvis, thorax, neck, head: always annotated
                pts0 = np.stack([body[p] for p in MPII_POINTS])          # 0-based pixels
                draw_person(img, body, rng, [pts0[k] for k in range(16) if vis[k]])
                joints1 = np.where(vis[:, None] > 0, pts0 + 1.0, -1.0)   # MATLAB 1-based
                lo, hi = pts0.min(axis=0), pts0.max(axis=0)
                s = float(max(hi - lo) * 1.15 / 200.0)
                # MPII's objpos sits high on the body; the loader moves it down by 15 s
                center1 = (lo + hi) / 2.0 + 1.0 - np.array([0.0, 15.0 * s])
                entries.append({"joints_vis": [int(v) for v in vis],
                                "joints": [[round(float(x), 4), round(float(y), 4)]
                                           for x, y in joints1],
                                "image": name, "scale": round(s, 6),
                                "center": [round(float(center1[0]), 2),
                                           round(float(center1[1]), 2)]})
                if split == "valid":
                    neck, top = joints1[8], joints1[9]
                    mid, side = (neck + top) / 2, float(np.linalg.norm(top - neck))
                    gt["pos"].append(joints1)
                    gt["missing"].append(1 - vis)
                    gt["head"].append(np.stack([mid - side / 2, mid + side / 2]))
            _write_jpg(root / "images" / name, img)
        path = root / "annot" / f"{split}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as f:
            json.dump(entries, f)
        out.files[split] = path
        out.counts[split] = len(entries)
    names = np.empty((1, 16), dtype=object)
    names[0, :] = list(MPII_JOINT_CODES)
    gt_path = root / "annot" / "gt_valid.mat"
    _savemat(gt_path, {
        "dataset_joints": names,
        "jnt_missing": np.stack(gt["missing"], axis=1).astype(np.uint8),          # 16 x N
        "pos_gt_src": np.stack(gt["pos"], axis=2).astype(np.float64),            # 16x2xN
        "headboxes_src": np.stack(gt["head"], axis=2).astype(np.float64),        # 2x2xN
    })
    out.files["gt_valid"] = gt_path
    out.files["images"] = root / "images"
    return out


# --------------------------------------------------------------------------- LSP
def write_lsp(root, num_images: int = 20, seed: int = 0, extended: bool = True,
              image_size=(128, 220), invisible_prob: float = 0.12) -> SyntheticDataset:
    """Write an LSP-extended (``extended=True``: joints 14 x 3 x N, x, y, visible;
    images im%05d.jpg) or original-LSP (3 x 14 x N, x, y, occluded; im%04d.jpg)
    dataset under ``root``, one person per image filling most of it."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    joints = np.zeros((num_images, 14, 3))
    for i in range(num_images):
        width, height = _image_size(rng, image_size)
        img = _background(rng, width, height)
        body = _bodies_in_slots(rng, width, height, 1)[0]
        pts = np.stack([body[p] for p in LSP_POINTS])
        vis = (rng.random(14) >= invisible_prob).astype(float)
        vis[[2, 9]] = 1.0        # keep a torso (PCK's normaliser) on every person
        draw_person(img, body, rng, [pts[k] for k in range(14) if vis[k]])
        joints[i, :, :2] = pts
        joints[i, :, 2] = vis
        # invisible joints of LSP-extended are not annotated: junk coordinates (drawn
        # for both layouts so one seed gives the same people in both)
        junk = np.column_stack([rng.choice([0.0, -1.0], 14) * rng.uniform(0, 50, 14),
                                -rng.uniform(0, 60, 14)])
        if extended:
            joints[i, vis == 0, :2] = junk[vis == 0]
        name = f"im{i + 1:05d}.jpg" if extended else f"im{i + 1:04d}.jpg"
        _write_jpg(root / "images" / name, img)
    if extended:
        arr = joints.transpose(1, 2, 0)                      # 14 x 3 x N, visibility
    else:
        occl = joints.copy()
        occl[:, :, 2] = 1.0 - joints[:, :, 2]
        arr = occl.transpose(2, 1, 0)                        # 3 x 14 x N, occluded
    path = root / "joints.mat"
    _savemat(path, {"joints": arr})
    return SyntheticDataset(root, {"joints": path, "images": root / "images"},
                            {"images": num_images})


def write_all(data_root, seed: int = 0, num_images: int = 8) -> dict:
    """COCO, MPII and LSP-extended under ``data_root/{coco,mpii,lspet}`` (the layout the
    protocols' ``data_files`` name). Returns {name: SyntheticDataset}."""
    data_root = Path(data_root)
    return {
        "coco": write_coco(data_root / "coco", num_images=num_images, seed=seed),
        "mpii": write_mpii(data_root / "mpii", num_train=num_images, num_val=num_images,
                           seed=seed + 1),
        "lspet": write_lsp(data_root / "lspet", num_images=max(2, num_images * 2),
                           seed=seed + 2),
    }
