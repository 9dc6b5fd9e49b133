"""The runner on real LFW images: fallbacks are counted, interrupted runs resume to the same
numbers, and each image is processed once."""
import csv
import logging

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.protocol.pairs import read_pairs
from benchmark.protocol.scores import summarize
from benchmark.report.files import read_run_info
from benchmark.run.cache import FALLBACK, FOUND, PENDING, UNREADABLE, MethodResults, ShardCache
from benchmark.run.cropping import detector_cropper
from benchmark.run.pipeline import process_images
from benchmark.run.runner import ReportFile, RunConfig, run_benchmark
from tests.conftest import LFW_DIR, LFW_IMAGES, WEIGHTS_DIR

pytestmark = pytest.mark.shared


def test_resume_after_interrupt_gives_same_numbers(small_pairs, yunet, embedder, tmp_path):
    n = len(small_pairs.images)
    full = process_images(small_pairs.images, LFW_IMAGES, detector_cropper(yunet), embedder,
                          MethodResults.empty(n), chunk=16, progress=False)

    calls = {"n": 0}
    base = detector_cropper(yunet)

    def dying_cropper(images, indices=None):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # as SIGINT / SIGTERM arrive mid-chunk
        return base(images)

    cache = ShardCache(tmp_path / "yunet-key")
    partial = MethodResults.empty(n)
    with pytest.raises(KeyboardInterrupt):
        process_images(small_pairs.images, LFW_IMAGES, dying_cropper, embedder, partial, chunk=16,
                       detect_batch=4, save=lambda chunk: cache.write_chunk(partial, chunk), progress=False)
    resumed = cache.load(n)
    assert 0 < resumed.done < n and resumed.done % 16 == 0  # whole chunks only
    assert len(cache.shard_paths()) == resumed.done // 16  # a shard each
    done_before = resumed.done
    seen = []
    process_images(small_pairs.images, LFW_IMAGES, lambda ims, indices: seen.append(len(ims)) or base(ims), embedder,
                   resumed, chunk=16, save=lambda chunk: cache.write_chunk(resumed, chunk), progress=False)
    assert sum(seen) == n - done_before  # the finished shards are skipped
    np.testing.assert_array_equal(cache.load(n).embeddings, resumed.embeddings)  # the rest cached too
    assert not np.any(resumed.status == PENDING)
    np.testing.assert_allclose(resumed.embeddings, full.embeddings, atol=1e-5)
    assert summarize(resumed.score(small_pairs)) == summarize(full.score(small_pairs))


def test_failures_are_counted_not_dropped(tmp_path, yunet, embedder):
    """A blank image gets the fallback crop, an unreadable one is scored as 'different'."""
    import shutil

    shutil.copy(LFW_IMAGES / "Aaron_Eckhart/Aaron_Eckhart_0001.jpg", tmp_path / "a.jpg")
    import cv2

    cv2.imwrite(str(tmp_path / "blank.png"), np.full((250, 250, 3), 90, np.uint8))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    csv = tmp_path / "pairs.csv"
    csv.write_text("path1,path2,same\na.jpg,blank.png,1\na.jpg,broken.jpg,0\n")
    pairs = read_pairs(csv)
    results = process_images(pairs.images, tmp_path, detector_cropper(yunet), embedder,
                             MethodResults.empty(3), progress=False)
    assert results.status.tolist() == [FOUND, FALLBACK, UNREADABLE]
    assert "no face" in results.reasons[1] and "not a decodable image" in results.reasons[2]
    assert np.isfinite(results.embeddings[1]).all() and np.isnan(results.embeddings[2]).all()
    scores = results.score(pairs)
    assert scores.distances[1] == 4.0 and not scores.found.any()


def test_cli_end_to_end(tmp_path, capsys):
    code = main(["--methods", "yunet", "--lfw-dir", str(LFW_DIR), "--weights-dir", str(WEIGHTS_DIR),
                 "--max-pairs", "40", "--out", str(tmp_path), "--device", "cpu", "--quiet"])
    assert code == 0
    rows = list(csv.DictReader(open(tmp_path / "report.csv")))
    assert rows[0]["method"] == "yunet" and rows[0]["n_pairs"] == "40" and float(rows[0]["success_rate"]) == 1.0
    assert (tmp_path / "images/yunet.csv").is_file() and (tmp_path / "scores/yunet.npz").is_file()
    assert "yunet" in capsys.readouterr().out


def test_methods_command(capsys):
    assert main(["methods", "--weights-dir", str(WEIGHTS_DIR)]) == 0
    out = capsys.readouterr().out
    assert "yunet" in out and "mtcnn" in out


def test_unknown_method_is_a_clear_error(capsys):
    assert main(["--methods", "nope", "--lfw-dir", str(LFW_DIR), "--quiet"]) == 2
    assert "unknown method" in capsys.readouterr().err


def _report(out) -> dict[str, dict[str, str]]:
    with open(out / "report.csv", newline="") as fh:
        return {row["method"]: row for row in csv.DictReader(fh)}


def test_a_run_keeps_the_rows_another_run_wrote_into_its_folder_meanwhile(tmp_path):
    def run(methods):
        return run_benchmark(RunConfig(methods=methods, lfw_dir=LFW_DIR, weights_dir=WEIGHTS_DIR, out=tmp_path,
                                       device="cpu", max_pairs=40, progress=False, isolate=False))

    (yunet,) = run(["yunet"])
    started = ReportFile(tmp_path, read_run_info(tmp_path), ["yunet"])  # a run into the folder starts ...
    run(["mediapipe_simple"])  # ... another one adds its row ...
    beside = _report(tmp_path)["mediapipe_simple"]
    started.add([yunet])  # ... and the first one writes its own row afterwards
    assert list(_report(tmp_path)) == ["yunet", "mediapipe_simple"]
    assert _report(tmp_path)["mediapipe_simple"] == beside


def test_a_rerun_keeps_the_other_rows_and_a_cached_rerun_changes_no_figure(tmp_path, caplog):
    def run(methods, max_pairs=40):
        return run_benchmark(RunConfig(methods=methods, lfw_dir=LFW_DIR, weights_dir=WEIGHTS_DIR, out=tmp_path,
                                       device="cpu", max_pairs=max_pairs, progress=False, isolate=False))

    run(["yunet", "mediapipe_simple"])
    first = _report(tmp_path)
    with caplog.at_level(logging.INFO):
        run(["yunet"])  # every image of yunet is in its cache: nothing is processed
    second = _report(tmp_path)
    assert list(second) == ["yunet", "mediapipe_simple"]  # the other method's row is kept, in its place
    assert second["mediapipe_simple"] == first["mediapipe_simple"]
    assert "keeping the rows of mediapipe_simple" in caplog.text
    # the cached rerun's row: every figure as the run that did the work (its peak memory too, not the
    # idle rerun's), only the run's own metadata is new
    changed = {c for c in first["yunet"] if first["yunet"][c] != second["yunet"][c]}
    assert changed <= {"started_at"}, changed
    assert float(second["yunet"]["peak_rss_mb"]) > 0
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        run(["yunet"], max_pairs=60)  # other pairs: the earlier rows cannot stand beside this one
    assert list(_report(tmp_path)) == ["yunet"] and _report(tmp_path)["yunet"]["n_pairs"] == "60"
    assert "held the rows of mediapipe_simple over other pairs" in caplog.text
