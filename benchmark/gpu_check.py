"""``make gpu-check`` (``python -m benchmark.gpu_check``): what this suite does on a GPU
workstation, measured by one script in at most 8 minutes on a 16-core machine with one GPU,
with only what such a machine has (torch, torchvision, timm, OpenCV, ONNX Runtime, nvidia-ml-py
for NVML; facenet-pytorch for MTCNN) and LFW with its reference crops.

Sections, in the order they run and print:

0. the machine: CPU cores, GPU, driver, torch and its CUDA build, onnxruntime's providers;
1. detectors: every ready detector (``--methods``) asked to run on ``--device``: the device it
   really ran on and its images per second (:func:`benchmark.speed.stages`);
2. embedder: the torch embedder on ``--device`` at batch 64, 256 and 1024 in fp32 (TF32 off),
   TF32 and fp16: images per second and the max cosine distance to the CPU fp32 embeddings of
   the same reference crops;
3. LFW pass: the full LFW pass (6,000 pairs) with YuNet in detection replicas (``auto``: one per
   core less one) and the torch embedder on ``--device``, against the same pass with the
   embedder on the CPU: wall time, accuracy (equal?), and the GPU memory peak as NVML saw this
   process against torch's allocated and reserved peaks;
4. replicas' scaling: YuNet on the CPU with 1, 2, 4, 8 and 16 detection workers feeding the
   embedder on ``--device``: images per second and the speed-up over one worker.

``--device cpu`` is the reduced run, a check that everything runs (under two minutes on 2 cores,
not a measurement): 8 images per detector, fp32 only at batch 64 and 256, the LFW pass on 40
pairs with 2 workers on the CPU only, scaling from 1 to 2 workers; each CUDA-only part prints why
it is skipped. Every figure also goes to ``gpu_check.json`` and ``gpu_check.md`` in ``--out``.

Failing loudly: ``--device cuda`` without a usable GPU stops at once (status 2, saying what is
missing); a stage asked for CUDA that runs elsewhere where that cannot be (the torch embedder) is
an error; a section that raises prints FAILED with its traceback, the others still run, and the
exit status is 1.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from backbones import DEFAULT_EMBEDDER, create_embedder
from face_alignment import load_image
from face_alignment.errors import FaceBenchError
from face_alignment.runtime import check_device, set_tf32

from .protocol.scores import summarize
from .run.replicas import resolve_detect_workers, usable_cores
from .speed import (
    EnginePass,
    Sizes,
    SpeedData,
    engine_pass,
    interleaved_rates,
    load_data,
    machine_name,
    method_work,
    pass_pairs,
    same_results,
    stages,
)

Rows = list[dict]


@dataclass(frozen=True)
class CheckSizes:
    """How much each section measures: on a GPU, or the reduced ``--device cpu`` run."""

    detector_images: int
    repeats: int
    embed_batches: tuple[int, ...]
    embed_crops: int
    precisions: tuple[str, ...]  # fp32 (TF32 off), tf32, fp16
    lfw_pairs: int | None  # None: all 6,000
    lfw_workers: int | str
    scaling_workers: tuple[int, ...]
    scaling_images: int


ON_GPU = CheckSizes(32, 3, (64, 256, 1024), 4096, ("fp32", "tf32", "fp16"), None, "auto", (1, 2, 4, 8, 16), 2048)
ON_CPU = CheckSizes(8, 1, (64, 256), 256, ("fp32",), 40, 2, (1, 2), 96)


@dataclass
class CheckReport:
    """Every section's rows (one dict per printed line), and what was skipped or failed, and why."""

    device: str
    machine: dict
    sections: dict[str, Rows]
    skipped: dict[str, str]
    failed: dict[str, str]
    seconds: float = 0.0


