"""PASCAL VOC detection data and CenterNet's codec (FlatteNet Table X): the devkit XML
parser, the synthetic writer, the dataset's training / evaluation samples and the
encode -> decode round trip back to the devkit's coordinates."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from bench.tasks.detection.labels import VOC_CLASSES
from bench.tasks.detection.synthetic import write_voc
from bench.tasks.detection.codecs import (
    PCA_EIGVEC_BGR,
    PCA_EIGVEC_RGB,
    CenterNetCodec,
    center_scale_of_image,
    color_augment,
    draw_umich_gaussian,
    gaussian_radius,
    gaussian_radius_centernet,
)
from bench.data.transforms import affine_transform, get_affine_transform
from bench.tasks.detection.data.voc import VOCDetection, parse_voc_xml
from conftest import SHARED_DATA

VOC_SAMPLE = SHARED_DATA / "voc_sample"
needs_sample = pytest.mark.skipif(not VOC_SAMPLE.is_dir(),
                                  reason="../shared/data/voc_sample is missing")

#: the fields a detection protocol must give (the schema's defaults for the rest)
VOC_REQUIRED = {"name": "voc_test", "task": "detection", "dataset": "voc", "num_classes": 20,
                "input_size": [512, 512]}


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    return write_voc(tmp_path_factory.mktemp("voc"), seed=0)


def decode_targets(codec, item, centers=None, scales=None):
    """Detections decoded from a sample's own targets (what a perfect network outputs)."""
    wh, reg = codec.dense_maps(item["wh"].numpy(), item["reg"].numpy(), item["ind"].numpy(),
                               item["reg_mask"].numpy())
    det = codec.decode(item["hm"][None], wh[None], reg[None], centers=centers,
                       scales=scales)[0]
    return det[det[:, 4] >= 1.0 - 1e-6]


def sort_rows(a):
    a = np.asarray(a, dtype=np.float64)
    return a[np.lexsort(a.T[::-1])]


# --------------------------------------------------------------------------- class table
def test_voc_classes_are_the_devkit_order():
    assert len(VOC_CLASSES) == 20
    assert VOC_CLASSES[:4] == ("aeroplane", "bicycle", "bird", "boat")
    assert VOC_CLASSES[10] == "diningtable" and VOC_CLASSES[14] == "person"
    assert VOC_CLASSES[-1] == "tvmonitor"
    assert VOCDetection.num_classes == 20 and VOCDetection.class_names == VOC_CLASSES


# --------------------------------------------------------------------------- real sample
@pytest.mark.data
@needs_sample
def test_parse_real_annotations():
    ann_dir = VOC_SAMPLE / "VOCdevkit" / "VOC2007" / "Annotations"
    five = parse_voc_xml(ann_dir / "000005.xml")
    assert (five["width"], five["height"]) == (500, 375)
    assert [o["category"] for o in five["objects"]] == ["chair"] * 5
    assert sum(o["difficult"] for o in five["objects"]) == 2
    assert five["objects"][0]["bbox"] == [263.0, 211.0, 324.0, 339.0]   # as written
    assert five["objects"][2]["truncated"] and five["objects"][2]["difficult"]
    assert five["objects"][0]["pose"] == "Rear"
    four = parse_voc_xml(ann_dir / "000004.xml")
    assert [o["category"] for o in four["objects"]] == ["car"] * 7
    assert all(o["label"] == VOC_CLASSES.index("car") for o in four["objects"])


