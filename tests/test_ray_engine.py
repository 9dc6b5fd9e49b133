"""The Ray engine (``--engine ray``, benchmark.run.ray_engine) on real LFW images and weights: the
local engine's per-image results and metrics, clean and under a condition; a backend that
segfaults in a Ray actor fails its own method only; a run killed with SIGKILL resumes from its
shards to the same numbers.

Ray really runs: the first run's method process starts a local Ray of its own (and stops it);
the others join the one this module starts (``ray_address``), or use it from this process (the
engine itself)."""
from __future__ import annotations

import csv
import logging
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import psutil
import pytest

from benchmark.api import run_lfw
from benchmark.protocol.degradations import make_condition
from benchmark.protocol.lfw import lfw_protocol
from benchmark.protocol.pairs import read_pairs
from benchmark.run import cropping, runner
from benchmark.run.cache import FOUND, ROW_ARRAYS, MethodResults, ShardCache
from benchmark.run.cropping import CropperRecipe, image_source
from benchmark.run.engine import LocalEngine, MethodWork
from benchmark.run.facts import EmbedderFacts
from benchmark.run.holdpoint import HOLD_AFTER_CHUNKS, holding_line
from benchmark.run.ray_engine import ActorPlan, RayEngine, plan_actors
from benchmark.run.runner import RunConfig, load_embedder, method_models, run_benchmark
from face_alignment import pick_target_face
from tests.conftest import LFW_DIR, LFW_IMAGES, REPO, WEIGHTS_DIR, command_line, pip_install_plugin
from tests.shared_runs import METRICS

