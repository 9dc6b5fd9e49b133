"""``facebench speed`` (``python -m benchmark speed``, ``make bench-speed``): how fast each stage
runs on this machine, and what the pipelined runner gains over a plain loop.

Sections, in the order they run and print:

1. end to end: a full LFW pass (6,000 pairs; ``--quick``: 40) with YuNet and the embedder
   (each backend of ``--embedder``), models already loaded: the pipelined runner
   (:mod:`benchmark.pipeline`) against a plain sequential loop (decode, detect, align one image
   after another, embed each batch of 64 as it fills, each library on every core), wall time,
   CPU time (and so the cores kept busy), peak RSS and accuracy of each (they must be equal;
   wall time: the median of 3 rounds, the two passes taking turns): an
   overlap gains only the time the sequential loop leaves cores idle. It runs first, so that the
   models and crops of the later sections do not count in its RSS;
2. stages: decode (one thread), each ready detector (batches of 8) and alignment, as images
   per second on a sample of LFW images;
3. embedder: each backend and precision at batch 64 on real aligned crops (``aligned-112``),
   with its ratio to PyTorch eager fp32, its LFW accuracy on the 6,000 pairs of the reference
   crops and its agreement with PyTorch fp32 (MSE, max cosine distance), and the onnxruntime
   CPU settings tried.

Throughputs are the median over ``--repeats`` rounds with the min..max beside it; in each round
every compared path runs once, in turn, so that paths compared share the machine's load.
"""
from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from backbones import DEFAULT_EMBEDDER
from backbones.embedder import BACKENDS, PRECISIONS, create_embedder
from face_alignment import align_face, create_detector, list_methods, load_image
from face_alignment.errors import FaceBenchError
from face_alignment.runtime import resolve_device

from .cache import FOUND, UNREADABLE, MethodResults
from .calibration import lfw_calibration
from .evaluate import pair_scores, summarize
from .lfw import PairList, find_image_root, find_pairs_file, read_pairs, subset_pairs
from .pipeline import process_images, safe_load
from .runner import default_lfw_dir, detector_cropper
from .sysinfo import PeakMemory

log = logging.getLogger(__name__)

EMBED_BATCH = 64


@dataclass(frozen=True)
class Sizes:
    """How much each section measures (full run or ``--quick``)."""

    pairs: int | None  # pairs of the end-to-end pass (None: all)
    pass_rounds: int  # end-to-end passes of each kind (the median is printed)
    stage_images: int
    detector_images: int
    embed_crops: int
    repeats: int
    every_path: bool  # every backend and precision (else the fp32 ones), and the onnxruntime settings
    score: bool  # LFW accuracy and parity of each embedder path on all reference crops


FULL = Sizes(None, 3, 256, 32, 512, 5, True, True)
QUICK = Sizes(40, 1, 16, 8, 64, 2, False, False)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="facebench speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lfw-dir", help="LFW root with lfw-deepfunneled/, pairs.txt and aligned-112/ (default: "
                   "$FACEBENCH_LFW, data/lfw or ../shared/data/lfw)")
    p.add_argument("--aligned-dir", help="reference crops (default: <lfw-dir>/aligned-112)")
    p.add_argument("--weights-dir", help="folder with the weights (default: $FACEBENCH_WEIGHTS or checkpoints/)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present, else CPU), cpu, cuda ...")
    p.add_argument("--embedder", default="torch,onnx",
                   help=f"embedder backends of the end-to-end pass, comma-separated, from {', '.join(BACKENDS)} "
                   "(default: %(default)s)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="its precision (default: %(default)s)")
    p.add_argument("--methods", help="comma-separated detectors for the stage section (default: every ready one; "
                   "with --quick: yunet)")
    p.add_argument("--repeats", type=int, help=f"rounds per throughput (default: {FULL.repeats}, --quick "
                   f"{QUICK.repeats})")
    p.add_argument("--cache-dir", help="where exported / quantized ONNX models are kept (default: "
                   "~/.cache/facebench/onnx)")
    p.add_argument("--sections", default="1,2,3", help="which sections to run, e.g. 1 or 2,3 (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="small samples, 40 pairs end to end, fp32 embedders only, "
                   "no accuracy section: a check that everything runs, not a measurement")
    p.add_argument("--quiet", action="store_true", help="warnings and errors only")
    return p


@dataclass
class _Data:
    pairs: PairList  # the full pairs list
    image_root: Path
    aligned_dir: Path
    weights_dir: str | None


def run(args) -> int:
    """Measure and print every section (see the module docstring)."""
    sizes = QUICK if args.quick else FULL
    backends = _backends(args.embedder)
    if args.repeats:
        sizes = replace(sizes, repeats=max(1, args.repeats))
    lfw_dir = args.lfw_dir or default_lfw_dir()
    if lfw_dir is None:
        raise FaceBenchError("no LFW folder given or found: pass --lfw-dir")
    image_root = find_image_root(lfw_dir)
    data = _Data(read_pairs(find_pairs_file(lfw_dir, image_root)), image_root,
                 Path(args.aligned_dir) if args.aligned_dir else Path(lfw_dir) / "aligned-112", args.weights_dir)
    if not data.aligned_dir.is_dir():
        raise FaceBenchError(f"no reference crops at {data.aligned_dir}: pass --aligned-dir")
    device = resolve_device(args.device)
    print(f"facebench speed on {_machine()} ({device}){' --quick' if args.quick else ''}; throughput = median "
          f"(min..max) over {sizes.repeats} rounds, compared paths interleaved")
    sections = {s.strip() for s in args.sections.split(",")}
    if "1" in sections:
        end_to_end(data, args, sizes, backends)
    if "2" in sections:
        methods = args.methods.split(",") if args.methods else (["yunet"] if args.quick else None)
        stages(data, device, methods, sizes)
    if "3" in sections:
        embedders(data, device, args.cache_dir, sizes)
    return 0


def _machine() -> str:
    import platform

    try:
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "")
    except OSError:
        model = ""
    return f"{model or platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"


