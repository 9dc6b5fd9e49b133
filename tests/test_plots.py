"""Charts and summary.md of real runs: written at the end of a run, valid PNGs, the expected
axes and lines, one colour per method everywhere, the gallery redrawn from logged landmarks."""
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.text import Text
from PIL import Image

from backbones import AUTO, embedder_spec, resolve_backend
from benchmark.cli import main
from benchmark.report.files import LANDMARK_COLUMNS, load_run
from benchmark.report.plots import CHART_FILES, method_color, pick_gallery_images, plot_gallery, plot_overview, plot_roc
from benchmark.run.cache import ShardCache
from benchmark.run.runner import RunConfig, run_benchmark
from face_alignment import align_face, load_image
from tests.conftest import ALIGNED_DIR, LFW_DIR, LFW_IMAGES, WEIGHTS_DIR

pytestmark = pytest.mark.shared

#: the smallest size each chart can have and still be readable (pixels at the charts' 110 dpi)
MIN_SIZE = {"overview": (1500, 700), "roc": (800, 600), "gallery": (400, 500)}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real run over 100 LFW pairs: the reference crops, YuNet, and a method that fails."""
    out = tmp_path_factory.mktemp("run")
    run_benchmark(RunConfig(methods=["yunet", "no_such_method"], lfw_dir=LFW_DIR, weights_dir=WEIGHTS_DIR,
                            aligned_dir=ALIGNED_DIR, out=out, device="cpu", max_pairs=100, progress=False,
                            isolate=False))
    return out


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory):
    """A real run over a hand-made pairs list holding a blank image (no face: the fallback crop)
    and a broken file (unreadable)."""
    root = tmp_path_factory.mktemp("images")
    for name in ("Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "Bill_Gates/Bill_Gates_0003.jpg"):
        shutil.copy(LFW_IMAGES / name, root / name.split("/")[1])
    cv2.imwrite(str(root / "blank.png"), np.full((250, 250, 3), 90, np.uint8))
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    pairs = root / "pairs.csv"
    pairs.write_text("path1,path2,same\nAaron_Eckhart_0001.jpg,blank.png,1\nAaron_Eckhart_0001.jpg,Bill_Gates_0003.jpg,"
                     "0\nBill_Gates_0003.jpg,broken.jpg,0\nAaron_Eckhart_0001.jpg,Aaron_Eckhart_0001.jpg,1\n")
    out = root / "out"
    run_benchmark(RunConfig(methods=["yunet"], lfw_dir=root, pairs=pairs, weights_dir=WEIGHTS_DIR, out=out,
                            device="cpu", progress=False, isolate=False))
    return out


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_writes_charts_and_summary(run_dir):
    for name, file in CHART_FILES.items():
        path = run_dir / file
        assert _is_png(path), name
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            width, height = image.size
        assert width >= MIN_SIZE[name][0] and height >= MIN_SIZE[name][1], (name, image.size)
    summary = (run_dir / "summary.md").read_text()
    report = load_run(run_dir).report
    yunet = report[report["method"] == "yunet"].iloc[0]
    assert f"| yunet | {yunet['accuracy']:.2%} |" in summary  # the table holds the report's numbers
    assert "| reference |" in summary and "**subset**" in summary  # 100 pairs are not View 2's 6000
    assert "`no_such_method`: unknown" in summary  # the failed method is listed with its error
    assert all(f"]({file})" in summary for file in CHART_FILES.values())


def test_overview_panels_and_colours(run_dir):
    run = load_run(run_dir)
    fig = plot_overview(run)
    axes = fig.get_axes()
    assert len(axes) == 6
    titles = [ax.get_title() for ax in axes]
    for word in ("accuracy", "time per image", "success rate", "error rate", "CPU memory", "GPU memory"):
        assert any(word.lower() in t.lower() for t in titles), word
    accuracy = axes[0]
    # the methods with results (the failed one is left out), best accuracy on top, each bar in its colour
    ok = run.report[run.report["error"] == ""].sort_values("accuracy", ascending=False, kind="stable")
    labels = {tick.get_position()[1]: tick.get_text() for tick in accuracy.get_yticklabels()}
    assert [labels[y] for y in sorted(labels, reverse=True)] == ok["method"].tolist()
    for patch in accuracy.patches:
        method = labels[patch.get_y() + patch.get_height() / 2]
        assert to_hex(patch.get_facecolor()) == method_color(method)
    texts = [t.get_text() for t in accuracy.texts]
    assert any(t.startswith(f"{run.row('yunet')['accuracy']:.2%}") for t in texts)
    roc = plot_roc(run)
    assert {line.get_label().split()[0]: to_hex(line.get_color()) for line in roc.axes[0].get_lines()} == {
        m: method_color(m) for m in ("reference", "yunet")}
    # backend (the default, auto, resolved) and precision said
    backend = resolve_backend(embedder_spec("edgeface_xs"), AUTO, "fp32", "cpu")
    assert f"embedder edgeface_xs ({backend} fp32) on cpu" in fig.get_suptitle()


#: (median detect ms, accuracy) of each method in a full 6,000-pair run (results/lfw of the closing
#: note of issue 6): five methods within 3 ms and 0.05 points of each other
CROWDED = {"mtcnn": (26.0, 0.9958), "mediapipe": (3.93, 0.9955), "yunet": (2.67, 0.9953),
           "mediapipe_simple": (1.68, 0.9952), "rtmpose": (4.69, 0.9950), "retinaface": (5.55, 0.9947),
           "yolov5_face": (11.0, 0.9945), "dlib_cnn": (219.0, 0.9930), "yolov8_face": (15.6, 0.9925),
           "dlib": (5.85, 0.9912)}


def test_speed_panel_names_do_not_cover_each_other_or_other_dots(run_dir):
    yunet = load_run(run_dir).report.query("method == 'yunet'").iloc[0]
    report = pd.DataFrame([{**yunet.to_dict(), "method": m, "detect_ms_median": ms, "accuracy": acc}
                           for m, (ms, acc) in CROWDED.items()])
    fig = plot_overview(report)
    fig.draw_without_rendering()
    speed = fig.get_axes()[1]
    names = {t.get_text(): Text.get_window_extent(t) for t in speed.texts if t.get_text() in CROWDED}
    dots = {m: speed.transData.transform((ms, acc)) for m, (ms, acc) in CROWDED.items()}
    assert set(names) == set(CROWDED)
    for method, box in names.items():
        assert all(not box.overlaps(other) for m, other in names.items() if m != method), method
        assert all(not box.contains(*xy) for m, xy in dots.items() if m != method), method


def test_gpu_panel_shows_gpu_memory(run_dir):
    """This machine has no GPU: the report is given the peak GPU memory a CUDA run records."""
    report = load_run(run_dir).report
    gpu_mb = {"reference": 310.0, "yunet": 355.0}
    report["peak_gpu_mb"] = report["method"].map(gpu_mb)
    gpu = plot_overview(report).get_axes()[5]
    assert "GPU" in gpu.get_title() and len(gpu.patches) == 2
    assert sorted(t.get_text().strip() for t in gpu.texts) == ["310 MB", "355 MB"]
    assert "no GPU memory used" in plot_overview(load_run(run_dir)).get_axes()[5].texts[0].get_text()


def test_method_colours_are_fixed_and_distinct():
    builtins = ["reference", "yunet", "mtcnn", "retinaface", "yolov5_face", "yolov8_face", "dlib", "dlib_cnn",
                "mediapipe", "mediapipe_simple", "rtmpose"]
    assert len({method_color(m) for m in builtins}) == len(builtins)
    assert method_color("my_plugin_detector") == method_color("my_plugin_detector")
    assert method_color("my_plugin_detector") not in {method_color(m) for m in builtins}


def test_roc_has_one_line_per_method_on_a_log_axis(run_dir):
    run = load_run(run_dir)
    fig = plot_roc(run)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert len(ax.get_lines()) == 2  # reference and yunet; the failed method has no scores
    # 50 different-person pairs: the axis starts at one false accept in 50
    assert ax.get_xlim()[0] == pytest.approx(1 / 50)
    assert len(plot_roc(run, ["yunet"]).axes[0].get_lines()) == 1


def test_gallery_redraws_the_runs_crops(run_dir):
    run = load_run(run_dir)
    images = pick_gallery_images(run, 4)
    fig = plot_gallery(run, images)
    axes = fig.get_axes()
    assert len(axes) == 4 * 2  # 4 images x (reference, yunet)
    assert [ax.get_title() for ax in axes[:2]] == ["reference", "yunet"]
    assert all(len(ax.get_images()) == 1 for ax in axes)  # every image found: a crop in every cell
    # the yunet cell is the crop aligned from the original with the landmarks in the per-image log
    log_row = run.image_log("yunet").set_index("image").loc[images[0]]
    expected = align_face(load_image(LFW_IMAGES / images[0]), log_row[LANDMARK_COLUMNS].to_numpy(float).reshape(5, 2))
    np.testing.assert_array_equal(axes[1].get_images()[0].get_array(), expected)
    np.testing.assert_array_equal(axes[0].get_images()[0].get_array(), load_image(ALIGNED_DIR / images[0]))


def test_image_log_landmarks_are_the_cached_ones(run_dir):
    """The per-image log carries each image's five landmarks as the runner found them (6 digits)."""
    log_ = load_run(run_dir).image_log("yunet")
    cached = ShardCache(next((run_dir / "cache").glob("yunet-*"))).load(len(log_))
    np.testing.assert_allclose(log_[LANDMARK_COLUMNS].to_numpy(float).reshape(-1, 5, 2), cached.landmarks,
                               rtol=1e-5)