@pytest.mark.data
@needs_sample
def test_real_test_set_round_trip_to_devkit_coordinates():
    """Evaluation items of the real 2007 test sample: the ground truth moved through the
    item's own crop, encoded and decoded back, lands on the devkit's numbers."""
    ds = VOCDetection.from_protocol({**VOC_REQUIRED, "input_size": [512, 512]},
                                    VOC_SAMPLE, train=False)
    assert len(ds) == 5 and ds.ids[0] == ("2007", "000001")
    gt = ds.annotations()
    assert sum(o["difficult"] for o in gt["000005"]) == 2
    for index in range(len(ds)):
        item = ds[index]
        meta = item["meta"]
        assert item["image"].shape == (3, 512, 512) and item["image"].dtype == torch.float32
        image = ds.load_image(index)
        assert (meta["height"], meta["width"]) == image.shape[:2]
        assert meta["scale"] == max(image.shape[:2])
        np.testing.assert_allclose(meta["center"], [image.shape[1] / 2, image.shape[0] / 2])

        boxes, labels = ds.boxes(index)
        M = get_affine_transform(meta["center"], meta["scale"], 0.0, (512, 512), pixel_std=1.0)
        inputs = affine_transform(boxes.reshape(-1, 2), M).reshape(-1, 4)
        targets = ds.codec.encode(inputs, labels)
        det = decode_targets(ds.codec, {k: torch.from_numpy(v) for k, v in targets.items()},
                             centers=[meta["center"]], scales=[meta["scale"]])
        det = ds.to_devkit(det)
        # the devkit's numbers, except that (as CenterNet) boxes are clipped to the last
        # output cell, 508 input pixels: 000004's last car ends at the image's right
        # edge, 500, which is 510.9 input pixels, so it comes back as 497.1
        inv = get_affine_transform(meta["center"], meta["scale"], 0.0, (512, 512),
                                   inv=True, pixel_std=1.0)
        clipped = affine_transform(np.clip(inputs, 0, 508).reshape(-1, 2), inv).reshape(-1, 4)
        expected = np.column_stack([clipped + 1, labels])
        names = [VOC_CLASSES[int(v)] for v in labels]
        assert names == [o["category"] for o in gt[meta["image_id"]]]
        lost = np.abs(expected[:, :4] - [o["bbox"] for o in gt[meta["image_id"]]]).max()
        assert lost < 4 * meta["scale"] / 512             # at most one output cell
        np.testing.assert_allclose(sort_rows(det[:, [0, 1, 2, 3, 5]]), sort_rows(expected),
                                   atol=1e-3)


@pytest.mark.data
@needs_sample
def test_real_sample_trains_on_difficult_objects_unless_told():
    kw = dict(sets=[("2007", "trainval")], scale_range=None, flip_prob=0.0,
              color_jitter=False)
    keep = VOCDetection(VOC_SAMPLE, keep_difficult=True, **kw)
    drop = VOCDetection(VOC_SAMPLE, keep_difficult=False, **kw)
    i = keep.ids.index(("2007", "000005"))
    assert keep[i]["reg_mask"].sum() == 5 and drop[i]["reg_mask"].sum() == 3


# --------------------------------------------------------------------------- synthetic
def test_synthetic_layout_and_determinism(tmp_path, synthetic_root):
    devkit = synthetic_root / "VOCdevkit"
    main07 = devkit / "VOC2007" / "ImageSets" / "Main"
    assert len(main07.joinpath("trainval.txt").read_text().split()) == 8
    assert len(main07.joinpath("test.txt").read_text().split()) == 4
    assert not (devkit / "VOC2012" / "ImageSets" / "Main" / "test.txt").exists()
    ids12 = (devkit / "VOC2012" / "ImageSets" / "Main" / "trainval.txt").read_text().split()
    assert len(ids12) == 8 and all(len(i) == 11 and i[4] == "_" for i in ids12)

    objects = []
    for xml in sorted(devkit.glob("VOC*/Annotations/*.xml")):
        ann = parse_voc_xml(xml)
        assert 160 <= ann["width"] <= 320 and 160 <= ann["height"] <= 320
        for o in ann["objects"]:
            x1, y1, x2, y2 = o["bbox"]
            assert 1 <= x1 < x2 <= ann["width"] and 1 <= y1 < y2 <= ann["height"]
        objects += ann["objects"]
    assert any(o["difficult"] for o in objects) and any(o["truncated"] for o in objects)
    assert sum(not o["difficult"] for o in objects) >= 20

    again = write_voc(tmp_path / "again", seed=0)
    other = write_voc(tmp_path / "other", seed=1)
    for rel in ("VOC2007/JPEGImages/000001.jpg", "VOC2012/Annotations/%s.xml" % ids12[0]):
        first = (devkit / rel).read_bytes()
        assert (again / "VOCdevkit" / rel).read_bytes() == first
        assert (other / "VOCdevkit" / rel).read_bytes() != first


