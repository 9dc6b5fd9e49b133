"""``python -m benchmark.scale``: the results cache on a long run, measured.

A synthetic list of ``--images`` entries, the LFW reference crops (``aligned-112``) repeated under
other names (``copy-NNN/<person>/<file>``, each ``copy-NNN`` a symbolic link to the crops' folder,
in a temporary folder), goes through the local engine's pipeline
(:func:`benchmark.run.pipeline.process_images`: decode, the reference cropper, which does no
detection, and the EdgeFace embedder), and each committed chunk is cached as the runner does: one
shard per chunk (:class:`benchmark.run.cache.ShardCache`), or with ``--cache whole`` as earlier
versions did, every image's arrays rewritten to one file after each chunk. It prints each chunk's
cache write time, bytes and the process RSS (every ``--every`` chunks), then the first and the
last 10% of the chunks side by side (median write ms and RSS MB), the bytes written in all and
the time to read the cache back (checked equal to the results in memory).

``--no-embed`` embeds nothing (zero embeddings): it measures the cache and the pipeline only (decode,
crop, commit), for runs longer than the embedder allows on a small machine. On 2 shared CPU cores,
100,000 images took 10 minutes with the torch embedder (166 img/s) and 20 s without.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import psutil

from backbones import DEFAULT_EMBEDDER, create_embedder
from face_alignment.atomic import atomic_path
from face_alignment.errors import FaceBenchError

from .protocol.lfw import find_lfw_dir
from .run.cache import ROW_ARRAYS, TOTALS, TOTALS_FILE, MethodResults, ShardCache
from .run.cropping import reference_cropper
from .run.pipeline import process_images

EMBED_DIM = 512


class ZeroEmbedder:
    """``--no-embed``: zero embeddings, at no cost, so that only the cache and the pipeline are timed."""

    batch_size = 64

    def embed(self, crops: np.ndarray, flip: bool = False) -> np.ndarray:
        return np.zeros((len(crops), EMBED_DIM), np.float32)


def synthetic_images(aligned_dir: Path, n: int, folder: Path) -> list[str]:
    """``n`` image paths under ``folder``: the crops of ``aligned_dir`` in turn, the k-th time
    round under ``copy-k/`` (a symbolic link to ``aligned_dir``)."""
    crops = sorted(str(p.relative_to(aligned_dir)) for p in aligned_dir.rglob("*.jpg"))
    if not crops:
        raise FaceBenchError(f"no reference crops (*.jpg) under {aligned_dir}: pass --aligned-dir")
    for copy in range((n + len(crops) - 1) // len(crops)):
        (folder / f"copy-{copy:03d}").symlink_to(aligned_dir.resolve(), target_is_directory=True)
    return [f"copy-{i // len(crops):03d}/{crops[i % len(crops)]}" for i in range(n)]


def shard_writer(cache: ShardCache, results: MethodResults) -> Callable[[np.ndarray], int]:
    """The runner's checkpoint: the chunk's shard and the totals; returns the bytes written."""
    def write(indices: np.ndarray) -> int:
        return cache.write_chunk(results, indices).stat().st_size + (cache.folder / TOTALS_FILE).stat().st_size

    return write


def whole_file_writer(path: Path, results: MethodResults) -> Callable[[np.ndarray], int]:
    """Earlier versions' checkpoint: every image's arrays and the totals to one file, replaced."""
    def write(indices: np.ndarray) -> int:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **{name: getattr(results, name) for name in (*ROW_ARRAYS, *TOTALS)},
                     reasons=np.array(json.dumps({str(k): v for k, v in results.reasons.items()})))
        return path.stat().st_size

    return write


def run(images: Sequence[str], root: Path, embedder, mode: str, cache_dir: Path, chunk: int, workers: int,
        every: int) -> list[tuple[float, float, int]]:
    """Process ``images`` caching each chunk (``mode``: shards or whole); prints per chunk and
    returns (write ms, RSS MB, bytes written) per chunk."""
    n, process = len(images), psutil.Process()
    results = MethodResults.empty(n, EMBED_DIM)
    cache, whole = ShardCache(cache_dir / "shards"), cache_dir / "whole.npz"
    write = shard_writer(cache, results) if mode == "shards" else whole_file_writer(whole, results)
    chunks: list[tuple[float, float, int]] = []
    total = (n + chunk - 1) // chunk

    def checkpoint(indices: np.ndarray) -> None:
        start = time.perf_counter()
        written = write(indices)
        ms = (time.perf_counter() - start) * 1000.0
        chunks.append((ms, process.memory_info().rss / 2**20, written))
        if len(chunks) % every == 0 or len(chunks) in (1, total):
            print(f"chunk {len(chunks):5d}/{total}  {results.done:7d} images  write {ms:8.2f} ms "
                  f"{written / 2**20:8.2f} MiB  RSS {chunks[-1][1]:7.1f} MB", flush=True)

    start = time.perf_counter()
    process_images(images, root, reference_cropper(), embedder, results, workers=workers, chunk=chunk,
                   save=checkpoint, progress=False)
    wall = time.perf_counter() - start
    _summary(chunks, wall, n)
    _read_back(cache if mode == "shards" else whole, results)
    return chunks


def _summary(chunks: list[tuple[float, float, int]], wall: float, n: int) -> None:
    ms, rss, written = (np.array(column) for column in zip(*chunks))
    tenth = max(1, len(chunks) // 10)
    print(f"\n{n} images, {len(chunks)} chunks in {wall:.1f} s ({n / wall:.0f} img/s); cache writes "
          f"{ms.sum() / 1000:.1f} s in all ({100 * ms.sum() / 1000 / wall:.1f}% of the wall time), "
          f"{written.sum() / 2**30:.2f} GiB written")
    print(f"{'chunks':>16s} {'median write ms':>16s} {'median RSS MB':>14s} {'MiB per chunk':>14s}")
    for label, part in ((f"first {tenth}", slice(0, tenth)), (f"last {tenth}", slice(-tenth, None))):
        print(f"{label:>16s} {np.median(ms[part]):16.2f} {np.median(rss[part]):14.1f} "
              f"{np.median(written[part]) / 2**20:14.2f}")


def _read_back(cache: ShardCache | Path, results: MethodResults) -> None:
    """Time reading the cache (shards, or the whole file) back and check it against ``results``."""
    start = time.perf_counter()
    if isinstance(cache, ShardCache):
        loaded = cache.load(len(results.status), EMBED_DIM)
    else:
        with np.load(cache) as data:
            loaded = MethodResults(*(data[name] for name in ROW_ARRAYS))
    seconds, rss = time.perf_counter() - start, psutil.Process().memory_info().rss / 2**20
    for name in ROW_ARRAYS:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(results, name))
    print(f"read back in {seconds:.2f} s (RSS {rss:.0f} MB with the results twice in memory): equal to the "
          "results in memory")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmark.scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=100_000, help="entries of the synthetic image list")
    p.add_argument("--cache", choices=("shards", "whole"), default="shards",
                   help="shards: a file per chunk (the runner's cache); whole: earlier versions' single file")
    p.add_argument("--no-embed", action="store_true", help="zero embeddings: time the cache and the pipeline only")
    p.add_argument("--backend", default="torch", help="the embedder's backend (torch, onnx, openvino)")
    p.add_argument("--chunk", type=int, default=256, help="images per committed chunk (the runner's 256)")
    p.add_argument("--workers", type=int, default=2, help="decode threads")
    p.add_argument("--every", type=int, default=1, help="print every this many chunks")
    p.add_argument("--lfw-dir", help="the LFW folder (default: as facebench finds it)")
    p.add_argument("--aligned-dir", help="the reference crops (default: <lfw-dir>/aligned-112)")
    p.add_argument("--weights-dir", help="where the embedder's weights are")
    p.add_argument("--workdir", help="where the links and the cache go (default: a temporary folder, removed)")
    args = p.parse_args(argv)
    aligned = Path(args.aligned_dir) if args.aligned_dir else find_lfw_dir(args.lfw_dir) / "aligned-112"
    embedder = ZeroEmbedder() if args.no_embed else create_embedder(
        args.backend, "fp32", DEFAULT_EMBEDDER, weights_dir=args.weights_dir, device="cpu")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="facebench-scale-"))
    try:
        (work / "images").mkdir(parents=True)
        images = synthetic_images(aligned, args.images, work / "images")
        print(f"{len(images)} images ({len(images) / 1000:.0f}k: the reference crops of {aligned} repeated under "
              f"other names), cache {args.cache}, embedder "
              f"{'none (zeros)' if args.no_embed else f'{embedder.name} ({args.backend})'}, chunk {args.chunk}")
        run(images, work / "images", embedder, args.cache, work / "cache", args.chunk, args.workers,
            max(1, args.every))
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