#: Ray Data warns about its own deprecated settings as it copies its context (none of them set here)
pytestmark = [pytest.mark.shared, pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")]

#: 60 pairs: 96 images, one chunk
SMALL_PAIRS, SMALL_IMAGES = 60, 96
#: 720 pairs: 1,070 images, five chunks (4 x 256, 46): a kill after the first shard leaves work
MAX_PAIRS, N_IMAGES = 720, 1070
SUBSET = ["--lfw-dir", str(LFW_DIR), "--weights-dir", str(WEIGHTS_DIR), "--device", "cpu"]
YUNET = CropperRecipe("yunet", pick_target_face, "cpu", WEIGHTS_DIR)


def _run(out: Path, max_pairs: int = MAX_PAIRS, **options) -> None:
    run_lfw(["yunet"], LFW_DIR, WEIGHTS_DIR, out, max_pairs=max_pairs, device="cpu", progress=False, **options)


def _local_run(out: Path, max_pairs: int) -> Path:
    """The local engine's run of a subset (in this process: the same numbers as in a child)."""
    _run(out, max_pairs, isolate=False)
    return out


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray for the module's later tests (joined with --ray-address, or held by this process)."""
    import ray

    ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _cache(out: Path) -> ShardCache:
    (folder,) = (out / "cache").glob("yunet-*")
    return ShardCache(folder)


def _report(out: Path) -> dict[str, dict]:
    with open(out / "report.csv", newline="") as fh:
        return {row["method"]: row for row in csv.DictReader(fh)}


def _assert_identical(a: MethodResults, b: MethodResults) -> None:
    """Every image's result the same, to the bit (``detect_ms`` is a time: only measured in both)."""
    for name in ROW_ARRAYS:
        if name == "detect_ms":
            np.testing.assert_array_equal(np.isnan(a.detect_ms), np.isnan(b.detect_ms))
        else:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.reasons == b.reasons


def test_ray_gives_the_local_engines_results_and_numbers(tmp_path):
    """A Ray run through the API (the method's process starts a local Ray, and stops it) against
    the local engine."""
    local_run = _local_run(tmp_path / "local", SMALL_PAIRS)
    out = tmp_path / "ray"
    _run(out, SMALL_PAIRS, engine="ray")
    ray_results, local_results = _cache(out).load(SMALL_IMAGES), _cache(local_run).load(SMALL_IMAGES)
    _assert_identical(ray_results, local_results)
    assert np.count_nonzero(ray_results.status == FOUND) > 0.95 * SMALL_IMAGES  # real detections
    ray_row, local_row = _report(out)["yunet"], _report(local_run)["yunet"]
    assert ray_row["error"] == "" and {m: ray_row[m] for m in METRICS} == {m: local_row[m] for m in METRICS}
    # the stage times and memory of the actors, as the local engine reports them
    assert np.isfinite(ray_results.detect_ms).all() and (ray_results.detect_ms > 0).all()
    assert float(ray_row["embed_img_per_s"]) > 0 and float(ray_row["wall_s"]) > 0
    assert float(ray_row["peak_rss_mb"]) > 300  # a process that holds torch and EdgeFace


def test_the_ray_driver_builds_no_model_and_keys_its_cache_as_the_local_engine(ray_address, tmp_path, monkeypatch):
    """With the Ray engine, this process (the driver: isolation off) builds no detector and no
    embedder: a task on the cluster describes them (the facts equal those of the models built here)
    and the actors build their own. The run's cache has the local engine's key and its row the
    local engine's numbers and devices."""
    local = _local_run(tmp_path / "local", SMALL_PAIRS)
    config = RunConfig(methods=["yunet"], lfw_dir=LFW_DIR, weights_dir=WEIGHTS_DIR, device="cpu", engine="ray",
                       ray_address=ray_address, max_pairs=SMALL_PAIRS, progress=False, isolate=False,
                       out=tmp_path / "ray")
    protocol = lfw_protocol(LFW_DIR, max_pairs=SMALL_PAIRS)
    here = image_source("yunet", protocol, "cpu", WEIGHTS_DIR), load_embedder(config, "cpu")

    def refuse(*args, **kwargs):
        raise AssertionError("the Ray driver built a model")

    monkeypatch.setattr(cropping, "create_detector", refuse)
    source, facts = method_models("yunet", protocol, config)
    assert source.described() == here[0].described() and source.cropper is None
    assert facts == EmbedderFacts.of(here[1])
    run_benchmark(config)  # its parent's description of the embedder is the one model built here
    assert _cache(config.out).folder.name == _cache(local).folder.name
    row, local_row = _report(config.out)["yunet"], _report(local)["yunet"]
    assert row["error"] == "" and {m: row[m] for m in METRICS} == {m: local_row[m] for m in METRICS}
    for column in ("detector_model", "detector_device", "embedder_device", "detector_weights_sha256"):
        assert row[column] == local_row[column] != ""
    monkeypatch.setattr(runner, "create_embedder", refuse)
    with pytest.raises(AssertionError, match="built a model"):  # the refusals are in force here
        method_models("yunet", protocol, replace(config, engine="local"))


def _method_process(proc: subprocess.Popen, deadline: float) -> psutil.Process:
    """The run's child process that runs the method (and is Ray's driver)."""
    while True:
        children = [p for p in psutil.Process(proc.pid).children() if "spawn_main" in command_line(p)]
        if children:
            return children[0]
        assert proc.poll() is None and time.monotonic() < deadline, "the method's process did not start"
        time.sleep(0.02)


def test_a_ray_run_whose_driver_is_killed_resumes_to_the_same_numbers(ray_address, tmp_path, caplog):
    """SIGKILL of the Ray driver (the method's process of a CLI run on the cluster) once it has
    written its first shard (it holds there, ``FACEBENCH_HOLD_AFTER_CHUNKS``, so the kill lands at
    the same point on any machine): the run records the crash and ends; run again, it resumes
    from the shard, on the same cluster, to the local engine's numbers."""
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "benchmark", "--methods", "yunet", *SUBSET, "--max-pairs",
                             str(MAX_PAIRS), "--engine", "ray", "--ray-address", ray_address, "--out", str(out),
                             "--quiet"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, HOLD_AFTER_CHUNKS: "1"})
    try:
        driver = _method_process(proc, time.monotonic() + 300)
        lines = []
        while holding_line(1) not in (line := proc.stderr.readline()):
            assert line, f"the run ended (status {proc.wait()}) before it held:\n{''.join(lines)}"
            lines.append(line)
        driver.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=120) == 1  # a method failed, the run ended
    finally:  # a failed test must not leave the run holding
        if proc.poll() is None:
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
            proc.wait(timeout=30)
    assert "Traceback" not in proc.stderr.read()
    cache = _cache(out)
    first = cache.load(N_IMAGES)
    assert first.done == 256 and len(cache.shard_paths()) == 1  # the first chunk cached, the rest not
    assert _report(out)["yunet"]["error"] == f"crashed (SIGKILL) after 256/{N_IMAGES} images; rerun to resume"
    kept = {path: path.stat().st_mtime_ns for path in cache.shard_paths()}

    caplog.set_level(logging.INFO)
    _run(out, engine="ray", ray_address=ray_address)
    assert f"({first.done}/{N_IMAGES} images done)" in caplog.text
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in kept.items())  # finished shards not redone
    resumed = cache.load(N_IMAGES)
    local_run = _local_run(tmp_path / "local", MAX_PAIRS)
    _assert_identical(resumed, _cache(local_run).load(N_IMAGES))
    row, local_row = _report(out)["yunet"], _report(local_run)["yunet"]
    assert row["error"] == "" and {m: row[m] for m in METRICS} == {m: local_row[m] for m in METRICS}
    np.testing.assert_array_equal(np.load(out / "scores/yunet.npz")["distances"],
                                  np.load(local_run / "scores/yunet.npz")["distances"])


