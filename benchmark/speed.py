"""``facebench speed`` (``make bench-speed``): how fast each stage runs on this machine, and what
the pipelined runner gains over a plain loop. :func:`run` prints each section and returns its
measurements (:class:`SpeedReport`).

Sections, in the order they run and print:

1. end to end: a full LFW pass (6,000 pairs; ``--quick``: 40) with YuNet and the embedder
   (each backend of ``--embedder``), models already loaded: the pipelined runner
   (:mod:`benchmark.run.pipeline`) against a plain sequential loop (decode, detect, align one image
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
   CPU settings tried;
4. detection replicas: the same full LFW pass (the embedder: the first of ``--embedder``) for each
   detector of ``--replica-methods`` (default YuNet and MTCNN; ``--quick``: YuNet) with each
   number of ``--detect-workers`` (default 1 and 2; :mod:`benchmark.run.replicas`), side by side:
   wall time, CPU time of this process and its replicas, accuracy, and whether every image's
   result equals the first count's. One round each (MTCNN's pass takes minutes on 2 cores);
5. the whole command: ``facebench --methods yunet`` over the LFW pairs (``--quick``: 40) in a
   fresh process, start-up, spawned method process, model loading, reports and charts included,
   against the plain loop (:mod:`benchmark.plain_loop`, PyTorch, in a fresh process too), and
   against the same command from other checkouts (``--command-from DIR``: the code before a
   change, run back to back with it); wall time (median of the rounds, the commands taking turns),
   the ratio to the plain loop, and each one's accuracy.

Throughputs are the median over ``--repeats`` rounds with the min..max beside it; in each round
every compared path runs once, in turn, so that paths compared share the machine's load.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from backbones import (
    BACKENDS,
    DEFAULT_EMBEDDER,
    OnnxEmbedder,
    OpenVinoEmbedder,
    OrtSettings,
    create_embedder,
    dynamic_int8_model,
    onnx_model_path,
)
from face_alignment import align_face, create_detector, list_methods, load_image
from face_alignment.errors import FaceBenchError
from face_alignment.runtime import resolve_device
from face_alignment.weights import resolve_weights

from .plain_loop import EMBED_BATCH, sequential_pass
from .protocol.lfw import find_lfw_dir, lfw_protocol
from .protocol.pairs import PairList, subset_pairs
from .protocol.scores import pair_scores, summarize
from .report.files import read_report_rows
from .run.cache import MethodResults
from .run.calibration import lfw_calibration
from .run.cropping import CropperRecipe, detector_cropper
from .run.engine import LocalEngine, MethodWork
from .run.pipeline import process_images
from .run.sysinfo import PeakMemory

log = logging.getLogger(__name__)

SECTIONS = ("1", "2", "3", "4", "5")


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
    replica_rounds: int = 1  # section 4's passes of each detector and count


FULL = Sizes(None, 3, 256, 32, 512, 5, True, True)
QUICK = Sizes(40, 1, 16, 8, 64, 2, False, False)


@dataclass(frozen=True)
class SpeedOptions:
    """What ``facebench speed`` measures (its flags)."""

    lfw_dir: str | None = None
    aligned_dir: str | None = None
    weights_dir: str | None = None
    device: str = "auto"
    backends: tuple[str, ...] = ("torch", "onnx")
    precision: str = "fp32"
    methods: tuple[str, ...] | None = None  # detectors of section 2 (None: every ready one; --quick: yunet)
    repeats: int | None = None
    cache_dir: str | None = None
    sections: tuple[str, ...] = SECTIONS
    quick: bool = False
    replica_methods: tuple[str, ...] | None = None  # detectors of section 4 (None: yunet, mtcnn; --quick: yunet)
    detect_workers: tuple[int, ...] = (1, 2)  # section 4's numbers of detection replicas
    command_from: tuple[str, ...] = ()  # section 5: other checkouts whose command runs beside this one


@dataclass
class SpeedData:
    """The LFW data the sections measure on."""

    pairs: PairList  # the full pairs list
    image_root: Path
    aligned_dir: Path
    weights_dir: str | None
    pick_face: Callable  # the protocol's rule for the target face


def load_data(lfw_dir: str | None, aligned_dir: str | None, weights_dir: str | None) -> SpeedData:
    """LFW's pairs and images (``lfw_dir``, else the default place) and its reference crops
    (``aligned_dir``, default ``<lfw>/aligned-112``)."""
    lfw_dir = find_lfw_dir(lfw_dir)
    protocol = lfw_protocol(lfw_dir)
    aligned = Path(aligned_dir) if aligned_dir else lfw_dir / "aligned-112"
    if not aligned.is_dir():
        raise FaceBenchError(f"no reference crops at {aligned}: pass --aligned-dir")
    return SpeedData(protocol.pairs, protocol.image_root, aligned, weights_dir, protocol.pick_face)


@dataclass(frozen=True)
class Rates:
    """Images per second of one path, one value per round."""

    name: str
    per_round: tuple[float, ...]
    device: str = ""  # where it really ran
    asked: str = ""  # the device it was asked to run on

    @property
    def median(self) -> float:
        return float(np.median(self.per_round))

    def __str__(self) -> str:
        return f"{self.median:8.1f}  ({min(self.per_round):.1f}..{max(self.per_round):.1f})"


@dataclass(frozen=True)
class PassTiming:
    """Section 1: one kind of end-to-end pass with one embedder backend, over its rounds."""

    backend: str
    name: str  # "pipelined runner" or "sequential loop"
    walls: tuple[float, ...]
    cpus: tuple[float, ...]
    peak_rss_mb: float
    accuracies: tuple[float, ...]
    device: str

    @property
    def median_round(self) -> int:
        return int(np.argsort(self.walls)[len(self.walls) // 2])


@dataclass(frozen=True)
class EmbedderTiming:
    """Section 3: one embedder path; ``accuracy`` etc. only where it was scored."""

    rates: Rates
    ratio: float  # throughput / torch fp32
    accuracy: float | None = None
    points_vs_torch: float | None = None
    mse_vs_torch: float | None = None
    max_cosine_distance: float | None = None
    model_mb: float | None = None


@dataclass(frozen=True)
class ReplicaTiming:
    """Section 4: one detector's full passes with ``detect_workers`` detection replicas."""

    method: str
    detect_workers: int
    walls: tuple[float, ...]
    cpus: tuple[float, ...]  # CPU seconds of this process and its replicas
    accuracy: float
    same_as_first: bool  # every image's status, landmarks and embedding equal to the first count's

    @property
    def wall(self) -> float:
        return float(np.median(self.walls))


