"""The prepared GPU check (issue 15): one command that measures, on one device, what the
training path costs and whether the data loader keeps up.

    python scripts/gpu_check.py --device cuda --out DIR          # ~8 minutes on an H200
    python scripts/gpu_check.py --device cpu --tiny --out DIR    # the same path, tiny sizes

For each model (Lite-HRNet-18 and HRNet-W32 on COCO 256x192 at batch 64, HRNetV2-W18
Small-v2 on Cityscapes 512x1024 crops at batch 8) and each mode (``fp32``: fp32, eager,
NCHW; ``bf16_cl``: bf16 autocast + channels_last; ``bf16_cl_compile``: the same +
``torch.compile``) it runs the project's training step (``bench.training.loop.Trainer.step``
with the task's loss, ``bench.tasks.get_task(...).loss``) on synthetic in-memory batches of
the task's shapes, the same seed and batches in every mode, and records:

* images/s in the steady state (after warm-up; CUDA-synchronised) and the peak memory
  (``torch.cuda.max_memory_allocated``; not on a CPU);
* the losses of the first ``loss_iters`` iterations and their largest relative difference
  from the fp32 mode's, against a stated tolerance (bf16: 5%).

Then the pose data loader's samples/s (synthetic COCO from ``bench.tasks.pose.synthetic.write_coco``
at a realistic image size) with 0/2/4/8 workers (capped by the CPU count), against the
images/s the GPU consumes in Lite-HRNet-18's fastest mode: is training loader-bound?
``--latency`` also runs the latency columns of Lite-HRNet Tables 3 and 5 and the smoke
profile of Table 6 on the device (not in tiny mode).

Writes ``gpu_check.json`` (after every measurement, so a run stopped by a timeout keeps
what it measured) and ``gpu_check.md`` into ``--out`` (default ``$OUT`` or
``results/gpu_check``).
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import torch

REPO = Path(__file__).resolve().parents[1]

# (model, protocol, batch, full-size input) ; the input is the protocol's for pose
MODELS = (
    {"model": "litehrnet_18", "protocol": "coco_256x192_lite_hrnet", "batch": 64},
    {"model": "hrnet_w32", "protocol": "coco_256x192_hrnet", "batch": 64},
    {"model": "hrnetv2_w18_small_v2_seg", "protocol": "cityscapes_512x1024_hrnet_seg",
     "batch": 8},
)
MODES = {
    "fp32": {"amp": "off", "channels_last": False, "compile": False},
    "bf16_cl": {"amp": "bf16", "channels_last": True, "compile": False},
    "bf16_cl_compile": {"amp": "bf16", "channels_last": True, "compile": True},
}
# largest relative difference of a mode's first losses from fp32's that still agrees
TOLERANCE = {"off": 1e-3, "bf16": 0.05, "fp16": 0.05}
FULL = {"warmup": 5, "iters": 20, "loss_iters": 5, "workers": (0, 2, 4, 8),
        "loader_images": 64, "loader_image_size": (480, 640), "loader_seconds": 10.0,
        "budget_s": 420.0}
TINY = {"warmup": 1, "iters": 2, "loss_iters": 2, "workers": (0,),
        "loader_images": 4, "loader_image_size": (96, 128), "loader_seconds": 3.0,
        "budget_s": 300.0, "pose_input": (64, 64), "pose_heatmap": (16, 16),
        "seg_crop": (64, 128), "batch": 2}


# ------------------------------------------------------------------ protocols and batches
def _protocol(name: str) -> dict:
    from bench.suite import load_protocol
    return load_protocol(name).model_dump(mode="json")


def _sized(protocol: dict, tiny: bool) -> dict:
    """The protocol with the tiny mode's sizes (unchanged otherwise)."""
    if not tiny:
        return protocol
    if protocol.get("task") == "segmentation":
        return {**protocol, "crop_size": list(TINY["seg_crop"])}
    return {**protocol, "input_size": list(TINY["pose_input"]),
            "heatmap_size": list(TINY["pose_heatmap"])}


