"""``facebench`` / ``python -m benchmark``: the command line."""
from __future__ import annotations

import argparse
import logging
import signal
import sys

from face_alignment.errors import FaceBenchError

DESCRIPTION = """\
Benchmark face detectors / aligners on LFW: every method's faces aligned to the same ArcFace
112x112 template, embedded with the same EdgeFace model, scored with the standard 10-fold LFW
verification protocol (insightface's threshold rule). Writes <out>/report.csv (one row per
method), <out>/images/<method>.csv (per-image status) and <out>/scores/<method>.npz (per-pair
distances). Interrupted runs resume from <out>/cache.

Other commands:
  facebench methods     list every detection method and whether it can run here
  facebench fetch-lfw   download LFW (deep-funneled images + pairs.txt) and check it
  facebench compare A B do two runs (or RUN:METHOD specs) differ significantly? delta table
  facebench plot RUN    redraw a run's charts (overview, ROC, crop gallery) and summary.md
  facebench speed       throughput of each stage and embedder here, pipelined vs sequential LFW pass
"""


def _run_parser() -> argparse.ArgumentParser:
    from backbones import BACKENDS, DEFAULT_EMBEDDER, PRECISIONS

    p = argparse.ArgumentParser(prog="facebench", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default="yunet,mtcnn",
                   help="comma-separated methods, or 'all' for every method ready here (default: %(default)s)")
    p.add_argument("--lfw-dir", help="LFW root holding lfw-deepfunneled/ (or lfw/) and pairs.txt, or the image "
                   "folder itself (default: $FACEBENCH_LFW, data/lfw or ../shared/data/lfw)")
    p.add_argument("--pairs", help="pairs file: official pairs.txt (View 1 or 2), Kaggle pairs.csv, or a CSV "
                   "with header path1,path2,same (default: pairs.txt beside the images)")
    p.add_argument("--weights-dir", help="folder with the weights (default: $FACEBENCH_WEIGHTS or checkpoints/)")
    p.add_argument("--aligned-dir", help="reference-aligned 112x112 crops (e.g. aligned-112): adds a 'reference' "
                   "row, the embedder alone, the ceiling detectors are read against")
    p.add_argument("--device", default="auto", help="auto (CUDA if present, else CPU), cpu, cuda, cuda:1 ...")
    p.add_argument("--batch-size", type=_positive, default=64, help="embedding batch size (default: %(default)s)")
    p.add_argument("--detect-batch", type=_positive, default=8, help="images per detector call (default: %(default)s)")
    p.add_argument("--workers", type=_positive, default=2, help="image-decoding threads (default: %(default)s)")
    p.add_argument("--out", default="results/lfw", help="output folder (default: %(default)s)")
    p.add_argument("--flip", action="store_true", help="flip test-time augmentation: embedding of image + mirror")
    p.add_argument("--embedder-model", default=DEFAULT_EMBEDDER,
                   help="embedder weights by manifest name (default: %(default)s, loaded as float)")
    p.add_argument("--embedder", choices=BACKENDS, default="torch",
                   help="embedder backend: PyTorch, ONNX Runtime or OpenVINO on the ONNX export (default: %(default)s)")
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
    p.add_argument("--quiet", action="store_true", help="no progress bars, warnings and errors only")
    return p


def _positive(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def _methods_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="facebench methods", description="List detection methods and their status.")
    p.add_argument("--weights-dir", help="folder with the weights (default: $FACEBENCH_WEIGHTS or checkpoints/)")
    return p


def _fetch_parser() -> argparse.ArgumentParser:
    from .fetch import LFW_BASE_URL

    p = argparse.ArgumentParser(prog="facebench fetch-lfw", description="Download LFW deep-funneled images and "
                                "pairs.txt, check their md5, and unpack them into --data-dir.")
    p.add_argument("--data-dir", default="data/lfw", help="destination (default: %(default)s)")
    p.add_argument("--base-url", default=LFW_BASE_URL, help="where the files are published (default: %(default)s)")
    return p


def _compare_parser() -> argparse.ArgumentParser:
    from . import compare

    p = argparse.ArgumentParser(prog="facebench compare", description="Do two runs (their common methods) or "
                                "two methods (RUN:METHOD) differ significantly? Per-pair decisions at the protocol's "
                                "fold thresholds; paired bootstrap 95% CI of the accuracy difference B - A and "
                                "McNemar's test; a delta table of accuracy, AUC, EER, success rate, time and memory "
                                "ratios. Exit status 1 when a regression is flagged (significant accuracy drop, time "
                                "or memory beyond the tolerance), 2 on an error.")
    p.add_argument("a", metavar="A", help="run folder (compare its methods with B's), or RUN:METHOD")
    p.add_argument("b", metavar="B", help="run folder, or RUN:METHOD (the same kind as A)")
    p.add_argument("--bootstrap", type=_positive, default=compare.N_BOOTSTRAP, help="bootstrap resamples (default: "
                   "%(default)s)")
    p.add_argument("--seed", type=int, default=compare.SEED, help="bootstrap seed (default: %(default)s)")
    p.add_argument("--alpha", type=float, default=compare.ALPHA, help="significance level (default: %(default)s)")
    p.add_argument("--time-tolerance", type=float, default=compare.TIME_TOLERANCE,
                   help="flag B slower than A by more than this fraction (default: %(default)s)")
    p.add_argument("--memory-tolerance", type=float, default=compare.MEMORY_TOLERANCE,
                   help="flag B's peak memory above A's by more than this fraction (default: %(default)s)")
    p.add_argument("--csv", help="also write the table to this CSV file")
    p.add_argument("--quiet", action="store_true", help="warnings and errors only")
    return p


