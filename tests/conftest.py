"""Shared fixtures: a measurement cache shared by the whole session (so the suite-level
tests measure each model once), golden-value recording behind an explicit flag."""
from __future__ import annotations

import hashlib
import json
import math
import zlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_addoption(parser):
    parser.addoption("--record-golden", action="store_true", default=False,
                     help="re-record golden values (exact parameter counts) instead of "
                          "asserting them; review the diff before committing")


@pytest.fixture(scope="session")
def record_golden(request) -> bool:
    return request.config.getoption("--record-golden")


@pytest.fixture(scope="session")
def golden(record_golden):
    """golden(name, key, value): assert value == recorded, or record it with the flag."""
    store: dict[str, dict] = {}

    def check(name: str, key: str, value):
        path = GOLDEN / f"{name}.json"
        if name not in store:
            store[name] = json.loads(path.read_text()) if path.is_file() else {}
        if record_golden:
            store[name][key] = value
            path.write_text(json.dumps(store[name], indent=1, sort_keys=True) + "\n")
            return
        assert key in store[name], f"no golden value {name}/{key}; run pytest --record-golden"
        assert value == store[name][key], f"{name}/{key}: {value} != golden {store[name][key]}"

    return check


@pytest.fixture(scope="session")
def measurement_cache(tmp_path_factory):
    from bench.complexity.cache import MeasurementCache
    return MeasurementCache(tmp_path_factory.mktemp("complexity-cache"))


# --- comparing with official implementations (golden files written outside the project) --

def official_weights(model):
    """The deterministic weights every ``tests/golden/*_official.json`` describes under
    ``weight_init``: state-dict entries in key order, conv weights ~ N(0, 0.7^2 / fan_in),
    BN weights and running variances ~ U(0.5, 1.5), biases and means ~ N(0, 0.1^2)."""
    import torch
    with torch.no_grad():
        torch.manual_seed(0)
        for name, t in sorted(model.state_dict().items()):
            if not t.dtype.is_floating_point:
                continue
            if t.dim() > 1:
                t.copy_(torch.randn_like(t) * (0.7 / math.sqrt(t[0].numel())))
            elif name.endswith("running_var") or name.endswith(".weight"):
                t.copy_(torch.rand_like(t) + 0.5)
            else:
                t.copy_(torch.randn_like(t) * 0.1)
    return model.eval()


def state_signature(model) -> str:
    """sha256 of the sorted "key:shape" lines of the state dict."""
    lines = sorted(f"{k}:{','.join(map(str, v.shape))}" for k, v in model.state_dict().items())
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def assert_state_matches(model, ref: dict) -> None:
    """``model`` against a golden model entry: parameter count, state keys and shapes."""
    assert sum(p.numel() for p in model.parameters()) == ref["num_params"]
    assert len(model.state_dict()) == ref["num_state_keys"]
    assert state_signature(model) == ref["state_dict_sha256"]


def golden_input(ref: dict):
    """The input of a golden ``output_checksum``: torch.rand(input_shape) after
    torch.manual_seed(input_seed)."""
    import torch
    torch.manual_seed(ref["input_seed"])
    return torch.rand(*ref["input_shape"])


def assert_output_matches(out, ref: dict) -> None:
    """``out`` against a golden ``output_checksum`` (sum, absolute sum, first values)."""
    assert list(out.shape) == ref["output_shape"]
    assert out.double().sum().item() == pytest.approx(ref["sum"], rel=1e-4, abs=1e-3)
    assert out.double().abs().sum().item() == pytest.approx(ref["abs_sum"], rel=1e-4)
    assert out.flatten()[:5].tolist() == pytest.approx(ref["sample"], rel=1e-4, abs=1e-5)


def reference_gaussian_targets(joints, visible, input_size, heatmap_size, sigma,
                               unbiased: bool = False):
    """Heatmap targets by the whole-grid formula (the pose pipeline before its per-core
    tuning, kept as the reference its faster code must equal bit for bit). MSRA: the joint
    snapped to mu = int(j / stride + 0.5), window [int(mu - 3s), int(mu + 3s + 1)) whose
    Gaussian peaks at window start + (6s + 1) // 2, zero outside the window; unbiased
    (DARK): the Gaussian at the exact j / stride over the whole grid. Weight 0 if
    invisible or the window misses the heatmap. Sizes are (w, h)."""
    import numpy as np
    joints = np.asarray(joints, dtype=np.float64)
    k_num = joints.shape[0]
    v = np.asarray(visible, dtype=np.float64).reshape(k_num, -1)[:, 0]
    w, h = int(heatmap_size[0]), int(heatmap_size[1])
    stride = np.asarray(input_size, np.float64) / np.asarray((w, h), np.float64)
    target = np.zeros((k_num, h, w), dtype=np.float32)
    weight = (v > 0).astype(np.float32)
    tmp, two_s2 = sigma * 3, np.float32(2 * sigma ** 2)
    xs, ys = np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)[:, None]
    for k in range(k_num):
        if unbiased:
            mu = joints[k, :2] / stride
            ul, br = mu - tmp, mu + tmp + 1
        else:
            mu = np.trunc(joints[k, :2] / stride + 0.5)
            ul, br = np.trunc(mu - tmp), np.trunc(mu + tmp + 1)
        if ul[0] >= w or ul[1] >= h or br[0] < 0 or br[1] < 0:
            weight[k] = 0.0
        if weight[k] <= 0.5:
            continue
        if unbiased:
            cx, cy = np.float32(mu[0]), np.float32(mu[1])
            target[k] = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / two_s2)
            continue
        half = (2 * tmp + 1) // 2
        cx, cy = np.float32(ul[0] + half), np.float32(ul[1] + half)
        g = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / two_s2)
        inside = ((xs >= max(0.0, ul[0])) & (xs < min(br[0], w))
                  & (ys >= max(0.0, ul[1])) & (ys < min(br[1], h)))
        target[k] = np.where(inside, g, 0.0)
    return target, weight


def sample_file_crcs(root_or_crcs) -> dict:
    """{relative path: crc32} of the files a golden's synthetic data consists of (a
    folder), or a recorded such dict, with MPII's ``gt_valid.mat`` left out: its bytes
    depend on the scipy version that wrote it (another MAT header), not on the data."""
    if isinstance(root_or_crcs, dict):
        return {k: v for k, v in root_or_crcs.items() if not k.endswith(".mat")}
    root = Path(root_or_crcs)
    return {str(p.relative_to(root)): zlib.crc32(p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file() and p.suffix != ".mat"}