def _rates(paths: dict[str, Callable[[], int]], repeats: int) -> dict[str, list[float]]:
    """Images per second of each path, ``repeats`` interleaved rounds after one warm-up call."""
    for work in paths.values():
        work()
    rates: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, work in paths.items():
            start = time.perf_counter()
            count = work()
            rates[name].append(count / (time.perf_counter() - start))
    return rates


def _fmt(rates: list[float]) -> str:
    return f"{np.median(rates):8.1f}  ({min(rates):.1f}..{max(rates):.1f})"


# -- 1. end to end ---------------------------------------------------------------------------------

def end_to_end(data: _Data, args, sizes: Sizes, backends: list[str]) -> None:
    pairs = subset_pairs(data.pairs, sizes.pairs // 20) if sizes.pairs else data.pairs
    cropper = detector_cropper(create_detector("yunet", device=args.device, weights_dir=data.weights_dir))
    calibration = _calibration(data) if args.precision == "int8" else None
    cores = os.cpu_count() or 1
    print(f"\n1. end to end: {len(pairs)} pairs, {len(pairs.images)} images, yunet + {DEFAULT_EMBEDDER} "
          f"({args.precision}), models loaded. The sequential loop leaves each library its own threading "
          f"(every core); the pipelined runner shares the {cores} cores between its stages. CPU = the "
          "process's CPU time; cores = CPU / wall, how busy the pass kept the machine (spinning threads count).")
    for backend in backends:
        def build(threads: int | None, backend=backend):
            return create_embedder(backend, args.precision, DEFAULT_EMBEDDER, weights_dir=data.weights_dir,
                                   device=args.device, batch_size=EMBED_BATCH, calibration=calibration,
                                   cache_dir=args.cache_dir, threads=threads)

        passes = {  # name: (the embedder's threads per call, the pass)
            "pipelined runner": (None, lambda e, r: process_images(pairs.images, data.image_root, cropper, e, r,
                                                                   progress=False)),
            "sequential loop": (0, lambda e, r: sequential_pass(pairs.images, data.image_root, cropper, e, r)),
        }
        timed: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in passes}
        device = ""
        for _ in range(sizes.pass_rounds):  # the two passes take turns, so that they share the machine's load
            for name, (threads, work) in passes.items():
                embedder, results = build(threads), MethodResults.empty(len(pairs.images))  # loaded per pass:
                device = embedder.device  # its RSS is the pass's alone
                with PeakMemory(device) as memory:
                    cpu, start = time.process_time(), time.perf_counter()
                    work(embedder, results)
                    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
                timed[name].append((wall, cpu, memory.peak_rss_mb, summarize(pair_scores(results, pairs))["accuracy"]))
                del embedder
        median_wall = {}
        for name, rounds in timed.items():
            walls, cpus, rss, accuracies = (np.array(column) for column in zip(*rounds))
            i = int(np.argsort(walls)[len(walls) // 2])  # the median round (pass_rounds is odd)
            median_wall[name] = walls[i]
            print(f"   {backend:8s} {name:17s} wall {walls[i]:6.1f} s ({walls.min():.1f}..{walls.max():.1f})   CPU "
                  f"{cpus[i]:6.1f} s ({cpus[i] / walls[i]:4.2f} cores)   peak RSS {rss.max():5.0f} MB   accuracy "
                  f"{accuracies[0]:.4f}{'' if np.all(accuracies == accuracies[0]) else ' VARIES'}  ({device})")
        acc_p, acc_s = (timed[name][0][3] for name in passes)
        print(f"   {backend:8s} pipelined / sequential wall time "
              f"{median_wall['pipelined runner'] / median_wall['sequential loop']:.2f}x (medians of "
              f"{sizes.pass_rounds}); accuracy {'equal' if acc_p == acc_s else f'DIFFERS ({acc_p - acc_s:+.4f})'}")


def _backends(spec: str) -> list[str]:
    backends = [b.strip() for b in spec.split(",") if b.strip()]
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        raise FaceBenchError(f"--embedder: unknown backend {', '.join(unknown) or repr(spec)}; "
                             f"choose from {', '.join(BACKENDS)}")
    return backends


def sequential_pass(images: list[str], root: Path, cropper, embedder, results: MethodResults) -> MethodResults:
    """The plain loop the pipeline is measured against: each image decoded, detected and aligned
    in turn, each batch of 64 crops embedded when it fills; nothing overlaps."""
    pending: list[tuple[int, object]] = []

    def embed_pending() -> None:
        embeddings = embedder.embed(np.stack([o.crop for _, o in pending]))
        for (i, outcome), embedding in zip(pending, embeddings):
            results.embeddings[i], results.status[i] = embedding, outcome.status
            results.landmarks[i], results.scores[i] = outcome.landmarks, outcome.score
        pending.clear()

    for i, rel in enumerate(images):
        image, error = safe_load(root / rel)
        if image is None:
            results.status[i], results.reasons[i] = UNREADABLE, error
            continue
        pending.append((i, cropper([image])[0]))
        if len(pending) == EMBED_BATCH:
            embed_pending()
    if pending:
        embed_pending()
    return results


def _calibration(data: _Data):
    return lfw_calibration(data.image_root, data.pairs, data.weights_dir)


# -- 2. stages ---------------------------------------------------------------------------------------

def stages(data: _Data, device: str, methods: list[str] | None, sizes: Sizes) -> None:
    sample = [data.image_root / p for p in data.pairs.images[:sizes.stage_images]]
    images = [load_image(p) for p in sample]
    few = images[:sizes.detector_images]
    yunet = create_detector("yunet", device=device, weights_dir=data.weights_dir)
    landmarks = [faces[0].landmarks if faces else None for faces in yunet.detect(images)]
    found = [(im, lm) for im, lm in zip(images, landmarks) if lm is not None]

    def decode() -> int:
        for path in sample:
            load_image(path)
        return len(sample)

    def align() -> int:
        for image, points in found:
            align_face(image, points)
        return len(found)

    print(f"\n2. stages (images/s; decode and align on {len(sample)} LFW images, detectors on {len(few)} "
          "in batches of 8)")
    for name, rates in _rates({"decode (1 thread)": decode, "align": align}, sizes.repeats).items():
        print(f"   {name:28s} {_fmt(rates)}")
    names = methods or [s.name for s in list_methods(data.weights_dir) if s.ready]
    for name in names:
        try:
            detector = create_detector(name, device=device, weights_dir=data.weights_dir)
        except (FaceBenchError, ImportError, RuntimeError, OSError) as exc:
            print(f"   detect {name:21s} not run: {exc}")
            continue
        rates = _rates({name: lambda d=detector: _detect_all(d, few)}, sizes.repeats)[name]
        print(f"   detect {name:21s} {_fmt(rates)}   on {detector.device}")


def _detect_all(detector, images: list[np.ndarray], batch: int = 8) -> int:
    for start in range(0, len(images), batch):
        detector.detect(images[start:start + batch])
    return len(images)


# -- 3. embedders ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EmbedPath:
    """One embedder configuration to time; ``scored`` ones also get LFW accuracy and parity
    (onnxruntime setting variants run the same model with the same numerics: not re-scored)."""

    label: str
    build: Callable[[], object]
    scored: bool = True


def embed_paths(data: _Data, device: str, cache_dir, every_path: bool = True) -> list[EmbedPath]:
    """PyTorch fp32 first (the baseline), then every other backend and precision that runs here."""
    from backbones.onnx_embedder import OrtSettings
    from backbones.quantize import dynamic_int8_model

    def make(backend: str, precision: str) -> Callable[[], object]:
        calibration = _calibration(data) if precision == "int8" else None
        return lambda: create_embedder(backend, precision, DEFAULT_EMBEDDER, weights_dir=data.weights_dir,
                                       device=device, batch_size=EMBED_BATCH, calibration=calibration,
                                       cache_dir=cache_dir)

    paths = [EmbedPath("torch fp32", make("torch", "fp32")), EmbedPath("onnx fp32", make("onnx", "fp32")),
             EmbedPath("openvino fp32", make("openvino", "fp32"))]
    if not every_path:
        return paths
    if device.startswith("cuda"):
        paths += [EmbedPath("torch fp16", make("torch", "fp16")), EmbedPath("onnx fp16", make("onnx", "fp16"))]
    paths += [EmbedPath("openvino fp16", make("openvino", "fp16")), EmbedPath("onnx int8", make("onnx", "int8")),
              EmbedPath("openvino int8", make("openvino", "int8")),
              EmbedPath("onnx int8-dynamic", lambda: _onnx(data, device, cache_dir, "int8", dynamic_int8_model))]
    if not device.startswith("cuda"):
        variants = {"spinning": OrtSettings(spinning=True), "all cores": OrtSettings(intra_threads=0),
                    "opt basic": OrtSettings(optimization="basic"),
                    "opt extended": OrtSettings(optimization="extended"),
                    "parallel 2x1": OrtSettings(parallel=True, inter_threads=2, intra_threads=1),
                    "no arena/pattern": OrtSettings(mem_arena=False, mem_pattern=False)}
        paths += [EmbedPath(f"onnx fp32 {label}", lambda s=settings: _onnx(data, "cpu", cache_dir, settings=s), False)
                  for label, settings in variants.items()]
    return paths


def _onnx(data: _Data, device: str, cache_dir, precision: str = "fp32", derive=None, settings=None) -> object:
    """An onnxruntime embedder on the ONNX export, or on ``derive(export)``, with ``settings``."""
    from backbones.onnx_embedder import OnnxEmbedder, OrtSettings
    from backbones.onnx_export import onnx_model_path
    from face_alignment.weights import resolve_weights

    weights = resolve_weights(DEFAULT_EMBEDDER, None, data.weights_dir)
    model = onnx_model_path(weights, cache_dir)
    return OnnxEmbedder(derive(model) if derive else model, device, EMBED_BATCH, DEFAULT_EMBEDDER, weights,
                        precision, settings=settings or OrtSettings())


def embedders(data: _Data, device: str, cache_dir, sizes: Sizes) -> None:
    crops = np.stack([load_image(data.aligned_dir / p) for p in data.pairs.images[:sizes.embed_crops]])
    built: dict[str, object] = {}
    skipped: dict[str, str] = {}
    scored: set[str] = set()
    for path in embed_paths(data, device, cache_dir, sizes.every_path):
        try:
            built[path.label] = path.build()
        except (FaceBenchError, ImportError, RuntimeError) as exc:  # a backend missing here
            skipped[path.label] = str(exc)
            continue
        if path.scored:
            scored.add(path.label)
    rates = _rates({label: lambda e=e: len(e.embed(crops)) for label, e in built.items()}, sizes.repeats)
    base = np.median(rates["torch fp32"])
    print(f"\n3. embedder (batch {EMBED_BATCH}, {len(crops)} aligned LFW crops; x = throughput / torch fp32)")
    quality = _quality(data, {k: built[k] for k in built if k in scored}) if sizes.score else {}
    print(f"   {'path':28s} {'img/s':>8s}  {'(min..max)':16s} {'x':>5s}  {'LFW acc':>7s} {'d pts':>6s}  "
          f"{'MSE':>8s} {'max cos d':>9s}  {'MB':>5s}")
    for label, embedder in built.items():
        line = f"   {label:28s} {_fmt(rates[label]):26s} {np.median(rates[label]) / base:5.2f}"
        if label in quality:
            acc, delta, mse, cos = quality[label]
            line += f"  {acc:7.4f} {delta:+6.2f}  {mse:8.1e} {cos:9.1e}"
        elif sizes.score:
            line += f"  {'(same model as onnx fp32)':>34s}"
        model = getattr(embedder, "model_path", None)
        if model is not None:
            line += f"  {os.path.getsize(model) / 2**20:5.2f}"
        print(line)
    for label, reason in skipped.items():
        print(f"   {label:28s} not run: {reason}")


def _quality(data: _Data, built: dict[str, object]) -> dict[str, tuple[float, float, float, float]]:
    """LFW accuracy of each embedder on all reference crops (6,000 pairs), its difference to
    torch fp32 in points, and its MSE and max cosine distance to torch fp32's embeddings."""
    n = len(data.pairs.images)
    crops = np.stack([load_image(data.aligned_dir / p) for p in data.pairs.images])
    out, ref, ref_acc = {}, None, 0.0
    for label, embedder in built.items():
        results = MethodResults.empty(n)
        results.embeddings[:] = embedder.embed(crops)
        results.status[:] = FOUND
        accuracy = summarize(pair_scores(results, data.pairs))["accuracy"]
        if ref is None:
            ref, ref_acc = results.embeddings.copy(), accuracy
        e = results.embeddings
        out[label] = (accuracy, 100.0 * (accuracy - ref_acc), float(np.mean((e - ref) ** 2)),
                      float(np.max(1.0 - np.sum(e * ref, axis=1))))
    return out


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    return run(args)


if __name__ == "__main__":
    import sys

    sys.exit(main())
