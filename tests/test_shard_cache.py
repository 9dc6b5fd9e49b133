"""The sharded cache (benchmark.run.cache): each committed chunk is one shard written once, the bytes
written per chunk do not grow with the run, an interrupted run resumes from its shards to the
uninterrupted results, damaged or misfitting shards are redone, an old single-file cache is moved
into shards, and a shard can be written by another process.

Data-free: small generated images through the real pipeline, a stand-in embedder."""
from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmark.run.cache import (
    FOUND,
    PENDING,
    ROW_ARRAYS,
    TOTALS,
    TOTALS_FILE,
    UNREADABLE,
    MethodResults,
    Shard,
    ShardCache,
)
from benchmark.run.cropping import reference_cropper
from benchmark.run.pipeline import process_images

N, CHUNK = 45, 8  # six chunks, the last of five images
UNREADABLE_IMAGE = 13  # its reason must survive the shards


class MeanEmbedder:
    """A stand-in for the embedder: each crop's channel means, repeated (deterministic, and
    independent of the batch)."""

    batch_size = 4

    def embed(self, crops: np.ndarray, flip: bool = False) -> np.ndarray:
        return np.repeat(crops.mean(axis=(1, 2)), 171, axis=1)[:, :512].astype(np.float32)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    names = [f"img{i:03d}.png" for i in range(N)]
    for i, name in enumerate(names):
        if i == UNREADABLE_IMAGE:
            (root / name).write_bytes(b"not an image")
        else:
            cv2.imwrite(str(root / name), rng.integers(0, 256, (20, 20, 3), np.uint8))
    return root, names


def _files(folder: Path) -> dict[str, tuple[int, int, int]]:
    """(inode, mtime, size) of each file in ``folder``: a file replaced or rewritten changes."""
    return {p.name: (s.st_ino, s.st_mtime_ns, s.st_size) for p in folder.glob("*") if (s := p.stat())}


class WriteLog:
    """The runner's checkpoint (``write_chunk``), noting the files each chunk created or changed."""

    def __init__(self, cache: ShardCache, results: MethodResults) -> None:
        self.cache, self.results, self.chunks = cache, results, []

    def __call__(self, indices: np.ndarray) -> None:
        before = _files(self.cache.folder)
        self.cache.write_chunk(self.results, indices)
        self.chunks.append({name: s for name, s in _files(self.cache.folder).items() if before.get(name) != s})


def _run(images, cache: ShardCache, results: MethodResults | None = None, cropper=None) -> WriteLog:
    root, names = images
    log = WriteLog(cache, MethodResults.empty(N) if results is None else results)
    process_images(names, root, cropper or reference_cropper(), MeanEmbedder(), log.results, chunk=CHUNK,
                   detect_batch=3, save=log, progress=False)
    return log


def _assert_same(a: MethodResults, b: MethodResults, timings: bool = False) -> None:
    """Equal rows and reasons; the detection times too with ``timings`` (they differ between runs)."""
    for name in ROW_ARRAYS if timings else set(ROW_ARRAYS) - {"detect_ms"}:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.reasons == b.reasons


@pytest.fixture(scope="module")
def full(images, tmp_path_factory) -> MethodResults:
    """The uninterrupted run's results."""
    return _run(images, ShardCache(tmp_path_factory.mktemp("full") / "m-key")).results


def test_each_chunk_is_one_shard_written_once(images, tmp_path):
    cache = ShardCache(tmp_path / "m-key")
    log = _run(images, cache)
    assert len(log.chunks) == 6
    shards = []
    for changed in log.chunks:  # a new shard and the totals, nothing else
        (shard,) = set(changed) - {TOTALS_FILE}
        assert TOTALS_FILE in changed and shard not in shards
        shards.append(shard)
    assert [p.name for p in cache.shard_paths()] == shards == [f"shard-{i:09d}-{min(CHUNK, N - i)}.npz"
                                                               for i in range(0, N, CHUNK)]
    final = _files(cache.folder)
    assert all(final[name] == changed[name] for name, changed in zip(shards, log.chunks))  # never rewritten
    loaded = cache.load(N)
    _assert_same(loaded, log.results, timings=True)
    assert loaded.done == N and loaded.status[UNREADABLE_IMAGE] == UNREADABLE
    assert "not a decodable image" in loaded.reasons[UNREADABLE_IMAGE]
    np.testing.assert_equal([getattr(loaded, n) for n in TOTALS], [getattr(log.results, n) for n in TOTALS])
    cache.clear()
    assert cache.load(N) is None


def test_the_bytes_written_per_chunk_do_not_grow_with_the_run(tmp_path):
    """A 10,240-image cache filled 256 images at a time: every chunk writes its shard (the same
    size each time) and the totals, a few bytes; the old single file would have written every
    image's row after each chunk."""
    n, chunk = 10_240, 256
    results = MethodResults.empty(n)
    rng = np.random.default_rng(0)
    log = WriteLog(ShardCache(tmp_path / "m-key"), results)
    for start in range(0, n, chunk):
        indices = np.arange(start, start + chunk)
        results.embeddings[indices] = rng.standard_normal((chunk, 512), np.float32)
        results.status[indices], results.scores[indices], results.detect_ms[indices] = FOUND, 0.9, 3.0
        results.wall_seconds += 0.1
        log(indices)
    written = [sum(s[2] for s in changed.values()) for changed in log.chunks]
    shard_bytes = {s[2] for changed in log.chunks for name, s in changed.items() if name != TOTALS_FILE}
    assert len(shard_bytes) == 1 and max(written) - min(written) < 100, (shard_bytes, min(written), max(written))
    row = 512 * 4 + 2 * 5 * 2 * 4 + 4 * 4 + 4 + 4 + 1 + 8  # embedding, landmarks, points, box, score, ms, status, index
    assert max(written) < 1.01 * chunk * row  # the chunk's rows and little else; the cache ends 40 times larger