@dataclass(frozen=True)
class CommandTiming:
    """Section 5: one whole command's rounds (wall seconds) and the accuracy it printed."""

    name: str
    walls: tuple[float, ...]
    accuracy: float

    @property
    def wall(self) -> float:
        return float(np.median(self.walls))


@dataclass
class SpeedReport:
    """Every section's measurements (those of the sections that ran)."""

    machine: str
    device: str
    passes: list[PassTiming]
    stages: list[Rates]
    detectors_not_run: dict[str, str]
    embedders: list[EmbedderTiming]
    embedders_not_run: dict[str, str]
    replicas: list[ReplicaTiming] = field(default_factory=list)
    commands: list[CommandTiming] = field(default_factory=list)


def run(options: SpeedOptions) -> SpeedReport:
    """Measure and print every section (see the module docstring); returns the measurements."""
    sizes = QUICK if options.quick else FULL
    _check_backends(options.backends)
    if options.repeats:
        sizes = replace(sizes, repeats=max(1, options.repeats))
    data = load_data(options.lfw_dir, options.aligned_dir, options.weights_dir)
    device = resolve_device(options.device)
    report = SpeedReport(machine_name(), device, [], [], {}, [], {})
    print(f"facebench speed on {report.machine} ({device}){' --quick' if options.quick else ''}; throughput = "
          f"median (min..max) over {sizes.repeats} rounds, compared paths interleaved")
    if "1" in options.sections:
        report.passes = end_to_end(data, options, sizes)
    if "2" in options.sections:
        methods = options.methods or (("yunet",) if options.quick else None)
        report.stages, report.detectors_not_run = stages(data, device, methods, sizes)
    if "3" in options.sections:
        report.embedders, report.embedders_not_run = embedders(data, device, options.cache_dir, sizes)
    if "4" in options.sections:
        methods = options.replica_methods or (("yunet",) if options.quick else ("yunet", "mtcnn"))
        report.replicas = replica_passes(data, options, sizes, methods)
    if "5" in options.sections:
        report.commands = whole_commands(data, options, sizes)
    return report


def machine_name() -> str:
    """The CPU model and its count of CPUs."""
    import platform

    try:
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "")
    except OSError:
        model = ""
    return f"{model or platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"