def test_synthetic_objects_are_painted_where_annotated(synthetic_root):
    """The middle of every whole, unoccluded object has its class's colour, the same in
    every image (up to light and noise) and apart from the other classes': a colour
    picked from a box tells its class, so the content is learnable."""
    ds = VOCDetection(synthetic_root, sets=[("2007", "trainval"), ("2007", "test"),
                                            ("2012", "trainval")], train=False)
    samples = []
    for index in range(len(ds)):
        image = ds.load_image(index).astype(np.float64)
        objects = ds.records[index]["objects"]
        for o in objects:
            x1, y1, x2, y2 = (int(v) - 1 for v in o["bbox"])
            cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
            covered = any(p is not o and p["bbox"][0] - 1 <= cx <= p["bbox"][2] - 1
                          and p["bbox"][1] - 1 <= cy <= p["bbox"][3] - 1 for p in objects)
            if o["truncated"] or covered:
                continue
            samples.append((o["label"], image[cy - 1:cy + 2, cx - 1:cx + 2].mean((0, 1))))
    labels = np.array([s[0] for s in samples])
    colours = np.stack([s[1] for s in samples])
    classes = np.unique(labels)
    assert len(samples) >= 20 and len(classes) >= 8
    means = np.stack([colours[labels == c].mean(0) for c in classes])
    nearest = classes[np.linalg.norm(colours[:, None] - means[None], axis=2).argmin(1)]
    assert np.array_equal(nearest, labels)


def test_dataset_reads_synthetic_layouts_through_the_protocol(tmp_path, synthetic_root):
    protocol = {**VOC_REQUIRED, "input_size": [256, 256], "output_stride": 4,
                "max_objects": 16, "train_sets": [["2007", "trainval"], ["2012", "trainval"]],
                "val_sets": [["2007", "test"]],
                "augmentation": {"flip_prob": 0.5, "scale_range": [0.6, 1.4],
                                 "color_jitter": True}}
    # data_root holding VOCdevkit itself, and data_root/voc/VOCdevkit
    train = VOCDetection.from_protocol(protocol, synthetic_root, train=True, seed=3)
    assert len(train) == 16 and train.ids[8][0] == "2012"
    assert train.flip_prob == 0.5 and train.color_jitter and train.scale_range == (0.6, 1.4)
    (tmp_path / "voc").symlink_to(synthetic_root, target_is_directory=True)
    val = VOCDetection.from_protocol(protocol, tmp_path, train=False)
    assert len(val) == 4 and val.flip_prob == 0 and not val.color_jitter
    assert val.scale_range is None

    item = train[0]
    assert item["image"].shape == (3, 256, 256)
    assert item["hm"].shape == (20, 64, 64) and item["hm"].dtype == torch.float32
    assert item["wh"].shape == (16, 2) and item["reg"].shape == (16, 2)
    assert item["ind"].shape == (16,) and item["ind"].dtype == torch.int64
    assert item["reg_mask"].shape == (16,) and item["meta"]["index"] == 0
    assert set(item["meta"]) == {"index", "center", "scale", "flipped"}
    n = int(item["reg_mask"].sum())
    assert n >= 1 and float(item["hm"].max()) == 1.0
    assert (item["wh"][:n] > 0).all() and ((item["reg"] >= 0) & (item["reg"] < 1)).all()
    batch = torch.utils.data.default_collate([train[0], train[1]])
    assert batch["hm"].shape == (2, 20, 64, 64)


def test_missing_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
        VOCDetection(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "voc")):
        VOCDetection.from_protocol(VOC_REQUIRED, tmp_path, train=True)
    root = write_voc(tmp_path / "only07", years=("2007",), num_trainval=2, num_test=1)
    with pytest.raises(FileNotFoundError, match="VOC2012"):
        VOCDetection(root)                                 # default sets: 07 + 12 trainval
    with pytest.raises(FileNotFoundError, match="val2"):
        VOCDetection(root, sets=[("2007", "val2")])
    (root / "VOCdevkit" / "VOC2007" / "Annotations" / "000001.xml").unlink()
    with pytest.raises(FileNotFoundError, match="000001.xml"):
        VOCDetection(root, sets=[("2007", "trainval")])