def _plot_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="facebench plot", description="Redraw the charts (overview.png, roc.png, "
                                "gallery.png) and summary.md of a finished run, beside its report.csv.")
    p.add_argument("run", metavar="RUN", help="the run's output folder (its --out)")
    p.add_argument("--lfw-dir", help="LFW images for the crop gallery (default: where the run read them, "
                   "from its run.json)")
    p.add_argument("--aligned-dir", help="reference crops for the gallery's reference column (default: the run's)")
    p.add_argument("--quiet", action="store_true", help="warnings and errors only")
    return p


def _speed_parser() -> argparse.ArgumentParser:
    from .speed import parser

    return parser()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv and argv[0] in ("methods", "fetch-lfw", "run", "compare", "plot", "speed") else "run"
    args_in = argv[1:] if argv and argv[0] == command else argv
    parser = {"methods": _methods_parser, "fetch-lfw": _fetch_parser, "run": _run_parser, "compare": _compare_parser,
              "plot": _plot_parser, "speed": _speed_parser}[command]()
    args = parser.parse_args(args_in)
    quiet = getattr(args, "quiet", False)
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        if command == "methods":
            return _list_methods(args)
        if command == "fetch-lfw":
            from .fetch import fetch_lfw

            fetch_lfw(args.data_dir, args.base_url)
            return 0
        if command == "compare":
            return _compare(args)
        if command == "plot":
            return _plot(args)
        if command == "speed":
            from .speed import run as run_speed

            return run_speed(args)
        return _run(args)
    except FaceBenchError as exc:
        print(f"facebench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facebench: interrupted; finished work is cached, run the same command again to resume",
              file=sys.stderr)
        return 130


def _compare(args) -> int:
    """Print the delta table; exit status 1 when a regression is flagged (for CI)."""
    from .compare import compare_runs, format_comparison

    table = compare_runs(args.a, args.b, n_boot=args.bootstrap, seed=args.seed, alpha=args.alpha,
                    time_tolerance=args.time_tolerance, memory_tolerance=args.memory_tolerance)
    print(format_comparison(table, args.alpha))
    if args.csv:
        table.to_csv(args.csv, index=False)
        logging.getLogger(__name__).info("comparison written to %s", args.csv)
    return 1 if (table["regressions"] != "").any() else 0


def _plot(args) -> int:
    from .lfw import find_image_root
    from .summary import redraw_run

    image_root = find_image_root(args.lfw_dir) if args.lfw_dir else None
    return 0 if redraw_run(args.run, image_root=image_root, aligned_dir=args.aligned_dir) else 1


def _list_methods(args) -> int:
    from face_alignment import list_methods

    for status in list_methods(args.weights_dir):
        mark = "ready" if status.ready else "missing"
        print(f"{status.name:18s} {mark:8s} {status.reason if status.reason != 'ready' else ''}  {status.description}")
    return 0


def _run(args) -> int:
    from .api import resolve_methods
    from .runner import RunConfig, run_benchmark

    methods = resolve_methods(args.methods, args.weights_dir)
    config = RunConfig(
        methods=methods, lfw_dir=args.lfw_dir, pairs=args.pairs, weights_dir=args.weights_dir,
        aligned_dir=args.aligned_dir, out=args.out, device=args.device, batch_size=args.batch_size,
        workers=args.workers, detect_batch=args.detect_batch, flip=args.flip,
        embedder_model=args.embedder_model, embedder_backend=args.embedder, precision=args.precision,
        embedder_weights=args.embedder_weights, quantized=args.quantized, resume=args.resume,
        max_pairs=args.max_pairs, progress=not args.quiet, allow_unverified_weights=args.allow_unverified_weights,
        isolate=args.isolate,
    )
    rows = run_benchmark(config)
    _print_summary(rows)
    return 1 if any(row.get("error") for row in rows) else 0


def _print_summary(rows: list[dict]) -> None:
    print(f"{'method':18s} {'accuracy':>9s} {'std':>7s} {'found-acc':>9s} {'success':>8s} {'AUC':>7s} "
          f"{'EER':>7s} {'ms/img':>7s}")
    for r in rows:
        if r.get("error"):
            print(f"{r['method']:18s} ERROR {r['error']}")
            continue
        print(f"{r['method']:18s} {r['accuracy']:9.4f} {r['accuracy_std']:7.4f} {r['accuracy_found']:9.4f} "
              f"{r['success_rate']:8.4f} {r['roc_auc']:7.4f} {r['eer']:7.4f} {r.get('detect_ms_median', 0):7.2f}")


if __name__ == "__main__":
    sys.exit(main())