def run(device: str, lfw_dir=None, aligned_dir=None, weights_dir=None, methods: tuple[str, ...] | None = None,
        out: str | Path = "results/gpu-check") -> CheckReport:
    """Every section (see the module docstring), printed and written to ``out``."""
    started = time.perf_counter()
    device = check_device(device)
    on_cuda = device.startswith("cuda")
    sizes = ON_GPU if on_cuda else ON_CPU
    data = load_data(lfw_dir, aligned_dir, weights_dir)
    report = CheckReport(device, machine_info(device), {}, {}, {})
    print(f"facebench gpu-check on {device}{'' if on_cuda else ' (the reduced run: a check, not a measurement)'}")
    for key, value in report.machine.items():
        print(f"   {key:20s} {value}")
    sections: dict[str, Callable[[], Rows]] = {
        "1. detectors": lambda: detectors(data, device, methods, sizes),
        "2. embedder": lambda: embedder_section(data, device, sizes, report.skipped),
        "3. LFW pass": lambda: lfw_pass(data, device, sizes, report.skipped),
        "4. replicas scaling": lambda: scaling(data, device, sizes),
    }
    for name, section in sections.items():
        try:
            report.sections[name] = section()
        except Exception as exc:  # the other sections still run; the exit status says it failed
            report.failed[name] = f"{type(exc).__name__}: {exc}"
            print(f"\n{name}: FAILED: {report.failed[name]}")
            traceback.print_exc()
        finally:
            if on_cuda:
                set_tf32(False)
    report.seconds = time.perf_counter() - started
    print(f"\ngpu-check: {report.seconds:.0f} s; {len(report.failed)} section(s) failed; figures in "
          f"{write_outputs(report, Path(out))}")
    return report


def machine_info(device: str) -> dict:
    """What the figures were measured on."""
    import cv2
    import onnxruntime
    import torch

    info = {"cpu": f"{machine_name()}, {usable_cores()} usable",
            "torch": f"{torch.__version__} (CUDA build {torch.version.cuda or 'none'})",
            "onnxruntime": f"{onnxruntime.__version__}, providers {', '.join(onnxruntime.get_available_providers())}",
            "opencv": f"{cv2.__version__}, CUDA devices {cv2.cuda.getCudaEnabledDeviceCount()}"}
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        properties = torch.cuda.get_device_properties(index)
        info["gpu"] = (f"{properties.name}, {properties.total_memory / 2**30:.0f} GiB, "
                       f"{torch.cuda.device_count()} GPU(s)")
    info["nvidia driver"] = _driver()
    return info


def _driver() -> str:
    try:
        import pynvml
    except ImportError:
        return "n/a: no NVML binding (nvidia-ml-py; `make setup GPU=1` installs it)"
    try:
        pynvml.nvmlInit()
        try:
            return str(pynvml.nvmlSystemGetDriverVersion())
        finally:
            pynvml.nvmlShutdown()
    except Exception as exc:  # pynvml's NVMLError subclasses
        return f"n/a: NVML did not start ({type(exc).__name__}: {exc})"


# -- 1. detectors ------------------------------------------------------------------------------------

def detectors(data: SpeedData, device: str, methods: tuple[str, ...] | None, sizes: CheckSizes) -> Rows:
    """Each ready detector's asked and real device and images per second."""
    measured, not_run = stages(data, device, methods, Sizes(None, 1, sizes.detector_images, sizes.detector_images,
                                                            0, sizes.repeats, False, False), "1. detectors")
    rows = [{"stage": r.name, "asked": r.asked or "cpu", "ran_on": r.device, "images_per_s": r.median,
             "min": min(r.per_round), "max": max(r.per_round)} for r in measured]
    return rows + [{"stage": f"detect {name}", "not_run": reason} for name, reason in not_run.items()]


# -- 2. embedder -------------------------------------------------------------------------------------

def embedder_section(data: SpeedData, device: str, sizes: CheckSizes, skipped: dict[str, str]) -> Rows:
    """The torch embedder on ``device`` per precision and batch: images per second and the max
    cosine distance to the CPU fp32 embeddings."""
    crops = np.stack([load_image(data.aligned_dir / p) for p in data.pairs.images[:sizes.embed_crops]])
    reference = _torch_embedder(data, "cpu", "fp32", 256).embed(crops)
    print(f"\n2. embedder: torch {DEFAULT_EMBEDDER} on {device}, {len(crops)} aligned LFW crops; max cos d = the "
          f"largest cosine distance to the CPU fp32 embeddings; images/s median (min..max) of {sizes.repeats} rounds")
    if not device.startswith("cuda"):
        skipped["2. embedder: tf32, fp16, batch 1024"] = "CUDA only: the reduced --device cpu run"
        print("   tf32, fp16 and batch 1024: skipped (CUDA only; this is the reduced --device cpu run)")
    rows = []
    for precision in sizes.precisions:
        for batch in sizes.embed_batches:
            embedder = _torch_embedder(data, device, "fp16" if precision == "fp16" else "fp32", batch)
            if device.startswith("cuda"):
                set_tf32(precision == "tf32")
            rates = interleaved_rates({"embed": lambda e=embedder: len(e.embed(crops))}, sizes.repeats)["embed"]
            distance = float(np.max(1.0 - np.sum(embedder.embed(crops) * reference, axis=1)))
            rows.append({"precision": precision, "batch": batch, "device": embedder.real_device,
                         "images_per_s": float(np.median(rates)), "min": min(rates), "max": max(rates),
                         "max_cosine_distance": distance})
            print(f"   {precision:5s} batch {batch:5d}  {np.median(rates):9.1f} img/s  "
                  f"({min(rates):.1f}..{max(rates):.1f})   max cos d {distance:.1e}   on {embedder.real_device}")
    return rows