def test_an_interrupted_run_resumes_from_its_shards_to_the_same_results(images, full, tmp_path):
    calls = {"n": 0}

    def dying(batch, indices=None):
        calls["n"] += 1
        if calls["n"] == 8:  # in the third chunk (three batches of 3 per chunk of 8)
            raise KeyboardInterrupt
        return reference_cropper()(batch)

    cache = ShardCache(tmp_path / "m-key")
    with pytest.raises(KeyboardInterrupt):
        _run(images, cache, cropper=dying)
    kept = _files(cache.folder)
    resumed = cache.load(N)
    assert resumed.done == 2 * CHUNK and len(cache.shard_paths()) == 2  # the two whole chunks
    first_ms = resumed.detect_ms[: 2 * CHUNK].copy()
    seen = []
    log = _run(images, cache, resumed,
               cropper=lambda batch, indices: seen.append(len(batch)) or reference_cropper()(batch))
    assert sum(seen) == N - 2 * CHUNK  # the finished shards skipped
    assert len(log.chunks) == 4 and all(_files(cache.folder)[name] == s for name, s in kept.items()
                                        if name != TOTALS_FILE)
    _assert_same(resumed, full)
    final = cache.load(N)
    _assert_same(final, resumed, timings=True)
    np.testing.assert_array_equal(final.detect_ms[: 2 * CHUNK], first_ms)  # not redone


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_shard_is_removed_and_redone(images, full, tmp_path, caplog, damage):
    cache = ShardCache(tmp_path / "m-key")
    _run(images, cache)
    shard = cache.shard_paths()[2]
    data = shard.read_bytes()
    shard.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x00not a shard" * 100, "empty": b""}[damage])
    with caplog.at_level(logging.WARNING):
        resumed = cache.load(N)
    assert f"removing unreadable cache shard {shard}" in caplog.text and not shard.exists()
    assert np.flatnonzero(resumed.status == PENDING).tolist() == list(range(2 * CHUNK, 3 * CHUNK))
    log = _run(images, cache, resumed)
    assert [set(changed) - {TOTALS_FILE} for changed in log.chunks] == [{shard.name}]  # redone, alone
    _assert_same(cache.load(N), full)


def test_shards_that_do_not_fit_are_ignored_with_a_warning(images, tmp_path, caplog):
    cache = ShardCache(tmp_path / "m-key")
    _run(images, cache)
    first = cache.shard_paths()[0]
    (cache.folder / "shard-000000000-9.npz").write_bytes(first.read_bytes())  # the same images again
    with caplog.at_level(logging.WARNING):
        fewer = cache.load(N - 2)  # the last shard holds images 40 to 44
    assert "shard-000000040-5.npz: its images are not all among the 43" in caplog.text
    assert "shard-000000000-9.npz: its images are repeated" in caplog.text
    assert fewer.done == N - 5


def _save_old_format(results: MethodResults, path: Path) -> None:
    """The single file that earlier versions rewrote whole after each chunk."""
    np.savez(path, **{name: getattr(results, name) for name in (*ROW_ARRAYS, *TOTALS)},
             reasons=np.array('{"13": "unreadable"}'))


def test_an_old_single_file_cache_is_moved_into_shards_and_continued(images, full, tmp_path, caplog):
    cache = ShardCache(tmp_path / "m-key")
    partial = MethodResults.empty(N)
    done = np.arange(20)  # the old runner committed whole chunks of pending images
    Shard.of(full, done).put_into(partial)
    partial.reasons, partial.wall_seconds, partial.peak_rss_mb = {13: "unreadable"}, 12.5, 300.0
    cache.folder.parent.mkdir(parents=True, exist_ok=True)
    _save_old_format(partial, cache.legacy)
    with caplog.at_level(logging.WARNING):
        moved = cache.load(N)
    assert f"read the old single-file cache {cache.legacy} (20/45 images done)" in caplog.text
    assert not cache.legacy.exists() and [p.name for p in cache.shard_paths()] == ["shard-000000000-20.npz"]
    _assert_same(moved, partial)
    assert (moved.wall_seconds, moved.peak_rss_mb) == (12.5, 300.0)
    log = _run(images, cache, moved)
    assert len(log.chunks) == 4  # the 25 images left, as shards beside the moved one
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        final = cache.load(N)
    assert not caplog.text
    _assert_same(final, replace(full, reasons={13: "unreadable"}))


def test_a_damaged_old_single_file_cache_is_recomputed(tmp_path, caplog):
    cache = ShardCache(tmp_path / "m-key")
    cache.legacy.write_bytes(b"PK\x03\x04 half a zip")
    with caplog.at_level(logging.WARNING):
        assert cache.load(N) is None
    assert f"ignoring the old single-file cache {cache.legacy} (unreadable" in caplog.text
    assert not cache.legacy.exists()


def test_a_shard_is_written_by_another_process_given_the_folder_and_the_chunk(full, tmp_path):
    cache = ShardCache(tmp_path / "m-key")
    chunks = [np.arange(s, min(s + CHUNK, N)) for s in range(0, N, CHUNK)]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        paths = list(pool.map(Shard.write, [Shard.of(full, chunk) for chunk in chunks], [cache.folder] * len(chunks)))
    assert paths == cache.shard_paths()
    _assert_same(cache.load(N), full)
