"""Interrupted runs resume from the cache; stale or damaged caches are never reused.

The kills are real: the CLI runs in a subprocess (its methods in a child process of their own)
and gets SIGINT (to its process group, as Ctrl-C in a terminal), SIGTERM and SIGKILL. Each lands
at a known point: the run holds there (``FACEBENCH_HOLD_AFTER_CHUNKS``) until it is killed."""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from benchmark.cli import main
from benchmark.run.cache import PENDING, ROW_ARRAYS, TOTALS, MethodResults, ShardCache
from benchmark.run.holdpoint import HOLD_AFTER_CHUNKS, holding_line
from benchmark.run.isolation import GRACE_SECONDS, INTERRUPTED
from benchmark.run.runner import RunConfig, run_benchmark
from tests.conftest import LFW_DIR, REPO, WEIGHTS_DIR, command_line, interruptible
from tests.shared_runs import METRICS, N_IMAGES, RUN_ARGS, report_row, uninterrupted_run

pytestmark = pytest.mark.shared

CHUNK = 256  # images per cached chunk (shard) of the runner (process_images' default)


class CliRun:
    """``python -m benchmark`` in a subprocess and session of its own, its stderr collected; it
    holds once it has cached ``hold`` chunks of its own (:mod:`benchmark.run.holdpoint`). Every
    run started is in :attr:`started`, so that one left holding by a failed test is killed."""

    started: list[CliRun] = []

    def __init__(self, out: Path, hold: int) -> None:
        self.out, self.hold = out, hold
        CliRun.started.append(self)
        env = {**os.environ, HOLD_AFTER_CHUNKS: str(hold)}
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmark", *RUN_ARGS, "--out", str(out)], cwd=REPO,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                                     start_new_session=True, preexec_fn=interruptible)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True)
        self._reader.start()

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def wait_until(self, condition, what: str, timeout: float = 240.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.proc.poll() is None, f"run ended (status {self.proc.returncode}) before {what}:\n{self.stderr}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    def wait_until_held(self) -> None:
        self.wait_until(lambda: holding_line(self.hold) in self.stderr, f"the run holds after {self.hold} chunks")

    def method_process(self) -> psutil.Process:
        """The child process that runs the method (multiprocessing's spawn)."""
        (child,) = [p for p in psutil.Process(self.proc.pid).children() if "spawn_main" in command_line(p)]
        return child

    def kill(self, sig: int, target: str = "parent") -> int:
        """Send ``sig`` to the run (``parent``), its process ``group`` (as Ctrl-C does) or the
        method's ``child`` process; returns the run's exit status after checking that its child
        processes ended too (within their grace period) and no traceback was printed."""
        children = psutil.Process(self.proc.pid).children(recursive=True)
        if target == "child":
            self.method_process().send_signal(sig)
        else:
            (os.killpg if target == "group" else os.kill)(self.proc.pid, sig)
        status = self.proc.wait(timeout=120)
        _, alive = psutil.wait_procs(children, timeout=GRACE_SECONDS + 5)
        assert not alive, f"child processes outlived the run: {alive}"
        self._reader.join(10)
        assert "Traceback" not in self.stderr, self.stderr
        return status


@pytest.fixture(autouse=True)
def _no_run_left_holding():
    """A test that fails while a run holds would leave it (and its method's process) waiting forever."""
    yield
    for run in CliRun.started:
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGKILL)
            run.proc.wait(timeout=30)
    CliRun.started.clear()


def _cache(out: Path) -> MethodResults | None:
    folders = sorted((out / "cache").glob("yunet-*"))
    return ShardCache(folders[0]).load(N_IMAGES) if folders else None


def _files(out: Path) -> dict[str, bytes]:
    """Every file of the run's caches, by its path in ``cache/``."""
    return {str(p.relative_to(out / "cache")): p.read_bytes() for p in (out / "cache").rglob("*") if p.is_file()}


