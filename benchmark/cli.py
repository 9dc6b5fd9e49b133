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
"""


def _run_parser() -> argparse.ArgumentParser:
    from backbones import DEFAULT_EMBEDDER

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
    p.add_argument("--batch-size", type=int, default=64, help="embedding batch size (default: %(default)s)")
    p.add_argument("--detect-batch", type=int, default=8, help="images per detector call (default: %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="image-decoding threads (default: %(default)s)")
    p.add_argument("--out", default="results/lfw", help="output folder (default: %(default)s)")
    p.add_argument("--flip", action="store_true", help="flip test-time augmentation: embedding of image + mirror")
    p.add_argument("--embedder", default=DEFAULT_EMBEDDER,
                   help="embedder weights by manifest name (default: %(default)s, loaded as float)")
    p.add_argument("--embedder-weights", help="an explicit EdgeFace checkpoint (.pt) instead")
    p.add_argument("--quantized", action="store_true",
                   help="keep a *_q.pt checkpoint in qint8 (CPU only; embeddings then depend on batch-mates)")
    p.add_argument("--max-pairs", type=int, help="quick check on a subset: this many pairs spread over the "
                   "10 folds (numbers are not the protocol's)")
    p.add_argument("--no-resume", dest="resume", action="store_false", help="ignore cached results")
    p.add_argument("--quiet", action="store_true", help="no progress bars, warnings and errors only")
    return p


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


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv and argv[0] in ("methods", "fetch-lfw", "run") else "run"
    args_in = argv[1:] if argv and argv[0] == command else argv
    parser = {"methods": _methods_parser, "fetch-lfw": _fetch_parser, "run": _run_parser}[command]()
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
        return _run(args)
    except FaceBenchError as exc:
        print(f"facebench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facebench: interrupted; finished work is cached, run the same command again to resume",
              file=sys.stderr)
        return 130


def _list_methods(args) -> int:
    from face_alignment import list_methods

    for status in list_methods(args.weights_dir):
        mark = "ready" if status.ready else "missing"
        print(f"{status.name:18s} {mark:8s} {status.reason if status.reason != 'ready' else ''}  {status.description}")
    return 0


def _run(args) -> int:
    from face_alignment import list_methods, method_names

    from .runner import RunConfig, run_benchmark

    if args.methods == "all":
        methods = [s.name for s in list_methods(args.weights_dir) if s.ready]
    else:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        unknown = [m for m in methods if m not in method_names()]
        if unknown:
            raise FaceBenchError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(method_names())}")
    config = RunConfig(
        methods=methods, lfw_dir=args.lfw_dir, pairs=args.pairs, weights_dir=args.weights_dir,
        aligned_dir=args.aligned_dir, out=args.out, device=args.device, batch_size=args.batch_size,
        workers=args.workers, detect_batch=args.detect_batch, flip=args.flip, embedder=args.embedder,
        embedder_weights=args.embedder_weights, quantized=args.quantized, resume=args.resume,
        max_pairs=args.max_pairs, progress=not args.quiet,
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
