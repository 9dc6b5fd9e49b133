"""``facebench`` / ``python -m benchmark``: the command line.

One parser with a sub-command each (``run``, the default, ``methods``, ``fetch-lfw``,
``compare``, ``plot``, ``landmarks``, ``robustness``, ``speed``); options several commands take are
defined once, in the parent parsers below. Building the parser imports no model library: each
command imports what it needs when it runs, so ``--help``, ``compare`` and ``plot`` start without
torch.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from backbones import AUTO, BACKENDS, DEFAULT_EMBEDDER, PRECISIONS
from face_alignment.alignment import ALIGN_MODES
from face_alignment.errors import FaceBenchError

from .fetch import LFW_BASE_URL
from .report import compare
from .run.failures import UNWRITABLE
from .run.isolation import stop_on_sigterm
from .run.stagetimes import VERBOSE_ENV
from .run.sysinfo import record_command

DESCRIPTION = """\
Benchmark face detectors / aligners on LFW or CFP: every method's faces aligned to the same ArcFace
112x112 template, embedded with the same EdgeFace model, scored with the data set's 10-fold
verification protocol (insightface's threshold rule: each fold at the threshold best on the other
nine). Writes <out>/report.csv (one row per method), <out>/images/<method>.csv (per-image status)
and <out>/scores/<method>.npz (per-pair distances). Interrupted runs resume from <out>/cache.