def interleaved_rates(paths: dict[str, Callable[[], int]], repeats: int) -> dict[str, tuple[float, ...]]:
    """Images per second of each path, ``repeats`` interleaved rounds after one warm-up call."""
    for work in paths.values():
        work()
    rates: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, work in paths.items():
            start = time.perf_counter()
            count = work()
            rates[name].append(count / (time.perf_counter() - start))
    return {name: tuple(values) for name, values in rates.items()}


# -- 1. end to end ---------------------------------------------------------------------------------

def pass_pairs(data: SpeedData, pairs: int | None) -> PairList:
    """The pairs of an end-to-end pass: all, or ``pairs`` spread over the folds and kinds."""
    return subset_pairs(data.pairs, pairs // 20) if pairs else data.pairs


def end_to_end(data: SpeedData, options: SpeedOptions, sizes: Sizes) -> list[PassTiming]:
    pairs = pass_pairs(data, sizes.pairs)
    cropper = detector_cropper(create_detector("yunet", device=options.device, weights_dir=data.weights_dir))
    calibration = _calibration(data) if options.precision == "int8" else None
    cores = os.cpu_count() or 1
    print(f"\n1. end to end: {len(pairs)} pairs, {len(pairs.images)} images, yunet + {DEFAULT_EMBEDDER} "
          f"({options.precision}), models loaded. The sequential loop leaves each library its own threading "
          f"(every core); the pipelined runner shares the {cores} cores between its stages. CPU = the "
          "process's CPU time; cores = CPU / wall, how busy the pass kept the machine (spinning threads count).")
    timings = []
    for backend in options.backends:
        def build(threads: int | None, backend=backend):
            return create_embedder(backend, options.precision, DEFAULT_EMBEDDER, weights_dir=data.weights_dir,
                                   device=options.device, batch_size=EMBED_BATCH, calibration=calibration,
                                   cache_dir=options.cache_dir, threads=threads)

        passes = {  # name: (the embedder's threads per call, the pass)
            "pipelined runner": (None, lambda e, r: process_images(pairs.images, data.image_root, cropper, e, r,
                                                                   progress=False)),
            "sequential loop": (0, lambda e, r: sequential_pass(pairs.images, data.image_root, cropper, e, r)),
        }
        rounds: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in passes}
        device = ""
        for _ in range(sizes.pass_rounds):  # the two passes take turns, so that they share the machine's load
            for name, (threads, work) in passes.items():
                embedder, results = build(threads), MethodResults.empty(len(pairs.images))  # loaded per pass:
                device = embedder.device  # its RSS is the pass's alone
                with PeakMemory() as memory:
                    cpu, start = time.process_time(), time.perf_counter()
                    work(embedder, results)
                    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
                rounds[name].append((wall, cpu, memory.peak_rss_mb, summarize(results.score(pairs))["accuracy"]))
                del embedder
        backend_timings = [PassTiming(backend, name, *map(tuple, zip(*[r[:2] for r in runs])),
                                      max(r[2] for r in runs), tuple(r[3] for r in runs), device)
                           for name, runs in rounds.items()]
        for timing in backend_timings:
            _print_pass(timing)
        pipelined, sequential = backend_timings
        i, j = pipelined.median_round, sequential.median_round
        equal = pipelined.accuracies[0] == sequential.accuracies[0]
        print(f"   {backend:8s} pipelined / sequential wall time {pipelined.walls[i] / sequential.walls[j]:.2f}x "
              f"(medians of {sizes.pass_rounds}); accuracy "
              f"{'equal' if equal else f'DIFFERS ({pipelined.accuracies[0] - sequential.accuracies[0]:+.4f})'}")
        timings += backend_timings
    return timings


def _print_pass(t: PassTiming) -> None:
    walls, i = np.array(t.walls), t.median_round
    same = all(a == t.accuracies[0] for a in t.accuracies)
    print(f"   {t.backend:8s} {t.name:17s} wall {walls[i]:6.1f} s ({walls.min():.1f}..{walls.max():.1f})   CPU "
          f"{t.cpus[i]:6.1f} s ({t.cpus[i] / walls[i]:4.2f} cores)   peak RSS {t.peak_rss_mb:5.0f} MB   accuracy "
          f"{t.accuracies[0]:.4f}{'' if same else ' VARIES'}  ({t.device})")


def _check_backends(backends: tuple[str, ...]) -> None:
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        raise FaceBenchError(f"--embedder: unknown backend {', '.join(unknown) or '(none given)'}; "
                             f"choose from {', '.join(BACKENDS)}")