# --------------------------------------------------------------------------- training
def test_training_samples_depend_on_seed_epoch_index_only(synthetic_root):
    a = VOCDetection(synthetic_root, seed=5)
    b = VOCDetection(synthetic_root, seed=5)
    x, y = a[3], b[3]
    for key in ("image", "hm", "wh", "reg", "ind", "reg_mask"):
        assert torch.equal(x[key], y[key]), key
    a[7]                                                   # other samples do not matter
    assert torch.equal(a[3]["image"], x["image"])
    a.set_epoch(1)
    assert not torch.equal(a[3]["image"], x["image"])
    assert not torch.equal(VOCDetection(synthetic_root, seed=6)[3]["image"], x["image"])


def test_random_crop_follows_centernet(synthetic_root):
    ds = VOCDetection(synthetic_root)
    grid = {round(0.6 + 0.1 * i, 6) for i in range(8)}     # np.arange(0.6, 1.4, 0.1)
    seen = set()
    for i in range(300):
        rng = np.random.default_rng([0, 0, i])
        center, scale = ds.random_crop(rng, 300, 200)
        factor = round(scale / 300, 6)
        assert factor in grid
        seen.add(factor)
        assert 64 <= center[0] < 200 - 64 and 128 <= center[1] < 300 - 128
    assert seen == grid                                    # 1.4 itself is never drawn
    shifted = VOCDetection(synthetic_root, shift=0.1)
    for i in range(100):
        center, scale = shifted.random_crop(np.random.default_rng(i), 300, 200)
        assert 0.6 * 300 <= scale <= 1.4 * 300
        assert np.all(np.abs(center - [100, 150]) <= 0.2 * 300 + 1e-3)


@pytest.mark.data
@needs_sample
def test_flipped_training_sample_has_mirrored_boxes():
    kw = dict(sets=[("2007", "trainval")], scale_range=None, color_jitter=False)
    plain = VOCDetection(VOC_SAMPLE, flip_prob=0.0, **kw)
    flipped = VOCDetection(VOC_SAMPLE, flip_prob=1.0, **kw)
    index = plain.ids.index(("2007", "000005"))
    a = decode_targets(plain.codec, plain[index])          # boxes in input pixels
    b = decode_targets(flipped.codec, flipped[index])
    assert len(a) == len(b) == 5
    # the flipped crop is centred on the mirrored centre, so input x -> W - x
    mirrored = np.stack([512 - a[:, 2], a[:, 1], 512 - a[:, 0], a[:, 3], a[:, 5]], axis=1)
    np.testing.assert_allclose(sort_rows(b[:, [0, 1, 2, 3, 5]]), sort_rows(mirrored),
                               atol=1e-3)
    # and the picture with them: flipped pixel X samples the image where plain pixel
    # 512 - X does (one column off a mirrored array)
    img_a, img_b = plain[index]["image"], flipped[index]["image"]
    diff = (img_a.flip(-1)[:, :, :-1] - img_b[:, :, 1:]).abs().mean()
    assert diff < 1e-3 < (img_a - img_b).abs().mean()


def test_color_augment():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, size=(16, 16, 3)).astype(np.float32)
    unchanged = color_augment(np.random.default_rng(1), image.copy(), var=0.0,
                              lighting_std=0.0)
    np.testing.assert_allclose(unchanged, image, atol=1e-6)
    a = color_augment(np.random.default_rng(1), image.copy())
    b = color_augment(np.random.default_rng(1), image.copy())
    assert np.array_equal(a, b) and not np.allclose(a, image)
    # lighting alone adds one colour to every pixel
    lit = color_augment(np.random.default_rng(2), image.copy(), var=0.0)
    shift = (lit - image).reshape(-1, 3)
    assert np.ptp(shift, axis=0).max() < 1e-5 and np.abs(shift[0]).max() > 0


# --------------------------------------------------------------------------- codec
def test_gaussian_radius_hand_cases():
    # a 10 x 10 box: the shrink-both-corners root (40 - sqrt(1120)) / 8 is the smallest
    assert gaussian_radius((10, 10)) == pytest.approx((40 - math.sqrt(1120)) / 8, abs=1e-12)
    assert gaussian_radius((10, 10)) == pytest.approx(0.816699, abs=1e-6)
    # 20 x 50: r2 = (140 - sqrt(140^2 - 16 * 0.3 * 1000)) / 8
    h, w = 20.0, 50.0
    r = gaussian_radius((h, w))
    assert r == pytest.approx((140 - math.sqrt(14800)) / 8, abs=1e-12)
    assert (h - 2 * r) * (w - 2 * r) / (h * w) == pytest.approx(0.7)
    # corners moved by r any of the three ways keep IoU >= 0.7
    shifted = (h - r) * (w - r) / (2 * h * w - (h - r) * (w - r))
    grown = h * w / ((h + 2 * r) * (w + 2 * r))
    assert shifted >= 0.7 and grown >= 0.7


