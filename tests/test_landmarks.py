"""Landmark accuracy against the CUHK 5-point labels: the label reader, the metrics on hand-made
cases with known answers, a real detector on real labelled faces, and ``run_landmarks`` end to end.

The data-free tests run anywhere; those marked ``shared`` read ../shared/data/landmarks and the
YuNet weights."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.protocol.landmarks import (
    METRIC_COLUMNS,
    ced,
    ced_area,
    face_frame_errors,
    failure_rate,
    interocular_distance,
    labelled_face_picker,
    landmark_metrics,
    mean_offset,
    nme,
    parse_label_line,
    pick_labelled_face,
    point_errors,
    read_labels,
    remove_offset,
)
from face_alignment import Face, load_image
from face_alignment.errors import DatasetError
from face_alignment.selection import refine_targets
from tests.conftest import SHARED, WEIGHTS_DIR, pip_install_plugin, use_plugins_from

LANDMARKS_DIR = SHARED / "data" / "landmarks"
TEST_LIST = LANDMARKS_DIR / "testImageList.txt"

#: a frontal face: eyes 50 px apart on a horizontal line
FACE = np.array([[100.0, 100.0], [150.0, 100.0], [125.0, 125.0], [105.0, 150.0], [145.0, 150.0]])


def _rotated(points: np.ndarray, degrees: float, scale: float, shift) -> np.ndarray:
    angle = math.radians(degrees)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return points @ rotation.T * scale + np.asarray(shift, dtype=np.float64)


# --- the label file -----------------------------------------------------------------------------


def test_parse_line_reads_interleaved_points_and_box_order():
    face = parse_label_line(r"net_7876\1016_0_0.jpg 104 292 100 288 151.000000 151.000000 242.000000 143.000000 "
                            "189.000000 204.000000 173.000000 247.000000 248.000000 242.000000\r\n", "x.txt", 7)
    assert face.image == "net_7876/1016_0_0.jpg" and face.line == 7
    np.testing.assert_array_equal(face.box, [104, 100, 292, 288])  # x1 y1 x2 y2 from left right top bottom
    np.testing.assert_array_equal(face.points[:2], [[151, 151], [242, 143]])
    np.testing.assert_array_equal(face.points[4], [248, 242])
    np.testing.assert_array_equal(face.box_centre, [198, 194])


@pytest.mark.parametrize("line, says", [
    ("a.jpg 1 2 3 4 5", r"\(15 fields\), found 6"),
    ("a.jpg 1 9 1 9 1 1 2 2 3 3 4 4 5 five", "not a number"),
    ("a.jpg 1 9 1 9 1 1 2 2 3 3 4 4 5 nan", "not finite"),
    ("a.jpg 9 1 1 9 1 1 2 2 3 3 4 4 5 5", "empty face box"),
    ("a.jpg 1 9 1 9 2 2 2 2 3 3 4 4 5 5", "both eyes at the same point"),
])
def test_malformed_line_names_file_and_line(tmp_path, line, says):
    (tmp_path / "a.jpg").write_bytes(b"")
    labels = tmp_path / "list.txt"
    labels.write_text("a.jpg 1 9 1 9 1 1 2 2 3 3 4 4 5 5\r\n\r\n" + line + "\r\n")
    with pytest.raises(DatasetError, match=rf"list\.txt, line 3: .*{says}"):
        read_labels(labels, tmp_path)


def test_reader_skips_and_counts_absent_images(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "here.jpg").write_bytes(b"")
    labels = tmp_path / "list.txt"
    labels.write_text("sub\\here.jpg 1 9 1 9 1 1 2 2 3 3 4 4 5 5\r\nsub\\gone.jpg 1 9 1 9 1 1 2 2 3 3 4 4 5 5\r\n")
    found = read_labels(labels)  # paths relative to the label file's folder by default
    assert [f.image for f in found.faces] == ["sub/here.jpg"]
    assert (found.n_lines, found.n_skipped, len(found)) == (2, 1, 1)
    assert found.points.shape == (1, 5, 2)
    with pytest.raises(DatasetError, match="label file not found"):
        read_labels(tmp_path / "nope.txt")
    with pytest.raises(DatasetError, match="images folder not found"):
        read_labels(labels, tmp_path / "nope")


@pytest.mark.shared
def test_reader_on_the_cuhk_test_list():
    """The README's counts: 3,466 lines, 450 with an image here (the rest skipped), points in the
    documented order (left eye then right eye, both eyes above both mouth corners)."""
    labels = read_labels(TEST_LIST)
    assert labels.n_lines == 3466
    assert len(labels) == 450
    assert labels.n_skipped == 3016
    assert all(f.image.startswith("net_7876/") and "\\" not in f.image for f in labels.faces)
    points = labels.points
    assert np.all(points[:, 0, 0] < points[:, 1, 0])  # left eye x < right eye x
    assert np.all(points[:, 3, 0] < points[:, 4, 0])  # mouth corners left then right
    assert np.all(points[:, :2, 1].max(axis=1) < points[:, 3:, 1].min(axis=1))
    boxes = np.stack([f.box for f in labels.faces])
    assert np.all((points[..., 0] >= boxes[:, None, 0]) & (points[..., 0] <= boxes[:, None, 2]))
    assert np.all((points[..., 1] >= boxes[:, None, 1]) & (points[..., 1] <= boxes[:, None, 3]))


# --- metrics on cases with a known answer -------------------------------------------------------


def test_nme_of_a_3_4_offset_with_eyes_50_apart_is_0_1():
    labels = FACE[None]
    pred = labels + [3.0, 4.0]  # every point 5 px off, IOD 50
    assert interocular_distance(labels)[0] == 50.0
    np.testing.assert_allclose(point_errors(pred, labels), [[0.1] * 5])
    assert nme(pred, labels)[0] == pytest.approx(0.1, abs=1e-12)


def test_nme_is_scale_and_rotation_invariant_and_a_miss_is_infinite():
    base_pred = FACE + [[3, 4], [0, 0], [-5, 0], [0, 2], [1, 1]]
    labels = np.stack([FACE, _rotated(FACE, 30, 2.5, (40, -7))])
    pred = np.stack([base_pred, _rotated(base_pred, 30, 2.5, (40, -7))])
    values = nme(pred, labels)
    assert values[0] == pytest.approx(values[1])
    assert values[0] == pytest.approx((5 + 0 + 5 + 2 + math.sqrt(2)) / 5 / 50)
    missed = np.full((1, 5, 2), np.nan)
    assert np.isinf(nme(missed, FACE[None]))[0]


def test_swapped_eyes_give_a_huge_nme():
    swapped = FACE[[1, 0, 2, 4, 3]][None]
    assert nme(swapped, FACE[None])[0] > 0.5


def test_a_constant_face_frame_offset_is_removed_exactly():
    """The same per-point offset, in face units, on faces of other sizes and rolls: the offset
    removal takes the NME to 0, and the offset found is the one put in."""
    offset = np.array([[0.02, -0.05], [-0.03, 0.04], [0.0, 0.1], [0.05, 0.0], [-0.01, -0.02]])
    frontal_pred = FACE + offset * 50.0  # face frame = image frame for the frontal face, IOD 50
    transforms = [(0, 1.0, (0, 0)), (25, 2.0, (10, 30)), (-40, 0.7, (-5, 60)), (90, 1.3, (200, 0))]
    labels = np.stack([_rotated(FACE, *t) for t in transforms])
    pred = np.stack([_rotated(frontal_pred, *t) for t in transforms])
    np.testing.assert_allclose(face_frame_errors(pred, labels), np.broadcast_to(offset, (4, 5, 2)), atol=1e-12)
    np.testing.assert_allclose(mean_offset(pred, labels), offset, atol=1e-12)
    assert np.all(nme(pred, labels) > 0.03)
    np.testing.assert_allclose(nme(remove_offset(pred, labels, offset), labels), 0.0, atol=1e-12)
    scores = landmark_metrics(pred, labels)
    assert scores.metrics["nme_mean_offset_removed"] == pytest.approx(0.0, abs=1e-12)
    assert scores.metrics["nme_mean"] == pytest.approx(float(nme(pred, labels)[0]))
    assert scores.metrics["offset_nose_y"] == pytest.approx(0.1)


def test_ced_area_and_failure_rates():
    assert ced_area(np.zeros(7)) == 1.0  # perfect
    assert ced_area(np.full(7, np.inf)) == 0.0  # every face missed
    assert ced_area(np.array([0.05])) == pytest.approx(0.5)  # the CED is 1 from 0.05 to 0.10
    assert ced_area(np.array([0.0, np.inf])) == pytest.approx(0.5)
    assert ced_area(np.array([0.2, 0.1])) == 0.0
    nmes = np.array([0.05, 0.10, 0.15, 0.25, np.inf])
    assert failure_rate(nmes, 0.10) == pytest.approx(3 / 5)  # 0.10 itself is not a failure
    assert failure_rate(nmes, 0.20) == pytest.approx(2 / 5)
    np.testing.assert_allclose(ced(nmes, [0.0, 0.05, 0.1, 0.3, 1e9]), [0, 0.2, 0.4, 0.8, 0.8])


def test_metrics_count_misses_in_rates_but_not_in_mean():
    labels = np.stack([FACE] * 4)
    pred = labels + np.array([3.0, 4.0])  # NME 0.1 each
    pred[1] += [30.0, 40.0]  # this one: every point 55 px off, NME 1.1
    pred[3] = np.nan  # missed
    metrics = landmark_metrics(pred, labels).metrics
    assert list(metrics) == METRIC_COLUMNS
    assert metrics["n_faces"] == 4 and metrics["n_found"] == 3
    assert metrics["miss_rate"] == pytest.approx(0.25)
    assert metrics["nme_mean"] == pytest.approx((0.1 + 1.1 + 0.1) / 3)
    assert metrics["nme_median"] == pytest.approx(0.1)
    assert metrics["failure_0.10"] == pytest.approx(0.5)  # 1.1 and the miss
    assert metrics["failure_0.20"] == pytest.approx(0.5)
    assert metrics["err_left_eye"] == pytest.approx((0.1 + 1.1 + 0.1) / 3)
    assert metrics["offset_left_eye_x"] == pytest.approx((0.06 + 0.66 + 0.06) / 3)
    assert metrics["auc_0.10"] == 0.0


def test_pick_labelled_face_prefers_a_box_containing_the_label_centre():
    def face(x1, y1, x2, y2):
        return Face(np.array([x1, y1, x2, y2]), 0.9, np.zeros((5, 2)))

    centre = np.array([150.0, 150.0])  # of the labels' box
    big_off_centre = face(0, 0, 270, 270)  # contains it, centre 21 px away
    small_near = face(130, 165, 170, 205)  # centre (150, 185): nearer, but does not contain it
    exact = face(120, 120, 180, 180)
    assert pick_labelled_face([small_near, big_off_centre], centre) is big_off_centre
    assert pick_labelled_face([big_off_centre, exact, small_near], centre) is exact
    assert pick_labelled_face([small_near, face(400, 400, 450, 450)], centre) is small_near
    assert pick_labelled_face([], centre) is None


# --- a real detector on real labels --------------------------------------------------------------


def _spread(labels, n: int = 20):
    """``n`` faces spread over the list (both image sizes: 400x400 first, then 160x216)."""
    return [labels.faces[i] for i in np.linspace(0, len(labels) - 1, n).astype(int)]


@pytest.mark.shared
def test_yunet_points_match_the_labels(yunet):
    """YuNet on 20 labelled faces. The issue's independent measurement on all 450: mean NME
    0.094, median 0.087; on these 20 we measured a mean of 0.090 and a worst face of 0.138. The
    bounds (mean in 0.05..0.13, every face below 0.25) leave room for another YuNet build, and
    fail what a bug would give: swapped eyes or mouth corners give 0.46-0.78, x and y read the
    other way round 0.72, a normaliser twice too small 0.18, the box diagonal instead of the IOD
    0.028."""
    faces = _spread(read_labels(TEST_LIST))
    pred = []
    for face in faces:
        image = load_image(LANDMARKS_DIR / face.image)
        target = refine_targets(yunet, [image], yunet.detect([image]), pick=labelled_face_picker(face))[0]
        assert target is not None, face.image
        pred.append(target.landmarks)
    values = nme(np.array(pred), np.stack([f.points for f in faces]))
    assert 0.05 < values.mean() < 0.13, values
    assert values.max() < 0.25, values


@pytest.mark.shared
def test_run_landmarks_end_to_end(tmp_path, monkeypatch):
    """20 labelled images plus 3 lines without an image; yunet, and the real plug-in detector
    ``raise_always`` of tests/crash_plugin, whose every detection raises (an error row; the run
    goes on)."""
    from benchmark.report.landmarks import SUMMARY_COLUMNS, read_image_table, read_summary
    from benchmark.run import landmarks as run_module

    site = pip_install_plugin(Path(__file__).parent / "crash_plugin", tmp_path / "plugin")
    use_plugins_from(site, monkeypatch)

    lines = [line for line in TEST_LIST.read_text().splitlines() if line.strip()]
    chosen = {f.line for f in _spread(read_labels(TEST_LIST))}
    subset = lines[:3] + [lines[i - 1] for i in sorted(chosen)]  # the first 3 are lfw_5590 (no image)
    labels = tmp_path / "labels.txt"
    labels.write_text("\r\n".join(subset) + "\r\n")

    out = tmp_path / "out"
    summary = run_module.run_landmarks(["yunet", "raise_always"], labels, LANDMARKS_DIR, out, weights_dir=WEIGHTS_DIR,
                                       progress=False)

    assert (out / "landmarks.csv").is_file() and (out / "landmarks_ced.png").stat().st_size > 10_000
    assert (out / "landmarks" / "yunet.csv").is_file() and not (out / "landmarks" / "raise_always.csv").exists()
    assert list(summary.columns) == SUMMARY_COLUMNS
    written = read_summary(out / "landmarks.csv")
    pd.testing.assert_frame_equal(written, summary, check_exact=False, rtol=1e-5)
    yunet, broken = summary.iloc[0], summary.iloc[1]
    assert broken["method"] == "raise_always" and "raised on all of the first 10 images" in broken["error"]
    assert "backend exploded" in broken["error"]
    assert yunet["error"] == "" and yunet["normaliser"] == "interocular"
    assert (yunet["n_faces"], yunet["n_label_lines"], yunet["n_skipped_lines"]) == (20, 23, 3)

    table = read_image_table(out / "landmarks" / "yunet.csv")
    assert len(table) == 20 and set(table["status"]) <= {"found", "missed", "error"}
    assert table["image"].tolist() == [f.image for f in _spread(read_labels(TEST_LIST))]
    found = table[table["status"] == "found"]
    assert yunet["n_found"] == len(found) and yunet["miss_rate"] == pytest.approx(1 - len(found) / 20)
    assert yunet["nme_mean"] == pytest.approx(found["nme"].mean(), rel=1e-5)
    assert yunet["nme_median"] == pytest.approx(found["nme"].median(), rel=1e-5)
    assert yunet["failure_0.10"] == pytest.approx(np.mean(table["nme"] > 0.10))
    assert yunet["auc_0.10"] == pytest.approx(ced_area(table["nme"].to_numpy()), rel=1e-4)
    assert yunet["nme_mean_offset_removed"] == pytest.approx(found["nme_offset_removed"].mean(), rel=1e-5)
    assert 0.05 < yunet["nme_mean"] < 0.13
    labelled = np.stack([f.points for f in _spread(read_labels(TEST_LIST))])
    points = found.filter(regex="_(x|y)$").to_numpy().reshape(-1, 5, 2)
    np.testing.assert_allclose(nme(points, labelled[found.index]), found["nme"], rtol=1e-4)
    assert yunet["detect_ms_median"] > 0


@pytest.mark.shared
def test_landmarks_command(tmp_path, capsys):
    from benchmark.cli import main

    lines = [line for line in TEST_LIST.read_text().splitlines() if line.strip()]
    labels = tmp_path / "labels.txt"
    labels.write_text("\r\n".join(lines[i - 1] for i in sorted(f.line for f in _spread(read_labels(TEST_LIST)))))
    code = main(["landmarks", "--labels", str(labels), "--images", str(LANDMARKS_DIR), "--methods", "yunet",
                 "--weights-dir", str(WEIGHTS_DIR), "--out", str(tmp_path / "out"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and (tmp_path / "out" / "landmarks.csv").is_file()
    row = next(line.split() for line in out.splitlines() if line.split()[:1] == ["yunet"])
    assert row[1] == "20" and 0.05 < float(row[3]) < 0.13  # faces found, mean NME (see the bound above)