def _calibration(data: SpeedData):
    return lfw_calibration(data.image_root, data.pairs, data.weights_dir)


# -- 2. stages ---------------------------------------------------------------------------------------

def stages(data: SpeedData, device: str, methods: tuple[str, ...] | None,
           sizes: Sizes, title: str = "2. stages") -> tuple[list[Rates], dict[str, str]]:
    """Decode, align and each detector's images per second (and the device each detector was
    asked for and really ran on); and the detectors that could not run."""
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

    print(f"\n{title} (images/s; decode and align on {len(sample)} LFW images, detectors on {len(few)} "
          "in batches of 8)")
    measured = [Rates(name, rates, "cpu") for name, rates in
                interleaved_rates({"decode (1 thread)": decode, "align": align}, sizes.repeats).items()]
    for rates in measured:
        print(f"   {rates.name:28s} {rates}")
    not_run = {}
    for name in methods or [s.name for s in list_methods(data.weights_dir) if s.ready]:
        try:
            detector = create_detector(name, device=device, weights_dir=data.weights_dir)
        except (FaceBenchError, ImportError, RuntimeError, OSError) as exc:
            not_run[name] = str(exc)
            print(f"   detect {name:21s} not run: {exc}")
            continue
        per_round = interleaved_rates({name: lambda d=detector: _detect_all(d, few)}, sizes.repeats)[name]
        rates = Rates(f"detect {name}", per_round, detector.real_device, device)
        measured.append(rates)
        print(f"   {rates.name:28s} {rates}   asked {rates.asked}, ran on {rates.device}")
    return measured, not_run


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


def embed_paths(data: SpeedData, device: str, cache_dir, every_path: bool = True) -> list[EmbedPath]:
    """PyTorch fp32 first (the baseline), then every other backend and precision that runs here."""
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
        paths.append(EmbedPath("openvino fp32 2 streams", lambda: _openvino(data, cache_dir, streams=2), False))
    return paths


def _onnx(data: SpeedData, device: str, cache_dir, precision: str = "fp32", derive=None, settings=None) -> object:
    """An onnxruntime embedder on the ONNX export, or on ``derive(export)``, with ``settings``."""
    weights = resolve_weights(DEFAULT_EMBEDDER, None, data.weights_dir)
    model = onnx_model_path(weights, cache_dir)
    return OnnxEmbedder(derive(model) if derive else model, device, EMBED_BATCH, DEFAULT_EMBEDDER, weights,
                        precision, settings=settings or OrtSettings())


def _openvino(data: SpeedData, cache_dir, streams: int) -> object:
    """An OpenVINO embedder on the ONNX export with ``streams`` streams (one caller here: the
    default's one stream has every core, each of two streams half of them)."""
    weights = resolve_weights(DEFAULT_EMBEDDER, None, data.weights_dir)
    return OpenVinoEmbedder(onnx_model_path(weights, cache_dir), "cpu", EMBED_BATCH, DEFAULT_EMBEDDER, weights,
                            streams=streams)


def embedders(data: SpeedData, device: str, cache_dir, sizes: Sizes) -> tuple[list[EmbedderTiming], dict[str, str]]:
    """Each embedder path's throughput (and quality where scored); and the paths that could not run."""
    crops = np.stack([load_image(data.aligned_dir / p) for p in data.pairs.images[:sizes.embed_crops]])
    built: dict[str, object] = {}
    not_run: dict[str, str] = {}
    scored: set[str] = set()
    for path in embed_paths(data, device, cache_dir, sizes.every_path):
        try:
            built[path.label] = path.build()
        except (FaceBenchError, ImportError, RuntimeError) as exc:  # a backend missing here
            not_run[path.label] = str(exc)
            continue
        if path.scored:
            scored.add(path.label)
    rates = interleaved_rates({label: lambda e=e: len(e.embed(crops)) for label, e in built.items()}, sizes.repeats)
    base = float(np.median(rates["torch fp32"]))
    print(f"\n3. embedder (batch {EMBED_BATCH}, {len(crops)} aligned LFW crops; x = throughput / torch fp32)")
    quality = _quality(data, {k: built[k] for k in built if k in scored}) if sizes.score else {}
    print(f"   {'path':28s} {'img/s':>8s}  {'(min..max)':16s} {'x':>5s}  {'LFW acc':>7s} {'d pts':>6s}  "
          f"{'MSE':>8s} {'max cos d':>9s}  {'MB':>5s}")
    timings = []
    for label, embedder in built.items():
        model = getattr(embedder, "model_path", None)
        timing = EmbedderTiming(Rates(label, rates[label], embedder.device), float(np.median(rates[label])) / base,
                                *quality.get(label, ()),
                                model_mb=os.path.getsize(model) / 2**20 if model is not None else None)
        timings.append(timing)
        line = f"   {label:28s} {timing.rates!s:26s} {timing.ratio:5.2f}"
        if timing.accuracy is not None:
            line += (f"  {timing.accuracy:7.4f} {timing.points_vs_torch:+6.2f}  {timing.mse_vs_torch:8.1e} "
                     f"{timing.max_cosine_distance:9.1e}")
        elif sizes.score:
            line += f"  {'(same model as onnx fp32)':>34s}"
        if timing.model_mb is not None:
            line += f"  {timing.model_mb:5.2f}"
        print(line)
    for label, reason in not_run.items():
        print(f"   {label:28s} not run: {reason}")
    return timings, not_run