def _torch_embedder(data: SpeedData, device: str, precision: str, batch: int | None):
    """The torch embedder, refused where it does not run on ``device``'s kind."""
    embedder = create_embedder("torch", precision, DEFAULT_EMBEDDER, weights_dir=data.weights_dir, device=device,
                               batch_size=batch)
    if embedder.real_device.split(":")[0] != device.split(":")[0]:
        raise FaceBenchError(f"the torch embedder asked for {device} runs on {embedder.real_device}")
    return embedder


# -- 3. LFW pass -------------------------------------------------------------------------------------

def lfw_pass(data: SpeedData, device: str, sizes: CheckSizes, skipped: dict[str, str]) -> Rows:
    """YuNet in detection replicas and the embedder on ``device``, against the embedder on the CPU."""
    pairs = pass_pairs(data, sizes.lfw_pairs)
    workers = resolve_detect_workers(sizes.lfw_workers)
    devices = [device, "cpu"] if device.startswith("cuda") else ["cpu"]
    print(f"\n3. LFW pass: {len(pairs)} pairs, {len(pairs.images)} images, yunet in {workers} detection "
          f"replica(s) + torch {DEFAULT_EMBEDDER} fp32 (TF32 off; default batch of its device), models loaded")
    if len(devices) == 1:
        skipped["3. LFW pass on the GPU"] = "CUDA only: the reduced --device cpu run"
        print("   the pass on the GPU: skipped (CUDA only; this is the reduced --device cpu run)")
    rows, passes = [], {}
    for pass_device in devices:
        embedder = _torch_embedder(data, pass_device, "fp32", None)
        work = method_work(data, "yunet", pairs.images, embedder, pass_device)
        engine_pass(replace(work, images=work.images[:8]), 1)  # warm-up: CUDA context, cuDNN's algorithm choice
        done = passes[pass_device] = engine_pass(work, workers)
        gpu = done.memory.gpu
        row = {"embedder_device": embedder.real_device, "batch": embedder.batch_size, "detect_workers": workers,
               "wall_s": done.wall, "cpu_s": done.cpu, "accuracy": summarize(done.results.score(pairs))["accuracy"],
               "nvml_peak_mb": gpu.nvml_mb, "torch_allocated_peak_mb": gpu.torch_allocated_mb,
               "torch_reserved_peak_mb": gpu.torch_reserved_mb, "peak_rss_mb": done.memory.peak_rss_mb}
        rows.append(row)
        nvml = f"{row['nvml_peak_mb']:.0f} MB" if isinstance(row["nvml_peak_mb"], float) else row["nvml_peak_mb"]
        print(f"   embedder on {row['embedder_device']:7s} wall {done.wall:6.1f} s   CPU {done.cpu:6.1f} s   accuracy "
              f"{row['accuracy']:.4f}   GPU peak: NVML {nvml}, torch allocated {gpu.torch_allocated_mb:.0f} MB, "
              f"reserved {gpu.torch_reserved_mb:.0f} MB   peak RSS {done.memory.peak_rss_mb:.0f} MB")
    if len(passes) == 2:
        rows.append(_compare(*passes.values(), rows))
    return rows