Without a command, facebench runs the benchmark with the options below (the same as
`facebench run`). `facebench COMMAND --help` describes each command."""


def _workers(text: str) -> int | str:
    """A positive count, or ``auto``."""
    return text if text == "auto" else _positive(text)


def _positive(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def _parent(*adders) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    for add in adders:
        add(parent)
    return parent


def _quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars, warnings and errors only")
    p.add_argument("--verbose", action="store_true", help="also a line per method and per run saying where the "
                   "seconds went (process start, embedder and detector loading, images, scores, charts)")


def _weights(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights-dir", help="folder with the weights (default: $FACEBENCH_WEIGHTS, else checkpoints/ "
                   "then ../shared/weights)")


def _data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lfw-dir", help="LFW root holding lfw-deepfunneled/ (or lfw/) and pairs.txt, or the image "
                   "folder itself (default: $FACEBENCH_LFW, data/lfw or ../shared/data/lfw)")
    p.add_argument("--aligned-dir", help="reference-aligned 112x112 crops (e.g. <lfw-dir>/aligned-112)")


def _device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA if present, else CPU), cpu, cuda, cuda:1 ... "
                   "(default: %(default)s)")


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="lfw", help="lfw (View 2, or --pairs), cfp-fp (CFP frontal to profile), "
                   "cfp-ff (CFP frontal to frontal), or the path of a pairs file over the images of --lfw-dir "
                   "(default: %(default)s)")
    p.add_argument("--cfp-dir", help="CFP root holding Data/ and Protocol/ (default: $FACEBENCH_CFP, data/cfp or "
                   "../shared/data/cfp)")
    p.add_argument("--methods", default="yunet,mtcnn",
                   help="comma-separated methods, or 'all' for every method ready here (default: %(default)s); "
                   "with --aligned-dir a 'reference' row is added: the embedder alone on those crops, the ceiling "
                   "detectors are read against")
    p.add_argument("--pairs", help="pairs file: official pairs.txt (View 1 or 2), Kaggle pairs.csv, or a CSV "
                   "with header path1,path2,same (default: pairs.txt beside the images)")
    p.add_argument("--batch-size", type=_positive, default=None,
                   help="embedding batch size (default: 256 on a CUDA GPU, 64 on the CPU)")
    p.add_argument("--detect-batch", type=_positive, default=8, help="images per detector call (default: %(default)s)")
    p.add_argument("--workers", type=_positive, default=2, help="image-decoding threads (default: %(default)s)")
    p.add_argument("--detect-workers", type=_workers, default=1, metavar="N|auto",
                   help="local engine: detection replicas, processes each holding its own detector, feeding the "
                   "embedder (auto: one per core, less one for the embedder; 1 for a detector on a GPU); the "
                   "numbers are the same as with 1 (default: %(default)s)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this machine's pipeline; ray: a Ray Data pipeline on a Ray cluster (pip install "
                   ".[ray]; see docs/GUIDE.md) (default: %(default)s)")
    p.add_argument("--ray-address", help="--engine ray: the cluster to join (e.g. ray://head:10001 or auto); "
                   "default: start a local Ray")
    p.add_argument("--out", help="output folder (default: results/<dataset>, e.g. results/lfw)")
    p.add_argument("--cache-dir", help="where the caches go (default: <out>/cache); runs that share one share their "
                   "detections: a run over images another one detected aligns from its detections (CFP-FF after "
                   "CFP-FP, a --max-pairs subset after the full run)")
    p.add_argument("--flip", action="store_true", help="flip test-time augmentation: embedding of image + mirror")
    p.add_argument("--embedder-model", default=DEFAULT_EMBEDDER, metavar="NAME|onnx:PATH",
                   help="the embedding model: a registered one (`facebench embedders` lists them) or onnx:PATH, any "
                   "ONNX recognition model (insightface's conventions, overridable by PATH.json) (default: "
                   "%(default)s)")
    p.add_argument("--embedder", choices=(AUTO, *BACKENDS), default=AUTO,
                   help="embedder backend: PyTorch, ONNX Runtime or OpenVINO (EdgeFace: on its ONNX export), dlib "
                   "(dlib's own runner for dlib_resnet), or auto: the fastest one installed that the model runs on "
                   "and that gives PyTorch's numbers (on a CPU OpenVINO, then ONNX Runtime, then PyTorch; on CUDA "
                   "PyTorch); the report's embedder_backend column says which ran (default: %(default)s)")
    p.add_argument("--align", choices=ALIGN_MODES, default="similarity", help=ALIGN_HELP)
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="embedder precision: fp16 on a CUDA GPU (openvino: its half precision), int8 on onnx/openvino "
                   "(static, calibrated on LFW images of people outside the pairs) (default: %(default)s)")
    p.add_argument("--embedder-weights", help="an explicit EdgeFace checkpoint (.pt) instead")
    p.add_argument("--quantized", action="store_true",
                   help="keep a *_q.pt checkpoint in qint8 (CPU only; embeddings then depend on batch-mates)")
    p.add_argument("--max-pairs", type=_positive, help="quick check on a subset: this many pairs spread over the "
                   "10 folds (numbers are not the protocol's)")
    p.add_argument("--no-resume", dest="resume", action="store_false", help="ignore cached results")
    p.add_argument("--allow-unverified-weights", action="store_true",
                   help="use weights files whose sha256 differs from the manifest instead of refusing them "
                   "(each such file is named in the report's unverified_weights column)")
    p.add_argument("--in-process", dest="isolate", action="store_false",
                   help="run every method in this process instead of one child process each (for debugging: "
                   "a backend that crashes the process then ends the whole run)")


ALIGN_HELP = ("how a face is cropped onto the embedder's template: similarity (5-point), eyes (the two eyes only), "
              "affine (5-point affine), roll (deepface: eye line levelled, the box cropped, padded), box "
              "(facenet-pytorch: the box squared with a margin, no rotation) (default: %(default)s)")


def _names(choices: tuple[str, ...] | None = None):
    """argparse type: a comma-separated list, each among ``choices`` where given."""
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(n.strip() for n in text.split(",") if n.strip())
        wrong = [n for n in names if choices and n not in choices]
        if not names or wrong:
            among = f" of {', '.join(choices)}" if choices else ""
            raise argparse.ArgumentTypeError(f"expected a comma-separated list{among}, got {text!r}")
        return names

    return parse


def _embedders(p: argparse.ArgumentParser) -> None:
    p.add_argument("--embedders", type=_names(), default=None, metavar="NAME,...",
                   help="embedding models, comma-separated (`facebench embedders`; onnx:PATH too); each method "
                   "detects once for all of them (default: --embedder-model alone)")


def _aligns(p: argparse.ArgumentParser) -> None:
    p.add_argument("--aligns", type=_names(ALIGN_MODES), default=("similarity",), metavar="MODE,...",
                   help=f"alignment modes, comma-separated, from {', '.join(ALIGN_MODES)} (default: similarity)")


def _compare_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", metavar="A", help="run folder (compare its methods with B's), or RUN:METHOD")
    p.add_argument("b", metavar="B", help="run folder, or RUN:METHOD (the same kind as A)")
    p.add_argument("--bootstrap", type=_positive, default=compare.N_BOOTSTRAP,
                   help="bootstrap resamples (default: %(default)s)")
    p.add_argument("--seed", type=int, default=compare.SEED, help="bootstrap seed (default: %(default)s)")
    p.add_argument("--alpha", type=float, default=compare.ALPHA, help="significance level (default: %(default)s)")
    p.add_argument("--time-tolerance", type=float, default=compare.TIME_TOLERANCE,
                   help="flag B slower than A by more than this fraction (default: %(default)s)")
    p.add_argument("--memory-tolerance", type=float, default=compare.MEMORY_TOLERANCE,
                   help="flag B's peak memory above A's by more than this fraction (default: %(default)s)")
    p.add_argument("--csv", help="also write the table to this CSV file")


def _speed_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--embedder", default="torch,onnx",
                   help=f"embedder backends of the end-to-end pass, comma-separated, from {', '.join(BACKENDS)} "
                   "(default: %(default)s)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="its precision (default: %(default)s)")
    p.add_argument("--methods", help="comma-separated detectors for the stage section (default: every ready one; "
                   "with --quick: yunet)")
    p.add_argument("--repeats", type=_positive, help="rounds per throughput (default: 5, --quick 2)")
    p.add_argument("--cache-dir", help="where exported / quantized ONNX models are kept (default: "
                   "~/.cache/facebench/onnx)")
    p.add_argument("--sections", default="1,2,3,4,5",
                   help="which sections to run, e.g. 1 or 2,4 (default: %(default)s)")
    p.add_argument("--command-from", action="append", default=[], metavar="DIR",
                   help="section 5: also time the whole command of another checkout of this project (the code "
                   "before a change: git worktree add DIR COMMIT), back to back with this one; repeatable")
    p.add_argument("--replica-methods", help="comma-separated detectors for the replicas section (default: "
                   "yunet,mtcnn; with --quick: yunet)")
    p.add_argument("--replica-workers", default="1,2",
                   help="numbers of detection replicas the replicas section compares (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="small samples, 40 pairs end to end, fp32 embedders only, "
                   "no accuracy section: a check that everything runs, not a measurement")


SPEED_DESCRIPTION = """\
How fast each stage runs on this machine, in five sections: (1) a full LFW pass (6,000 pairs) with
YuNet and the embedder, models loaded: the pipelined runner against a plain sequential loop (wall
time, CPU time, peak RSS, accuracy, their ratio); (2) images per second of decoding, of each ready
detector and of alignment; (3) the embedder per backend and precision at batch 64 on the reference
crops (aligned-112): images per second, ratio to PyTorch fp32, LFW accuracy, agreement with PyTorch
fp32, model size, and onnxruntime's CPU settings; (4) detection replicas: the full LFW pass per
detector with each number of --detect-workers side by side (wall and CPU time, accuracy, whether
every image's result is identical to one worker's); (5) the whole `facebench --methods yunet` command in
a fresh process against the plain loop (benchmark.plain_loop) in one, and against the command of other
checkouts (--command-from DIR: before and after a change, back to back). Throughputs are medians over
rounds in which the compared paths take turns. Timings are only comparable on one machine, when it is otherwise idle."""


ROBUSTNESS_DESCRIPTION = """\
Accuracy when the image degrades, and whose fault the loss is. Cross-quality protocol: each pair's
first image stays clean (the enrolment photo), its second (the probe) is put under a condition at a
severity from 1 to 5 (a physical parameter: blur sigma, JPEG quality, scale, angle ...), applied to
the original image before detection, the same way in every run (seeded by the image's path). Each
(method, condition, severity) is a row: accuracy, success rate, AUC, EER, and for the geometric
conditions the landmark shift (the method's points on the degraded image mapped back, against its
points on the clean image, in inter-ocular distances). The oracle row aligns the degraded probe
with the oracle method's landmarks on the clean image, carried through the condition's transform:
clean - oracle is what the embedder loses, oracle - method what the method's detector loses.
Writes <out>/robustness.csv, robustness_summary.csv, the heat map, degradation curves and gallery,
and a report.csv row per (method, condition) named METHOD@CONDITION-SEVERITY, so that
`facebench compare RUN:yunet@jpeg-5 RUN:mtcnn@jpeg-5` tests two methods under one condition.
Default --out: results/robustness-<dataset>. Cached and resumable per (method, condition). With
--embedders A,B each method detects once and every embedder gets its rows (named
METHOD+EMBEDDER@CONDITION-SEVERITY, an `embedder` column in the tables) and its own oracle; the
charts show the first embedder's rows."""


MATRIX_DESCRIPTION = """\
Every cell of --methods x --embedders x --aligns on one data set's protocol. A method detects each
image once; its other cells align from the cached detections and only embed. Each cell is a
report.csv row named DETECTOR+EMBEDDER+ALIGN (with detector, embedder and align columns) and has its
per-pair scores, so `facebench compare RUN:yunet+edgeface_xs+similarity RUN:mtcnn+edgeface_xs+similarity`
tests two cells. Also writes matrix.csv (a row per detector, a column per measure, embedder and
alignment), matrix_ranking.csv (per embedder and alignment: the detectors ranked, McNemar's p against
the best, Holm-corrected, and the group tied with the best), matrix_tau.csv (Kendall's tau between
two embedders' rankings), matrix.md and heat maps. Default --out: results/matrix-<dataset>.
--embedders defaults to --embedder-model; --align is ignored here (--aligns)."""


def _folds(text: str) -> tuple[int, ...]:
    """argparse type: ``1-3``, ``1,5`` or a mix."""
    folds = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            low, _, high = part.partition("-")
            folds.extend(range(int(low), int(high or low) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fold list such as 1-3 or 1,5") from None
    if not folds or min(folds) < 1 or max(folds) > 10:
        raise argparse.ArgumentTypeError(f"folds are numbered 1 to 10, got {text!r}")
    return tuple(sorted(set(folds)))


def build_parser() -> argparse.ArgumentParser:
    """The ``facebench`` parser: the run's options at the top level (no command runs the
    benchmark) and one sub-parser per command."""
    quiet, weights, data, device = _parent(_quiet), _parent(_weights), _parent(_data), _parent(_device)
    run = _parent(_run_options)
    run_parents = [run, data, weights, device, quiet]
    parser = argparse.ArgumentParser(prog="facebench", description=DESCRIPTION, parents=run_parents,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    commands.add_parser("run", parents=run_parents, help="run the benchmark (the default)",
                        description="Run the benchmark: " + DESCRIPTION.split("\n\n")[0])
    commands.add_parser("methods", parents=[weights, quiet], help="list every detection method and whether it can "
                        "run here", description="List detection methods and their status.")
    commands.add_parser("embedders", parents=[weights, quiet], help="list every embedding model, its input and "
                        "whether it can run here", description="List the registered embedding models (plugins "
                        "included: entry-point group backbones.embedders) with their crop size, output dimension, "
                        "backends and status. Any ONNX recognition model runs as --embedder-model onnx:PATH.")
    fetch = commands.add_parser("fetch-lfw", parents=[quiet], help="download LFW (deep-funneled images + pairs.txt)",
                                description="Download LFW deep-funneled images and pairs.txt, check their md5, and "
                                "unpack them into --data-dir.")
    fetch.add_argument("--data-dir", default="data/lfw", help="destination (default: %(default)s)")
    fetch.add_argument("--base-url", default=LFW_BASE_URL, help="where the files are published (default: %(default)s)")
    commands.add_parser("compare", parents=[_parent(_compare_options), quiet],
                        help="do two runs (or RUN:METHOD specs) differ significantly? a delta table",
                        description="Do two runs (their common methods) or two methods (RUN:METHOD) differ "
                        "significantly? Per-pair decisions at the protocol's fold thresholds; paired bootstrap 95%% "
                        "CI of the accuracy difference B - A and McNemar's test; a delta table of accuracy, AUC, "
                        "EER, success rate, time and memory ratios. Exit status 1 when a regression is flagged "
                        "(significant accuracy drop, time or memory beyond the tolerance), 2 on an error.")
    plot = commands.add_parser("plot", parents=[data, quiet], help="redraw a run's charts and summary.md",
                               description="Redraw the charts (overview.png, roc.png, gallery.png) and summary.md of "
                               "a finished run, beside its report.csv. The image folders default to those the run "
                               "read (its run.json).")
    plot.add_argument("run", metavar="RUN", help="the run's output folder (its --out)")
    landmarks = commands.add_parser(
        "landmarks", parents=[weights, device, quiet], help="landmark error (NME) of each method against hand labels",
        description="Run each method on hand-labelled face images (CUHK's 5-point list format) and score its five "
        "landmarks: NME (mean point error over the labels' inter-ocular distance), its median and p90, failure "
        "rates at NME > 0.10 and > 0.20, the area under the cumulative error curve up to 0.10, the error per "
        "point and the miss rate; also with each point's mean offset (the method's labelling convention) "
        "removed. Writes <out>/landmarks.csv, <out>/landmarks/<method>.csv and <out>/landmarks_ced.png.")
    landmarks.add_argument("--labels", help="CUHK label list (default: testImageList.txt in $FACEBENCH_LANDMARKS, "
                           "data/landmarks or ../shared/data/landmarks); lines whose image is absent are skipped "
                           "and counted")
    landmarks.add_argument("--images", help="the folder the labels' image paths are relative to, e.g. the one "
                           "holding net_7876/ (default: the label file's folder)")
    landmarks.add_argument("--methods", default="yunet,mtcnn",
                           help="comma-separated methods, or 'all' (default: %(default)s)")
    landmarks.add_argument("--out", default="results/landmarks", help="output folder (default: %(default)s)")
    robustness = commands.add_parser(
        "robustness", parents=[_parent(_embedders), *run_parents], help="accuracy with the probe degraded: blur, "
        "noise, JPEG, low resolution, rotation, occlusion ...; the oracle tells the detector's loss from the "
        "embedder's",
        description=ROBUSTNESS_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    robustness.add_argument("--conditions", default="quick", help="quick (six conditions at severities 1, 3, 5), "
                            "all (every condition at 1 to 5), or NAME:SEVERITY,... (a severity may be a range, "
                            "e.g. jpeg:1-5); --list-conditions shows them (default: %(default)s)")
    robustness.add_argument("--oracle", default="retinaface", help="the method whose landmarks on the clean image "
                            "align the oracle's probes and place the occlusions (default: %(default)s)")
    robustness.add_argument("--folds", type=_folds, help="run these folds only, e.g. 1-3 or 1,5 (slow methods; "
                            "accuracy is then over those folds)")
    robustness.add_argument("--list-conditions", action="store_true", help="print the conditions and their "
                            "physical parameter at each severity, and exit")
    commands.add_parser("matrix", parents=[_parent(_embedders, _aligns), *run_parents], help="every method x embedder "
                        "x alignment mode, detecting once: does the best detector depend on the embedder?",
                        description=MATRIX_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    board = commands.add_parser(
        "leaderboard", parents=[quiet], help="one page for the answer: leaderboard.md and a self-contained "
        "leaderboard.html from any mix of run folders",
        description="Read any mix of run folders (benchmark runs of each data set, matrix, robustness, landmarks, "
        "or their copies) and write leaderboard.md and one self-contained leaderboard.html (styles, script and "
        "charts inline): per embedder a row per detector (accuracy and strict accuracy per data set with the fold "
        "std, tied with the best by McNemar's test with Holm's correction, success rate, landmark NME, robustness, "
        "time and memory), accuracy against time with the Pareto front, heat maps, the provenance of every "
        "folder, sortable tables, and a form that marks the detectors within a time budget that no other one "
        "beats significantly on the evidence you choose. A later folder's result replaces an earlier one's; "
        "figures over another number of pairs (--max-pairs, --folds) are kept apart, named with their pair "
        "count.")
    board.add_argument("runs", nargs="+", metavar="RUN", help="run folders (their --out), or copies")
    board.add_argument("--out", default="results/leaderboard", help="output folder (default: %(default)s)")
    board.add_argument("--markdown-name", default="leaderboard.md", help="the Markdown file's name, e.g. RESULTS.md "
                       "(default: %(default)s)")
    board.add_argument("--copy-to", metavar="DIR", help="first copy each run's small files (CSVs, run.json, the "
                       "per-pair decisions packed) into DIR/<run name>, and build from the copies: files to commit "
                       "beside a document, which then cannot drift from them")
    commands.add_parser("speed", parents=[_parent(_speed_options), data, weights, device, quiet],
                        help="throughput of each stage and embedder here; pipelined vs sequential LFW pass",
                        description=SPEED_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    record_command(argv)
    if args.verbose:
        os.environ[VERBOSE_ENV] = "1"  # the method processes inherit it
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    stop_on_sigterm()
    command = args.command or "run"
    try:
        commands = {"run": _run, "matrix": _matrix, "methods": _list_methods, "embedders": _list_embedders,
                    "fetch-lfw": _fetch, "compare": _compare, "plot": _plot, "leaderboard": _leaderboard,
                    "landmarks": _landmarks, "robustness": _robustness, "speed": _speed}
        return commands[command](args)
    except FaceBenchError as exc:
        print(f"facebench: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a report or chart that cannot be written: one line, not a traceback
        if exc.errno not in UNWRITABLE:
            raise
        print(f"facebench: error: cannot write {exc.filename}: {exc.strerror}; finished chunks are kept: make room "
              "(or make the folder writable) and run the same command again to resume", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facebench: interrupted; finished work is cached, run the same command again to resume",
              file=sys.stderr)
        return 130


def _config(args, kind, **extra):
    """``kind`` (:class:`RunConfig` or a subclass) from the run options of ``args``."""
    from .api import resolve_methods

    return kind(
        methods=resolve_methods(args.methods, args.weights_dir), dataset=args.dataset, lfw_dir=args.lfw_dir,
        cfp_dir=args.cfp_dir, pairs=args.pairs, weights_dir=args.weights_dir, aligned_dir=args.aligned_dir,
        out=args.out, cache_dir=args.cache_dir, device=args.device, batch_size=args.batch_size,
        workers=args.workers, detect_batch=args.detect_batch, flip=args.flip,
        embedder_model=args.embedder_model, embedder_backend=args.embedder, precision=args.precision,
        embedder_weights=args.embedder_weights, quantized=args.quantized, resume=args.resume,
        align=args.align,
        max_pairs=args.max_pairs, progress=not args.quiet, allow_unverified_weights=args.allow_unverified_weights,
        isolate=args.isolate, engine=args.engine, ray_address=args.ray_address, detect_workers=args.detect_workers,
        **extra,
    )


def _run(args) -> int:
    from .run.runner import RunConfig, run_benchmark

    rows = run_benchmark(_config(args, RunConfig))
    _print_summary(rows)
    return 1 if any(row.get("error") for row in rows) else 0


def _matrix(args) -> int:
    from .run.matrix import MatrixConfig, run_matrix

    embedders = args.embedders or (args.embedder_model,)
    rows = run_matrix(_config(args, MatrixConfig, embedders=embedders, aligns=args.aligns))
    _print_summary(rows)
    return 1 if any(row.get("error") for row in rows) else 0


def _robustness(args) -> int:
    from .protocol.degradations import conditions_table
    from .run.robustness import RobustnessConfig, run_robustness

    if args.list_conditions:
        print(conditions_table())
        return 0
    table, summary = run_robustness(_config(args, RobustnessConfig, conditions=args.conditions,
                                            oracle=args.oracle, folds=args.folds or (), embedders=args.embedders or ()))
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for _, row in table[table["error"] != ""].iterrows():
        print(f"{row['row']}: ERROR {row['error']}")
    return 1 if (table["error"] != "").any() else 0


def _print_summary(rows: list[dict]) -> None:
    width = max([18, *(len(r["method"]) for r in rows)])
    print(f"{'method':{width}s} {'accuracy':>9s} {'std':>7s} {'strict':>7s} {'found-acc':>9s} {'success':>8s} "
          f"{'AUC':>7s} {'EER':>7s} {'ms/img':>7s}")
    for r in rows:
        if r.get("error"):
            print(f"{r['method']:{width}s} ERROR {r['error']}")
            continue
        print(f"{r['method']:{width}s} {r['accuracy']:9.4f} {r['accuracy_std']:7.4f} {r['strict_accuracy']:7.4f} "
              f"{r['accuracy_found']:9.4f} {r['success_rate']:8.4f} {r['roc_auc']:7.4f} {r['eer']:7.4f} "
              f"{r.get('detect_ms_median', 0):7.2f}")


def _list_methods(args) -> int:
    from face_alignment import list_methods

    for status in list_methods(args.weights_dir):
        mark = "ready" if status.ready else "missing"
        print(f"{status.name:18s} {mark:8s} {status.reason if status.reason != 'ready' else ''}  {status.description}")
    return 0


def _list_embedders(args) -> int:
    from backbones import embedder_spec, list_embedders

    for status in list_embedders(args.weights_dir):
        spec = embedder_spec(status.name)
        size, dim = spec.model_input.template.size, spec.model_input.dim
        shape = f"{size}x{size} -> {dim}-d on {'/'.join(spec.backends)}"
        mark = "ready" if status.ready else "missing"
        print(f"{status.name:14s} {mark:8s} {shape:36s} {status.reason if status.reason != 'ready' else ''}  "
              f"{status.description}")
    print("onnx:PATH      any ONNX recognition model (input size from the graph; insightface's conventions, "
          "overridable by PATH.json)")
    return 0


def _fetch(args) -> int:
    from .fetch import fetch_lfw

    fetch_lfw(args.data_dir, args.base_url)
    return 0


def _compare(args) -> int:
    """Print the delta table; exit status 1 when a regression is flagged (for CI)."""
    table = compare.compare_runs(args.a, args.b, n_boot=args.bootstrap, seed=args.seed, alpha=args.alpha,
                                 time_tolerance=args.time_tolerance, memory_tolerance=args.memory_tolerance)
    print(compare.format_comparison(table, args.alpha))
    if args.csv:
        table.to_csv(args.csv, index=False)
        logging.getLogger(__name__).info("comparison written to %s", args.csv)
    return 1 if (table["regressions"] != "").any() else 0


def _leaderboard(args) -> int:
    from .leaderboard import write_leaderboard
    from .leaderboard.copies import copy_run

    runs = [copy_run(run, args.copy_to) for run in args.runs] if args.copy_to else args.runs
    for path in write_leaderboard(runs, args.out, args.markdown_name):
        logging.getLogger(__name__).info("written: %s", path)
    return 0


def _plot(args) -> int:
    from .protocol.lfw import find_image_root
    from .report.summary import redraw_run

    image_root = find_image_root(args.lfw_dir) if args.lfw_dir else None
    return 0 if redraw_run(args.run, image_root=image_root, aligned_dir=args.aligned_dir) else 1


def _landmarks(args) -> int:
    from .api import resolve_methods
    from .protocol.landmarks import default_labels
    from .run.landmarks import run_landmarks

    summary = run_landmarks(resolve_methods(args.methods, args.weights_dir), args.labels or default_labels(),
                            args.images, args.out, args.weights_dir, args.device, progress=not args.quiet)
    columns = ["method", "n_found", "miss_rate", "nme_mean", "nme_median", "nme_p90", "failure_0.10", "auc_0.10",
               "nme_mean_offset_removed", "detect_ms_median"]
    print(summary[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for _, row in summary[summary["error"] != ""].iterrows():
        print(f"{row['method']}: ERROR {row['error']}")
    return 1 if (summary["error"] != "").any() else 0


def _speed(args) -> int:
    from .speed import SpeedOptions, run

    def names(text: str | None) -> tuple[str, ...] | None:
        return tuple(n.strip() for n in text.split(",") if n.strip()) if text else None

    run(SpeedOptions(args.lfw_dir, args.aligned_dir, args.weights_dir, args.device, names(args.embedder) or (),
                     args.precision, names(args.methods), args.repeats, args.cache_dir,
                     names(args.sections) or (), args.quick, names(args.replica_methods),
                     tuple(int(n) for n in names(args.replica_workers) or (1,)), tuple(args.command_from)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