def _quality(data: SpeedData, built: dict[str, object]) -> dict[str, tuple[float, float, float, float]]:
    """LFW accuracy of each embedder on all reference crops (6,000 pairs), its difference to
    torch fp32 in points, and its MSE and max cosine distance to torch fp32's embeddings."""
    crops = np.stack([load_image(data.aligned_dir / p) for p in data.pairs.images])
    found = np.ones(len(crops), bool)
    out, ref, ref_acc = {}, None, 0.0
    for label, embedder in built.items():
        e = embedder.embed(crops)
        accuracy = summarize(pair_scores(e, found, data.pairs))["accuracy"]
        if ref is None:
            ref, ref_acc = e, accuracy
        out[label] = (accuracy, 100.0 * (accuracy - ref_acc), float(np.mean((e - ref) ** 2)),
                      float(np.max(1.0 - np.sum(e * ref, axis=1))))
    return out


# -- 4. detection replicas --------------------------------------------------------------------------

@dataclass
class EnginePass:
    """One pass of the local engine: its results, wall time, the CPU time of this process and
    its detection replicas, and the peak memory of this process (RSS, GPU)."""

    results: MethodResults
    wall: float
    cpu: float
    memory: PeakMemory


def engine_pass(work: MethodWork, detect_workers: int | str, detect_batch: int = 8) -> EnginePass:
    """``work`` through :class:`~.run.engine.LocalEngine` with ``detect_workers`` replicas, timed."""
    results = MethodResults.empty(len(work.images))
    engine = LocalEngine(detect_batch=detect_batch, progress=False, detect_workers=detect_workers)
    with PeakMemory() as memory:
        before, start = os.times(), time.perf_counter()
        engine.run(work, results, lambda indices: None)
        wall, after = time.perf_counter() - start, os.times()  # replicas are joined: their CPU is counted
    cpu = sum(after[:4]) - sum(before[:4])  # user and system time of this process and its waited-for children
    return EnginePass(results, wall, cpu, memory)


def method_work(data: SpeedData, method: str, images: list[str], embedder, device: str = "cpu") -> MethodWork:
    """``method`` (on ``device``) and ``embedder`` over LFW ``images``: the cropper built here and
    its recipe, which the replicas build again."""
    recipe = CropperRecipe(method, data.pick_face, device, data.weights_dir)
    return MethodWork(method, images, data.image_root, recipe.build(), embedder, recipe=recipe)


def same_results(a: MethodResults, b: MethodResults) -> bool:
    """Every image's status and landmarks equal, and its embedding within float noise (1e-5)."""
    return bool(np.array_equal(a.status, b.status) and np.array_equal(a.landmarks, b.landmarks, equal_nan=True)
                and np.abs(a.embeddings - b.embeddings).max(initial=0.0) <= 1e-5)