def test_kill_and_resume_gives_the_uninterrupted_numbers(tmp_path, caplog):
    out = tmp_path / "interrupted"
    # Ctrl-C in the middle of the method, once its first chunk is saved
    run = CliRun(out, hold=1)
    run.wait_until_held()
    assert run.kill(signal.SIGINT, "group") == INTERRUPTED
    assert "interrupted; finished work is cached" in run.stderr
    first = _cache(out)
    assert first.done == CHUNK  # the chunk in progress is lost, the finished one kept
    assert not list((out / "cache").rglob(".*.tmp"))  # no half-written file left behind
    (shard,) = ShardCache(next((out / "cache").glob("yunet-*"))).shard_paths()
    first_shard = shard.stat()

    # then, as resumed runs start their work: SIGTERM to the run, SIGKILL to the run (its orphaned
    # child must stop by itself), SIGKILL to the method's child process (a crash, or the OOM killer)
    for sig, target, status in ((signal.SIGTERM, "parent", INTERRUPTED), (signal.SIGKILL, "parent", -signal.SIGKILL),
                                (signal.SIGKILL, "child", 1)):
        run = CliRun(out, hold=0)
        run.wait_until_held()
        assert f"yunet: resuming from {next((out / 'cache').glob('yunet-*'))} ({CHUNK}/{N_IMAGES} images done)" \
            in run.stderr
        assert run.kill(sig, target) == status, run.stderr
        again = _cache(out)  # readable, and nothing finished was lost or redone
        np.testing.assert_array_equal(again.status, first.status)
        np.testing.assert_array_equal(again.detect_ms, first.detect_ms)
        assert not list((out / "cache").rglob(".*.tmp"))
    crashed = f"crashed (SIGKILL) after {CHUNK}/{N_IMAGES} images; rerun to resume"
    assert crashed in run.stderr and report_row(out)["error"] == crashed  # the run went on and said so

    caplog.set_level(logging.INFO)
    assert main([*RUN_ARGS, "--out", str(out), "--quiet"]) == 0
    assert f"({CHUNK}/{N_IMAGES} images done)" in caplog.text
    final = _cache(out)
    assert final.done == N_IMAGES
    kept = first.status != PENDING  # the first run's images were not processed again: same timings
    np.testing.assert_array_equal(final.detect_ms[kept], first.detect_ms[kept])
    assert (shard.stat().st_ino, shard.stat().st_mtime_ns) == (first_shard.st_ino, first_shard.st_mtime_ns)  # kept

    fresh = uninterrupted_run()
    resumed, uninterrupted = report_row(out), report_row(fresh)
    assert {m: resumed[m] for m in METRICS} == {m: uninterrupted[m] for m in METRICS}
    a, b = np.load(out / "scores/yunet.npz"), np.load(fresh / "scores/yunet.npz")
    np.testing.assert_array_equal(a["distances"], b["distances"])


# --- which cache is reused: in-process runs (the same code decides in a child process) ---

def _config(out: Path, **options) -> RunConfig:
    settings = {"methods": ["yunet"], "lfw_dir": LFW_DIR, "weights_dir": WEIGHTS_DIR, "max_pairs": 40,
                "device": "cpu", "out": out, "progress": False, "isolate": False, **options}
    return RunConfig(**settings)


@pytest.fixture(scope="module")
def cached_run(tmp_path_factory):
    """A finished 40-pair run (68 images); its folder is copied by the tests that change it."""
    out = tmp_path_factory.mktemp("cached")
    row = run_benchmark(_config(out))[0]
    return out, row


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("change, reused", [
    ({}, True),  # the same inputs: resumed, nothing recomputed
    ({"flip": True}, False),  # an option that changes the embeddings
    ({"max_pairs": 60}, False),  # another image list
    ({"resume": False}, False),  # --no-resume
])
def test_cache_is_reused_only_for_the_same_inputs(cached_run, tmp_path, caplog, change, reused):
    src, _ = cached_run
    out = _copy(src, tmp_path / "run")
    before, folders = _files(out), {p.name for p in (out / "cache").iterdir()}
    caplog.set_level(logging.INFO)
    run_benchmark(_config(out, **change))
    assert ("all 68 images read from the complete cache" in caplog.text) == reused  # nothing built
    after = _files(out)
    if reused:
        assert after == before  # not even rewritten
    elif change.get("resume", True):
        assert len({p.name for p in (out / "cache").iterdir()}) == len(folders) + 1  # a cache of its own, keyed
        assert all(after[name] == data for name, data in before.items())  # by what produced it; the other as it was


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_cache_is_ignored_with_a_warning(cached_run, tmp_path, caplog, damage):
    src, row = cached_run
    out = _copy(src, tmp_path / "run")
    (folder,) = (out / "cache").glob("yunet-*")
    (shard,) = ShardCache(folder).shard_paths()  # 68 images: one chunk
    data = shard.read_bytes()
    shard.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x00not a cache" * 100,
                       "empty": b""}[damage])
    caplog.set_level(logging.INFO)
    again = run_benchmark(_config(out))[0]
    assert "removing unreadable cache shard" in caplog.text and "resuming from" not in caplog.text
    assert {m: again[m] for m in METRICS} == {m: row[m] for m in METRICS}  # recomputed, same numbers
    assert ShardCache(folder).load(68).done == 68  # and cached again


def test_an_old_single_file_cache_is_read_and_not_recomputed(cached_run, tmp_path, caplog):
    """The cache of earlier versions (one file rewritten whole after each chunk) is moved into
    shards: its images are not processed again and the row keeps every figure."""
    src, row = cached_run
    out = _copy(src, tmp_path / "run")
    (folder,) = (out / "cache").glob("yunet-*")
    cached = ShardCache(folder).load(68)
    np.savez(folder.parent / f"{folder.name}.npz", **{name: getattr(cached, name) for name in (*ROW_ARRAYS, *TOTALS)},
             reasons=np.array("{}"))
    shutil.rmtree(folder)
    caplog.set_level(logging.INFO)
    again = run_benchmark(_config(out))[0]
    assert "read the old single-file cache" in caplog.text and "(68/68 images done)" in caplog.text
    kept = (*METRICS, "detect_ms_median", "embed_img_per_s", "wall_s", "peak_rss_mb")  # the cached run's figures
    assert {k: again[k] for k in kept} == {k: row[k] for k in kept}
    assert [p.name for p in (out / "cache").glob("yunet-*")] == [folder.name]  # the old file is gone