def _compare(gpu: EnginePass, cpu: EnginePass, rows: Rows) -> dict:
    """The GPU pass against the CPU pass: speed-up, accuracy, detections, embeddings."""
    a, b = gpu.results, cpu.results
    same_crops = bool(np.array_equal(a.status, b.status) and np.array_equal(a.landmarks, b.landmarks, equal_nan=True))
    distance = float(np.max(1.0 - np.sum(a.embeddings * b.embeddings, axis=1)))
    row = {"cpu_wall_over_gpu_wall": cpu.wall / gpu.wall,
           "accuracy_equal": bool(rows[0]["accuracy"] == rows[1]["accuracy"]),
           "same_detections": same_crops, "max_cosine_distance": distance}
    print(f"   GPU / CPU: {row['cpu_wall_over_gpu_wall']:.2f}x faster; accuracy "
          f"{'equal' if row['accuracy_equal'] else 'DIFFERS'}; detections {'identical' if same_crops else 'DIFFER'}; "
          f"embeddings max cos d {distance:.1e}")
    return row


# -- 4. replicas scaling -----------------------------------------------------------------------------

def scaling(data: SpeedData, device: str, sizes: CheckSizes) -> Rows:
    """YuNet on the CPU in 1..N detection replicas, the embedder on ``device``."""
    images = data.pairs.images[:sizes.scaling_images]
    embedder = _torch_embedder(data, device, "fp32", None)
    work = method_work(data, "yunet", images, embedder, "cpu")
    engine_pass(replace(work, images=images[:8]), 1)  # warm-up
    print(f"\n4. detection replicas' scaling: {len(images)} LFW images, yunet on the CPU ({usable_cores()} cores), "
          f"torch embedder on {embedder.real_device}")
    rows, first = [], None
    for workers in sizes.scaling_workers:
        done = engine_pass(work, workers)
        first = first or done
        row = {"detect_workers": workers, "wall_s": done.wall, "images_per_s": len(images) / done.wall,
               "speedup": first.wall / done.wall, "cores_busy": done.cpu / done.wall,
               "same_as_one_worker": same_results(done.results, first.results)}
        rows.append(row)
        print(f"   {workers:2d} worker(s)  {row['images_per_s']:7.1f} img/s   {row['speedup']:5.2f}x   "
              f"{row['cores_busy']:5.2f} cores busy   results {'identical' if row['same_as_one_worker'] else 'DIFFER'}")
    return rows


# -- outputs -----------------------------------------------------------------------------------------

def write_outputs(report: CheckReport, out: Path) -> Path:
    """``gpu_check.json`` (everything) and ``gpu_check.md`` (a table per section) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(report.__dict__, indent=2, default=str) + "\n")
    lines = [f"# facebench gpu-check on {report.device} ({report.seconds:.0f} s)", ""]
    lines += [f"- {key}: {value}" for key, value in report.machine.items()]
    for name, rows in report.sections.items():
        lines += ["", f"## {name}", "", *_table(rows)]
    for title, reasons in (("Skipped", report.skipped), ("FAILED", report.failed)):
        if reasons:
            lines += ["", f"## {title}", "", *(f"- {name}: {why}" for name, why in reasons.items())]
    (out / "gpu_check.md").write_text("\n".join(lines) + "\n")
    return out


def _table(rows: Rows) -> list[str]:
    columns = list(dict.fromkeys(key for row in rows for key in row))

    def cell(value) -> str:
        return f"{value:.4g}" if isinstance(value, float) else "" if value is None else str(value)

    return [f"| {' | '.join(columns)} |", f"|{'---|' * len(columns)}",
            *(f"| {' | '.join(cell(row.get(c)) for c in columns)} |" for row in rows)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.gpu_check", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu for the reduced run (default: cuda)")
    parser.add_argument("--lfw-dir", help="LFW (default: the usual places, as facebench run)")
    parser.add_argument("--aligned-dir", help="LFW's reference crops (default: <lfw>/aligned-112)")
    parser.add_argument("--weights-dir", help="the model weights (default: checkpoints/)")
    parser.add_argument("--methods", help="comma-separated detectors of section 1 (default: every ready one)")
    parser.add_argument("--out", default="results/gpu-check", help="where gpu_check.json and .md go "
                        "(default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip()) if args.methods else None
    try:
        report = run(args.device, args.lfw_dir, args.aligned_dir, args.weights_dir, methods, args.out)
    except FaceBenchError as exc:
        print(f"gpu-check: error: {exc}", file=sys.stderr)
        return 2
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