def replica_passes(data: SpeedData, options: SpeedOptions, sizes: Sizes,
                   methods: tuple[str, ...]) -> list[ReplicaTiming]:
    """Section 4: each method's full pass with each number of detection workers, interleaved."""
    pairs = pass_pairs(data, sizes.pairs)
    backend = options.backends[0]
    embedder = create_embedder(backend, options.precision, DEFAULT_EMBEDDER, weights_dir=data.weights_dir,
                               device=options.device, batch_size=EMBED_BATCH, cache_dir=options.cache_dir,
                               calibration=_calibration(data) if options.precision == "int8" else None)
    workers = options.detect_workers
    print(f"\n4. detection replicas: {len(pairs)} pairs, {len(pairs.images)} images, {backend} embedder "
          f"({options.precision}) on {embedder.real_device}, models loaded; detect workers "
          f"{', '.join(map(str, workers))} (1: detection in this process; N: N processes, each with its own "
          f"detector); {sizes.replica_rounds} round(s). CPU = this process and its replicas.")
    timings = []
    for method in methods:
        work = method_work(data, method, pairs.images, embedder, options.device)
        engine_pass(replace(work, images=work.images[:8]), 1)  # warm-up: the first call of each model is slow
        runs: dict[int, list[EnginePass]] = {count: [] for count in workers}
        for _ in range(sizes.replica_rounds):
            for count in workers:
                runs[count].append(engine_pass(work, count))
        first = runs[workers[0]][0].results
        for count, passes in runs.items():
            timing = ReplicaTiming(method, count, tuple(p.wall for p in passes), tuple(p.cpu for p in passes),
                                   summarize(passes[0].results.score(pairs))["accuracy"],
                                   all(same_results(p.results, first) for p in passes))
            timings.append(timing)
            base = next(t for t in timings if t.method == method)
            i = int(np.argsort(timing.walls)[len(timing.walls) // 2])
            print(f"   {method:12s} {count:2d} worker{'s' if count > 1 else ' '}  wall {timing.wall:6.1f} s "
                  f"(x{timing.wall / base.wall:4.2f} of {base.detect_workers}'s)   CPU {timing.cpus[i]:6.1f} s "
                  f"({timing.cpus[i] / timing.walls[i]:4.2f} cores)   accuracy {timing.accuracy:.4f}   "
                  f"{'results identical' if timing.same_as_first else 'RESULTS DIFFER'} to {workers[0]} worker(s)")
    return timings


# -- 5. the whole command ----------------------------------------------------------------------------

PLAIN_LOOP = "plain loop (torch)"


def whole_commands(data: SpeedData, options: SpeedOptions, sizes: Sizes) -> list[CommandTiming]:
    """The whole ``facebench --methods yunet`` command of this checkout (and of each of
    ``options.command_from``) against the plain loop, each in a fresh process, taking turns."""
    import subprocess
    import sys
    import tempfile

    here = Path(__file__).resolve().parents[1]
    lfw = ["--lfw-dir", str(data.image_root.parent), *(["--weights-dir", str(data.weights_dir)]
                                                        if data.weights_dir else [])]
    subset = ["--max-pairs", str(sizes.pairs)] if sizes.pairs else []
    checkouts = {"facebench (this checkout)": here, **{f"facebench ({Path(d).name})": Path(d).resolve()
                                                       for d in options.command_from}}
    print(f"\n5. the whole command: facebench --methods yunet --device cpu over {sizes.pairs or len(data.pairs)} "
          "pairs in a fresh process (imports, the method's process, model loading, reports and charts included) "
          f"against the plain loop in one; wall time, median of {sizes.pass_rounds} rounds taking turns")

    def command(root: Path) -> Callable[[], float]:
        def run_once() -> float:
            with tempfile.TemporaryDirectory() as out:
                subprocess.run([sys.executable, "-m", "benchmark", "--methods", "yunet", "--device", "cpu", *lfw,
                                *subset, "--out", out, "--no-resume", "--quiet"], cwd=root, check=True,
                               stdout=subprocess.DEVNULL)
                (row,) = read_report_rows(Path(out) / "report.csv")
                return float(row["accuracy"])
        return run_once

    def plain_loop() -> float:
        done = subprocess.run([sys.executable, "-m", "benchmark.plain_loop", *lfw, *subset], cwd=here, check=True,
                              capture_output=True, text=True)
        return float(done.stdout.split()[-1])

    paths = {**{name: command(root) for name, root in checkouts.items()}, PLAIN_LOOP: plain_loop}
    walls: dict[str, list[float]] = {name: [] for name in paths}
    accuracies: dict[str, float] = {}
    for _ in range(sizes.pass_rounds):
        for name, work in paths.items():
            start = time.perf_counter()
            accuracies[name] = work()
            walls[name].append(time.perf_counter() - start)
    timings = [CommandTiming(name, tuple(walls[name]), accuracies[name]) for name in paths]
    loop = timings[-1].wall
    for t in timings:
        print(f"   {t.name:34s} wall {t.wall:6.1f} s ({min(t.walls):.1f}..{max(t.walls):.1f})   "
              f"{t.wall / loop:4.2f}x the plain loop   accuracy {t.accuracy:.4f}")
    return timings