def test_draw_umich_gaussian():
    hm = np.zeros((20, 30), dtype=np.float32)
    draw_umich_gaussian(hm, (10, 8), 3)
    assert hm[8, 10] == 1.0 and hm.argmax() == 8 * 30 + 10
    sigma = 7 / 6
    assert hm[8, 13] == pytest.approx(math.exp(-9 / (2 * sigma ** 2)), rel=1e-6)
    assert hm[8, 14] == 0 and hm[12, 10] == 0              # radius 3: nothing beyond
    assert np.allclose(hm[5:12, 7:14], hm[5:12, 7:14].T)   # isotropic
    draw_umich_gaussian(hm, (0, 19), 3)                    # cut at the corner
    assert hm[19, 0] == 1.0 and hm[16, 0] > 0
    before = hm.copy()
    draw_umich_gaussian(hm, (11, 8), 1)                    # max-merge keeps the larger
    assert np.all(hm >= before) and hm[8, 11] == 1.0


def test_codec_round_trip_to_image_pixels():
    codec = CenterNetCodec((512, 512), 4, num_classes=20, max_objects=8)
    height, width = 375, 500
    center, scale = center_scale_of_image(height, width)
    boxes = np.array([[10.3, 20.7, 120.2, 200.9], [300.0, 50.5, 480.25, 360.0],
                      [200.6, 210.1, 260.4, 300.3], [35.0, 250.0, 90.9, 371.5]])
    labels = np.array([3, 14, 14, 0])
    M = get_affine_transform(center, scale, 0.0, (512, 512), pixel_std=1.0)
    t = codec.encode(affine_transform(boxes.reshape(-1, 2), M).reshape(-1, 4), labels)
    assert t["reg_mask"].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    assert np.all(t["hm"].reshape(20, -1)[labels, t["ind"][:4]] == 1.0)
    det = decode_targets(codec, {k: torch.from_numpy(v) for k, v in t.items()},
                         centers=[center], scales=[scale])
    assert len(det) == 4 and np.all(det[:, 4] == 1.0)
    np.testing.assert_allclose(sort_rows(det[:, [5, 0, 1, 2, 3]]),
                               sort_rows(np.column_stack([labels, boxes])), atol=1e-3)


def test_codec_encoding_rules():
    codec = CenterNetCodec((128, 128), 4, num_classes=3, max_objects=2)
    # a box running off the input is clipped to the grid; a degenerate box is skipped
    t = codec.encode([[100, 40, 200, 80], [10, 10, 10, 30], [0, 0, 16, 16]], [1, 2, 0])
    assert t["reg_mask"].tolist() == [1, 0]                # third box: no slot left
    assert t["wh"][0].tolist() == pytest.approx([31 - 25, 10])
    assert t["hm"][2].max() == 0 and t["hm"][0].max() == 0
    cx = (25 + 31) / 2
    assert t["ind"][0] == 15 * 32 + int(cx)
    assert t["reg"][0].tolist() == pytest.approx([cx - 28, 0])
    with pytest.raises(ValueError, match="labels"):
        codec.encode([[0, 0, 8, 8]], [3])
    with pytest.raises(ValueError, match="divisible"):
        CenterNetCodec((130, 128), 4)


def test_decode_keeps_peaks_only_and_flip_merge():
    codec = CenterNetCodec((64, 64), 4, num_classes=2)
    hm = torch.zeros(1, 2, 16, 16)
    hm[0, 1, 5:8, 9:12] = 0.5
    hm[0, 1, 6, 10] = 0.9
    wh = torch.full((1, 2, 16, 16), 4.0)
    det = codec.decode(hm, wh, None, k=5)[0]
    assert det.shape == (5, 6)
    assert det[0, 4] == pytest.approx(0.9) and det[0, 5] == 1
    assert det[1, 4] == 0                                  # the 0.5 shoulders are no peaks
    # no offset map: the cell's middle, in input pixels
    np.testing.assert_allclose(det[0, :4],
                               np.array([10.5 - 2, 6.5 - 2, 10.5 + 2, 6.5 + 2]) * 4)

    mirrored = torch.cat([hm, hm.flip(-1)])
    merged_hm, merged_wh, merged_reg = codec.merge_flip(mirrored, torch.cat([wh, wh]),
                                                        torch.rand(2, 2, 16, 16))
    assert torch.allclose(merged_hm, hm) and merged_reg.shape == (1, 2, 16, 16)