def synthetic_batches(protocol: dict, batch: int, count: int, seed: int) -> list[dict]:
    """``count`` batches with the shapes and value ranges of the task's training items:
    pose: normalised images, Gaussian heatmaps (the protocol's sigma) at random joints,
    joint weights of 1 (a few 0); segmentation: images and labels in [0, classes) with a
    band of the ignore label (the padding of a crop)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        if protocol.get("task") == "segmentation":
            h, w = protocol["crop_size"]
            label = torch.randint(0, int(protocol["num_classes"]), (batch, h, w), generator=g)
            label[:, :, -max(1, w // 16):] = int(protocol.get("ignore_label", 255))
            out.append({"image": torch.randn(batch, 3, h, w, generator=g), "label": label})
        else:
            h, w = protocol["input_size"]
            hh, hw = protocol["heatmap_size"]
            joints = int(protocol.get("num_joints", 17))
            sigma = float(protocol.get("sigma", 2))
            cy = torch.rand(batch, joints, 1, 1, generator=g) * hh
            cx = torch.rand(batch, joints, 1, 1, generator=g) * hw
            ys = torch.arange(hh, dtype=torch.float32).view(1, 1, hh, 1)
            xs = torch.arange(hw, dtype=torch.float32).view(1, 1, 1, hw)
            target = torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * sigma ** 2))
            weight = (torch.rand(batch, joints, 1, generator=g) > 0.1).float()
            out.append({"image": torch.randn(batch, 3, h, w, generator=g),
                        "target": target, "target_weight": weight})
    return out


class _Placeholder:
    """What the Trainer needs of a dataset to be built (its length); the check feeds
    batches to ``Trainer.step`` directly."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        pass


# ------------------------------------------------------------------ training step
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def measure_mode(entry: dict, protocol: dict, mode: dict, device: torch.device, cfg: dict,
                 batches: list[dict], seed: int, work_dir: Path) -> dict:
    """One model in one mode: the first losses, then steady-state images/s and peak memory."""
    from bench.registry import create_model
    from bench.tasks import get_task
    from bench.training.loop import Trainer, TrainSettings

    task = get_task(protocol.get("task") or "pose")
    torch.manual_seed(seed)
    model = create_model(entry["model"])
    batch = batches[0]["image"].shape[0]
    settings = TrainSettings(
        epochs=1, batch_size=batch, lr=float(protocol["optimizer"]["lr"]),
        optimizer=dict(protocol["optimizer"]), schedule=dict(protocol["schedule"]),
        amp=mode["amp"], channels_last=mode["channels_last"], num_workers=0, seed=seed)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer = Trainer(model, _Placeholder(batch * len(batches)), settings, work_dir, device,
                      loss_fn=lambda outputs, b: task.loss(outputs, b, protocol),
                      log_fn=lambda _m: None)
    if mode["compile"]:
        trainer.train_model = torch.compile(trainer.model, backend=cfg["compile_backend"])
    trainer.train_model.train()
    # the batches live on the device already: the step's .to() is then a no-op, and the
    # measure is the model's, not the host-to-device copy's (the loader section is apart)
    fmt = torch.channels_last if mode["channels_last"] else torch.contiguous_format
    batches = [{k: (v.to(device, memory_format=fmt) if k == "image" else v.to(device))
                for k, v in b.items()} for b in batches]
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    losses = []
    n_first = max(cfg["loss_iters"], 1)
    for i in range(max(cfg["warmup"], n_first)):
        loss, _ = trainer.step(batches[i % len(batches)])
        if i < n_first:
            losses.append(loss)
    _sync(device)
    out["warmup_s"] = round(time.perf_counter() - t0, 3)
    out["losses"] = losses
    t0 = time.perf_counter()
    for i in range(cfg["iters"]):
        trainer.step(batches[i % len(batches)])
    _sync(device)
    wall = time.perf_counter() - t0
    out.update({"iters": cfg["iters"], "batch": batch, "measured_s": round(wall, 4),
                "images_per_s": round(cfg["iters"] * batch / wall, 2) if wall > 0 else None,
                "ms_per_iter": round(1000 * wall / cfg["iters"], 3)})
    if device.type == "cuda":
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
    del trainer, model, batches
    _free(device)
    return out


def _rel_diff(losses: list[float], reference: list[float]) -> Optional[float]:
    pairs = list(zip(losses, reference))
    if not pairs or not all(math.isfinite(a) and math.isfinite(b) for a, b in pairs):
        return None
    return max(abs(a - b) / max(abs(b), 1e-12) for a, b in pairs)