def test_gallery_marks_failures(failing_run):
    run = load_run(failing_run)
    status = run.image_log("yunet").set_index("image")["status"]
    assert status["blank.png"] == "no_face_fallback" and status["broken.jpg"] == "unreadable"
    # up to half the rows show failures, first; the rest are spread over the other images
    assert pick_gallery_images(run, 4) == ["blank.png", "broken.jpg", "Aaron_Eckhart_0001.jpg", "Bill_Gates_0003.jpg"]
    fig = plot_gallery(run, ["Aaron_Eckhart_0001.jpg", "blank.png", "broken.jpg"])
    found, fallback, unreadable = fig.get_axes()
    assert len(found.get_images()) == 1 and not found.texts
    assert len(fallback.get_images()) == 1 and "no face" in fallback.texts[0].get_text()
    assert not unreadable.get_images() and unreadable.texts[0].get_text() == "unreadable"
    assert (failing_run / "gallery.png").is_file() and (failing_run / "roc.png").is_file()


def test_plot_command_redraws_a_run(run_dir, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    for file in [*CHART_FILES.values(), "summary.md"]:
        (copy / file).unlink()
    assert main(["plot", str(copy)]) == 0
    assert all(_is_png(copy / file) for file in CHART_FILES.values()) and (copy / "summary.md").is_file()
    assert main(["plot", str(tmp_path / "nothing")]) == 2
    assert "holds no report.csv" in capsys.readouterr().err