# --------------------------------------------------------------------------- options
# CenterNet's behaviour is the default (tests/test_samples_golden_det.py proves it against
# the official loader); each alternative is an explicit option, checked here.
def test_heatmap_radius_option():
    # CenterNet's utils/image.py::gaussian_radius: every root (b + sqrt(b^2 - 4ac)) / 2
    r3 = (-2 * 0.7 * 20 + math.sqrt((2 * 0.7 * 20) ** 2 + 4 * 4 * 0.7 * 0.3 * 100)) / 2
    assert gaussian_radius_centernet((10, 10)) == pytest.approx(r3, abs=1e-12)
    assert gaussian_radius_centernet((10, 10)) == pytest.approx(2.7332, abs=1e-4)
    # the third (grown-box) value is 4 * 0.7 times its true root, which the exact
    # formula gives (the smaller shrink root wins there)
    for h, w in ((10, 10), (20, 50), (3, 40), (64, 64)):
        assert gaussian_radius_centernet((h, w)) > gaussian_radius((h, w))
    box, label = [[40.0, 40.0, 100.0, 100.0]], [0]
    big = CenterNetCodec((128, 128), 4, 1, 4, heatmap_radius="centernet").encode(box, label)
    small = CenterNetCodec((128, 128), 4, 1, 4, heatmap_radius="exact").encode(box, label)
    # a 15 x 15 cell box: radius int(4.10) = 4 vs int(1.23) = 1
    assert (big["hm"] > 0).sum() == 9 * 9 and (small["hm"] > 0).sum() == 3 * 3
    for key in ("wh", "reg", "ind", "reg_mask"):
        assert np.array_equal(big[key], small[key])
    assert CenterNetCodec().heatmap_radius == "centernet"
    with pytest.raises(ValueError, match="heatmap_radius"):
        CenterNetCodec(heatmap_radius="cornernet")


def test_channel_order_option(synthetic_root):
    kw = dict(sets=[("2007", "trainval")], input_size=(128, 128))
    bgr = VOCDetection(synthetic_root, **kw)
    rgb = VOCDetection(synthetic_root, channel_order="rgb", **kw)
    assert bgr.channel_order == "bgr"                       # CenterNet never converts
    path = bgr.records[0]["image_file"]
    assert np.array_equal(bgr.load_image(0), cv2.imread(path))
    assert np.array_equal(rgb.load_image(0), cv2.imread(path)[:, :, ::-1])
    # CenterNet's PCA table (datasets/dataset/pascal.py) has its rows in B, G, R order
    assert np.array_equal(PCA_EIGVEC_BGR[0], np.float32([-0.58752847, -0.69563484, 0.41340352]))
    assert np.array_equal(PCA_EIGVEC_BGR, PCA_EIGVEC_RGB[::-1])
    # the same colour change either way: the BGR result is the RGB one reversed
    image = np.random.default_rng(0).uniform(0, 1, (12, 10, 3)).astype(np.float32)
    a = color_augment(np.random.default_rng(4), image.copy(), channel_order="rgb")
    b = color_augment(np.random.default_rng(4), np.ascontiguousarray(image[:, :, ::-1]),
                      channel_order="bgr")
    np.testing.assert_allclose(b[:, :, ::-1], a, atol=1e-6)
    with pytest.raises(ValueError, match="channel_order"):
        VOCDetection(synthetic_root, channel_order="yuv", **kw)