# ------------------------------------------------------------------ data loader
def measure_loader(device: torch.device, cfg: dict, seed: int, tiny: bool) -> dict:
    """Samples/s of the COCO training set (decoding, augmentation, targets, collation)
    for each worker count; the first batch (worker start-up) is timed apart."""
    from torch.utils.data import DataLoader

    from bench.tasks.pose.synthetic import write_coco
    from bench.tasks import get_task

    task = get_task("pose")
    protocol = _sized(_protocol("coco_256x192_lite_hrnet"), tiny)
    batch = TINY["batch"] if tiny else MODELS[0]["batch"]
    cpus = os.cpu_count() or 1
    workers = [w for w in cfg["workers"] if w <= cpus] or [0]
    out: dict[str, Any] = {"dataset": "synthetic COCO (bench.tasks.pose.synthetic.write_coco)",
                           "image_size": list(cfg["loader_image_size"]),
                           "input_size": protocol["input_size"], "batch": batch,
                           "cpu_count": cpus, "results": {}}
    with tempfile.TemporaryDirectory(prefix="gpu_check_coco_") as tmp:
        write_coco(Path(tmp) / "coco", num_images=cfg["loader_images"], seed=seed,
                   persons_per_image=(2, 4), image_size=cfg["loader_image_size"],
                   splits=("train2017",))
        dataset = task.build_dataset(protocol, tmp, train=True, seed=seed)
        out["samples"] = len(dataset)
        for n in workers:
            loader = DataLoader(dataset, batch_size=min(batch, len(dataset)), shuffle=True,
                                num_workers=n, drop_last=True,
                                pin_memory=device.type == "cuda",
                                collate_fn=task.collate_fn(train=True),
                                persistent_workers=n > 0)
            t0 = time.perf_counter()
            first, samples, epoch = None, 0, 0
            while True:
                dataset.set_epoch(epoch)
                for b in loader:
                    if first is None:
                        first = time.perf_counter() - t0
                        t1 = time.perf_counter()
                        continue
                    samples += b["image"].shape[0]
                if time.perf_counter() - t0 >= cfg["loader_seconds"] or (tiny and samples):
                    break
                epoch += 1
            wall = time.perf_counter() - t1
            out["results"][str(n)] = {
                "first_batch_s": round(first or 0.0, 3), "samples": samples,
                "samples_per_s": round(samples / wall, 2) if wall > 0 and samples else None}
            del loader
    rates = {int(k): v["samples_per_s"] for k, v in out["results"].items() if v["samples_per_s"]}
    if rates:
        best = max(rates, key=rates.get)
        out["best"] = {"workers": best, "samples_per_s": rates[best]}
    return out


# ------------------------------------------------------------------ latency (optional)
def run_latency(device: str, out_dir: Path, timeout: float) -> dict:
    """Lite-HRNet Tables 3 and 5 with --latency and Table 6's smoke profile on ``device``;
    their records go under ``out_dir/latency_runs``, not into results/."""
    runs = out_dir / "latency_runs"
    common = ["--device", device, "-q", "--no-report", "--results-dir", str(runs / "results"),
              "--work-dir", str(runs / "work_dirs")]
    commands = {
        "latency_tables_3_5": [sys.executable, "run_suite.py", "suites/lite_hrnet_table3.yaml",
                               "suites/lite_hrnet_table5.yaml", "--latency", *common],
        "smoke_table6": [sys.executable, "run_suite.py", "suites/lite_hrnet_table6.yaml",
                         "--profile", "smoke", *common],
    }
    out = {}
    for name, cmd in commands.items():
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                                  timeout=max(10.0, timeout))
            rc, text = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as err:
            rc, text = "timeout", f"{err}"
        out[name] = {"command": " ".join(cmd[1:]), "rc": rc,
                     "wall_s": round(time.perf_counter() - t0, 1), "output_tail": text[-3000:]}
    return out


