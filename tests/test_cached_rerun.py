"""A rerun over a complete cache builds no model, starts no process and draws no chart
(:mod:`benchmark.run.cellindex`), and gives the first run's row; anything that could change a
number takes the slow path."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from benchmark.report import summary
from benchmark.run import cellindex, cropping, runner
from benchmark.run.cache import ShardCache
from benchmark.run.runner import RunConfig, cached_row, prepare_run, run_benchmark
from tests.conftest import LFW_DIR, WEIGHTS_DIR
from tests.shared_runs import METRICS

pytestmark = pytest.mark.shared

#: what the first run measured or learnt by building its models, which a cached row must repeat
BUILT = ("wall_s", "detect_ms_median", "embed_img_per_s", "peak_rss_mb", "peak_gpu_nvml_mb", "detector_model",
         "detector_device", "embedder_device", "detector_weights_sha256", "tf32", "detections_reused")


def _config(out: Path, **changes) -> RunConfig:
    return RunConfig(methods=["yunet"], lfw_dir=LFW_DIR, weights_dir=WEIGHTS_DIR, max_pairs=40, device="cpu",
                     out=out, progress=False, **changes)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, dict]:
    """A finished 40-pair YuNet run (68 images), each method in its own process."""
    out = tmp_path_factory.mktemp("finished")
    return out, run_benchmark(_config(out))[0]


def _refuse(what: str):
    def refuse(*args, **kwargs):
        raise AssertionError(f"a rerun over a complete cache {what}")
    return refuse


def test_a_rerun_builds_no_model_starts_no_process_and_gives_the_same_row(finished, tmp_path, monkeypatch, caplog):
    first_out, first = finished
    out = shutil.copytree(first_out, tmp_path / "run")
    monkeypatch.setattr(runner, "run_isolated", _refuse("started a process"))
    monkeypatch.setattr(runner, "method_row", _refuse("processed the method"))
    monkeypatch.setattr(cropping, "create_detector", _refuse("built a detector"))
    monkeypatch.setattr(summary, "redraw_run", _refuse("drew the charts"))
    caplog.set_level(logging.INFO)
    (again,) = run_benchmark(_config(out))
    assert not again.get("error"), again.get("error")
    assert {k: again[k] for k in (*METRICS, *BUILT)} == {k: first[k] for k in (*METRICS, *BUILT)}
    assert "charts of" in caplog.text and "kept" in caplog.text
    assert (out / "summary.md").stat().st_mtime > (first_out / "summary.md").stat().st_mtime  # rewritten


@pytest.mark.parametrize("change", [
    {"flip": True}, {"align": "eyes"}, {"embedder_model": "edgeface_xxs"}, {"embedder_backend": "torch"},
    {"allow_unverified_weights": True}, {"resume": False},
])
def test_anything_that_could_change_a_number_takes_the_slow_path(finished, change):
    out, _ = finished
    same = prepare_run(_config(out))
    assert cached_row("yunet", _config(out), same.protocol, same.meta, out) is not None
    changed = prepare_run(_config(out, **change))
    assert cached_row("yunet", _config(out, **change), changed.protocol, changed.meta, out) is None


def test_a_code_change_or_an_incomplete_cache_takes_the_slow_path(finished, tmp_path, monkeypatch):
    out = shutil.copytree(finished[0], tmp_path / "run")
    run = prepare_run(_config(out))
    assert cached_row("yunet", _config(out), run.protocol, run.meta, out) is not None
    with monkeypatch.context() as patch:
        patch.setattr(cellindex, "source_version", lambda: "another version of the code")
        assert cached_row("yunet", _config(out), run.protocol, run.meta, out) is None
    (folder,) = (out / "cache").glob("yunet-*")
    for shard in ShardCache(folder).shard_paths():
        shard.unlink()
    assert cached_row("yunet", _config(out), run.protocol, run.meta, out) is None