def test_box_convention_option(synthetic_root):
    kw = dict(sets=[("2007", "trainval")])
    official = VOCDetection(synthetic_root, **kw)
    zero = VOCDetection(synthetic_root, box_convention="zero_based", **kw)
    written = np.array([o["bbox"] for o in official.records[0]["objects"]], np.float32)
    # Detectron's json: [xmin - 1, ymin - 1, w = xmax - xmin + 1, ...]; CenterNet's
    # _coco_box_to_bbox makes that [xmin - 1, ymin - 1, xmax, ymax]
    assert np.array_equal(official.boxes(0)[0], written - [1, 1, 0, 0])
    assert np.array_equal(zero.boxes(0)[0], written - 1)
    with pytest.raises(ValueError, match="box_convention"):
        VOCDetection(synthetic_root, box_convention="xywh", **kw)


def test_numerics_option(synthetic_root):
    kw = dict(sets=[("2007", "trainval")], input_size=(128, 128))
    official = VOCDetection(synthetic_root, **kw)
    exact = VOCDetection(synthetic_root, numerics="exact", **kw)
    # the scale grid: np.arange's float values vs rounded
    assert official._scale_grid() == [float(v) for v in np.arange(0.6, 1.4, 0.1)]
    assert official._scale_grid()[2] == 0.7999999999999999
    assert exact._scale_grid() == [0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3]
    # float32 three-point matrix vs closed form: the same similarity to float32 round-off
    center, scale = np.float32([70.5, 61.0]), 0.7999999999999999 * 200
    m32 = official._matrix(center, scale, (128, 128))
    m64 = exact._matrix(center, scale, (128, 128))
    assert not np.array_equal(m32, m64) and np.abs(m32 - m64).max() < 1e-4
    # boxes through the output transform vs the input transform over the stride
    boxes = np.array([[10.0, 20.0, 90.0, 77.0]], np.float32)
    grid = official._grid_boxes(boxes, center, scale)
    via_input = affine_transform(boxes.reshape(-1, 2), m64).reshape(-1, 4) / 4
    np.testing.assert_allclose(grid, via_input, atol=1e-4)
    # evaluation inputs: float64 normalisation (CenterNet's pre_process) vs float32
    a, b = official[0], exact[0]
    official.train = exact.train = False
    x, y = official[0]["image"], exact[0]["image"]
    assert x.dtype == y.dtype == torch.float32 and torch.allclose(x, y, atol=1e-5)
    assert set(a) == set(b)
    with pytest.raises(ValueError, match="numerics"):
        VOCDetection(synthetic_root, numerics="float16", **kw)


def test_options_come_from_the_protocol(synthetic_root):
    protocol = {**VOC_REQUIRED, "input_size": [128, 128],
                "train_sets": [["2007", "trainval"]], "channel_order": "rgb",
                "box_convention": "zero_based", "numerics": "exact", "heatmap_radius": "exact"}
    for train in (True, False):
        ds = VOCDetection.from_protocol(protocol, synthetic_root, train=train)
        assert (ds.channel_order, ds.box_convention, ds.numerics, ds.codec.heatmap_radius) == \
            ("rgb", "zero_based", "exact", "exact")
    from bench.suite import load_protocol
    from bench.tasks.detection.protocol import DetectionProtocol
    p = load_protocol("voc_512x512_flattenet")
    assert (p.channel_order, p.box_convention, p.numerics, p.heatmap_radius) == \
        ("bgr", "centernet", "centernet", "centernet")
    assert DetectionProtocol.model_fields["numerics"].default == "centernet"


def test_default_draws_are_the_generator_stream(synthetic_root):
    """``draws_for`` by default calls the sample's generator once per draw, in the
    order the crop / flip / colour steps ask (the stream before the seam existed)."""
    ds = VOCDetection(synthetic_root, seed=2)
    shifted = VOCDetection(synthetic_root, shift=0.1)
    for i in range(20):
        rng = np.random.default_rng([2, 0, i])
        center, scale = ds.random_crop(ds.draws_for(i), 300, 200)
        assert scale == 300 * float(np.arange(0.6, 1.4, 0.1)[rng.integers(8)])
        assert center.tolist() == [rng.integers(64, 136), rng.integers(128, 172)]
        rng = np.random.default_rng(i)
        center, scale = shifted.random_crop(np.random.default_rng(i), 300, 200)
        step = np.clip(rng.standard_normal(2) * 0.1, -0.2, 0.2)
        assert center.tolist() == np.float32([100, 150] + 300 * step).tolist()
        assert scale == 300 * float(np.clip(rng.standard_normal() * 0.4 + 1, 0.6, 1.4))