def test_a_segfault_in_a_ray_actor_fails_its_own_method_only(ray_address, tmp_path_factory):
    site = pip_install_plugin(REPO / "tests" / "crash_plugin", tmp_path_factory.mktemp("crash_plugin"))
    out = tmp_path_factory.mktemp("crash") / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "benchmark", "--methods", "crash_segv,yunet", *SUBSET,
                           "--max-pairs", "40", "--engine", "ray", "--ray-address", ray_address, "--out", str(out),
                           "--quiet"], cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 1, done.stderr  # a method failed, the run ended
    rows = _report(out)
    assert list(rows) == ["crash_segv", "yunet"]
    assert re.fullmatch(r"the Ray detector actor \(pid \d+ on \S+\) died: .+ after 0/68 images \(a crash in native "
                        r"code, such as a segfault or an abort, or a kill\); the chunks before are cached: rerun to "
                        r"resume",
                        rows["crash_segv"]["error"]), rows["crash_segv"]["error"]
    assert rows["crash_segv"]["accuracy"] == rows["crash_segv"]["success_rate"] == ""
    yunet = rows["yunet"]  # the method after it ran on the same cluster
    assert yunet["error"] == "" and yunet["n_pairs"] == "40" and float(yunet["success_rate"]) == 1.0
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 300  # no actor restarted over and over


@pytest.mark.parametrize("condition", [("rotation", 3)], ids=["rotation-3"])
def test_a_condition_through_ray_gives_the_local_results(ray_address, embedder, condition):
    """The engine seam itself, in this process (which holds Ray): a degraded pass, image by image."""
    images = read_pairs(LFW_DIR / "pairs.txt").images[:48]
    work = MethodWork("yunet", images, LFW_IMAGES, YUNET.build(), embedder, condition=make_condition(*condition),
                      recipe=YUNET)
    # the actors build the fixture's embedder (torch), to compare to the bit
    config = RunConfig(methods=["yunet"], weights_dir=WEIGHTS_DIR, device="cpu", embedder_backend="torch",
                       progress=False)
    saved: dict[str, list] = {"local": [], "ray": []}
    local = LocalEngine(progress=False).run(work, MethodResults.empty(48), lambda i: saved["local"].append(i.tolist()))
    engine = RayEngine(config, load_embedder)
    ray_results = engine.run(work, MethodResults.empty(48), lambda i: saved["ray"].append(i.tolist()))
    _assert_identical(ray_results, local)
    assert saved["ray"] == saved["local"] == [list(range(48))]
    assert np.count_nonzero(local.status == FOUND) >= 40  # rotated faces found, landmarks mapped back


def test_actor_pools_follow_the_clusters_cpus_and_gpus():
    assert plan_actors(2, 0, False, False) == ActorPlan(1, 0.0, 1, 0.0)  # this machine: one of each
    assert plan_actors(16, 0, False, False) == ActorPlan(15, 0.0, 15, 0.0)
    assert plan_actors(16, 2, False, True) == ActorPlan(15, 0.0, 2, 1.0)  # a CPU detector, GPU embedders
    plan = plan_actors(16, 1, True, True)  # both on the one GPU: half for the embedder, half shared out
    assert (plan.detectors, plan.embedders, plan.embedder_gpus) == (15, 1, 0.5)
    assert plan.detector_gpus * plan.detectors + plan.embedder_gpus * plan.embedders == pytest.approx(1.0)
    assert plan_actors(1, 0, False, False) == ActorPlan(1, 0.0, 1, 0.0)