# ------------------------------------------------------------------ report
def _fmt(v, digits=1):
    return "-" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def markdown(result: dict) -> str:
    s = result["settings"]
    lines = [f"# GPU check ({'tiny, ' if s['tiny'] else ''}{result['device']['name']})", "",
             f"torch {result['torch']}, device `{s['device']}`, seed {s['seed']}, "
             f"{s['warmup']} warm-up + {s['iters']} measured iterations, "
             f"losses compared over the first {s['loss_iters']}.", "",
             "## Training step (bench.training.loop.Trainer.step, synthetic batches)", "",
             "| model | input | batch | mode | images/s | ms/iter | peak GiB | warm-up s | "
             "rel. loss diff vs fp32: 1st iter | max | tolerance | agrees |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in result["training"].items():
        for mode, r in m["modes"].items():
            if "error" in r or "skipped" in r:
                lines.append(f"| {name} | {m['input']} | {m['batch']} | {mode} | "
                             f"{r.get('error') or 'skipped: ' + r['skipped']} |||||||")
                continue
            lines.append(
                f"| {name} | {m['input']} | {m['batch']} | {mode} | {_fmt(r['images_per_s'])} | "
                f"{_fmt(r['ms_per_iter'])} | {_fmt(r.get('peak_memory_gib'), 2)} | "
                f"{_fmt(r['warmup_s'])} | {_fmt(r.get('loss_rel_diff_first_iter'), 4)} | "
                f"{_fmt(r.get('loss_rel_diff_vs_fp32'), 4)} | "
                f"{_fmt(r.get('loss_tolerance'), 3)} | {r.get('loss_agrees', '-')} |")
    loader = result.get("loader")
    if loader:
        lines += ["", "## Data loader (COCO training set)", "",
                  f"{loader['samples']} samples from {loader['image_size'][0]}x"
                  f"{loader['image_size'][1]}-pixel images (at most), batch {loader['batch']}, "
                  f"{loader['cpu_count']} CPUs.", "",
                  "| workers | samples/s | first batch s |", "|---|---|---|"]
        for n, r in loader["results"].items():
            lines.append(f"| {n} | {_fmt(r['samples_per_s'])} | {_fmt(r['first_batch_s'], 2)} |")
        v = loader.get("verdict")
        if v:
            lines += ["", v["text"]]
    if result.get("latency"):
        lines += ["", "## Latency and smoke runs", ""]
        for name, r in result["latency"].items():
            lines.append(f"- {name}: rc {r['rc']}, {r['wall_s']} s (`{r['command']}`)")
    lines += ["", f"Total wall time {result.get('wall_s', '-')} s."]
    return "\n".join(lines) + "\n"


def _write(out_dir: Path, result: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gpu_check.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out_dir / "gpu_check.md").write_text(markdown(result))


# ------------------------------------------------------------------ main
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python scripts/gpu_check.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: $OUT or results/gpu_check)")
    p.add_argument("--tiny", action="store_true", help="tiny sizes: the path in well under a minute")
    p.add_argument("--models", default=None, help="comma-separated subset of the models")
    p.add_argument("--modes", default=None, help=f"comma-separated subset of {', '.join(MODES)}")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--loss-iters", type=int, default=None)
    p.add_argument("--workers", default=None, help="loader worker counts, e.g. 0,2,4,8")
    p.add_argument("--no-loader", action="store_true", help="skip the data loader section")
    p.add_argument("--latency", action="store_true",
                   help="also run Lite-HRNet Tables 3/5 --latency and Table 6's smoke profile")
    p.add_argument("--compile-backend", default=None,
                   help="torch.compile backend (default inductor; tiny mode: eager)")
    p.add_argument("--budget-s", type=float, default=None,
                   help="skip what is left after this many seconds (default 420; tiny 300)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    t_start = time.perf_counter()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for, but torch sees no CUDA device")
    out_dir = args.out or Path(os.environ.get("OUT") or "results/gpu_check")
    cfg = dict(FULL)
    if args.tiny:
        cfg.update({k: TINY[k] for k in FULL if k in TINY})
    for key in ("warmup", "iters", "loss_iters", "budget_s"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    if args.workers is not None:
        cfg["workers"] = tuple(int(w) for w in args.workers.split(","))
    # (pose inputs must be multiples of 32, HRNet's deepest stride: 64x64 in tiny mode)
    # tiny mode on a CPU: compile with the eager backend (dynamo traces, nothing is
    # generated): the code path of the compiled mode at a cost of seconds, not minutes
    cfg["compile_backend"] = args.compile_backend or ("eager" if args.tiny else "inductor")
    models = [m for m in MODELS if not args.models or m["model"] in args.models.split(",")]
    modes = {k: v for k, v in MODES.items() if not args.modes or k in args.modes.split(",")}

    from bench.env import provenance
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        dev = {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
               "capability": f"{props.major}.{props.minor}"}
        torch.backends.cudnn.benchmark = True
    else:
        from bench.env import cpu_name
        dev = {"name": cpu_name(), "threads": torch.get_num_threads()}
    result: dict[str, Any] = {
        "kind": "gpu_check", "device": dev, "torch": torch.__version__,
        "settings": {"device": str(device), "tiny": args.tiny, "seed": args.seed,
                     **{k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
                     "modes": modes, "loss_tolerance": TOLERANCE},
        "provenance": provenance(), "training": {},
    }

    def over_budget() -> bool:
        return time.perf_counter() - t_start > cfg["budget_s"]

    with tempfile.TemporaryDirectory(prefix="gpu_check_work_") as work:
        for entry in models:
            protocol = _sized(_protocol(entry["protocol"]), args.tiny)
            batch = TINY["batch"] if args.tiny else entry["batch"]
            seg = protocol.get("task") == "segmentation"
            size = protocol["crop_size"] if seg else protocol["input_size"]
            batches = synthetic_batches(protocol, batch, 2, args.seed)
            m = result["training"][entry["model"]] = {
                "protocol": entry["protocol"], "task": protocol.get("task") or "pose",
                "input": f"{size[0]}x{size[1]}", "batch": batch, "modes": {}}
            reference = None
            for name, mode in modes.items():
                if over_budget():
                    m["modes"][name] = {"skipped": f"time budget ({cfg['budget_s']:g} s) spent"}
                    continue
                print(f"[gpu_check] {entry['model']} {name} ...", flush=True)
                try:
                    r = measure_mode(entry, protocol, mode, device, cfg, batches, args.seed,
                                     Path(work) / entry["model"] / name)
                except Exception as err:   # one mode's failure (compile, OOM) is a result too
                    _free(device)
                    text = " ".join(str(err).split()).replace("|", "/")
                    r = {"error": f"{type(err).__name__}: {text[:300]}"}
                if name == "fp32" and "losses" in r:
                    reference = r["losses"]
                if "losses" in r and reference is not None:
                    tol = TOLERANCE[mode["amp"]]
                    diff = _rel_diff(r["losses"], reference)
                    # the first loss is the forward pass alone; the later ones add the
                    # drift of the optimiser steps taken on each mode's own gradients
                    r.update({"loss_rel_diff_vs_fp32": diff,
                              "loss_rel_diff_first_iter": _rel_diff(r["losses"][:1], reference[:1]),
                              "loss_tolerance": tol,
                              "loss_agrees": diff is not None and diff <= tol})
                m["modes"][name] = r
                print(f"[gpu_check]   {r.get('images_per_s', r.get('error'))} images/s", flush=True)
                _write(out_dir, result)

        if not args.no_loader:
            if over_budget():
                result["loader"] = None
            else:
                print("[gpu_check] data loader ...", flush=True)
                loader = measure_loader(device, cfg, args.seed, args.tiny)
                first = result["training"].get(MODELS[0]["model"], {}).get("modes", {})
                rates = {k: v["images_per_s"] for k, v in first.items() if v.get("images_per_s")}
                if rates and loader.get("best"):
                    fastest = max(rates, key=rates.get)
                    need, have = rates[fastest], loader["best"]["samples_per_s"]
                    bound = have < need
                    loader["verdict"] = {
                        "model": MODELS[0]["model"], "fastest_mode": fastest,
                        "gpu_images_per_s": need, "loader_samples_per_s": have,
                        "loader_workers": loader["best"]["workers"], "loader_bound": bound,
                        "text": (f"{MODELS[0]['model']} consumes {need:.1f} images/s in its "
                                 f"fastest mode ({fastest}); the loader gives {have:.1f} "
                                 f"samples/s with {loader['best']['workers']} workers: "
                                 + ("training would be LOADER-BOUND." if bound else
                                    "the loader keeps up."))}
                result["loader"] = loader
                _write(out_dir, result)

    if args.latency and not args.tiny:
        left = cfg["budget_s"] + 60 - (time.perf_counter() - t_start)
        result["latency"] = run_latency(str(device), out_dir, timeout=left / 2) if left > 20 \
            else {"skipped": "time budget spent"}
    result["wall_s"] = round(time.perf_counter() - t_start, 1)
    _write(out_dir, result)
    print(f"[gpu_check] wrote {out_dir / 'gpu_check.json'} and {out_dir / 'gpu_check.md'} "
          f"({result['wall_s']} s)", flush=True)
    return result


if __name__ == "__main__":
    main()
