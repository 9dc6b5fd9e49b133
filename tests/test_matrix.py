"""``facebench matrix``: a row per cell, detections made once per method, the cells' numbers those
of plain runs, and the ranking statistics (Holm, McNemar's tied group, Kendall's tau) checked
against values computed by hand."""
import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.report.compare import holm
from benchmark.report.files import load_run, read_frame
from benchmark.report.matrix import rank_agreement
from benchmark.run import matrix
from tests.shared_runs import METRICS, RUN_ARGS, report_row, uninterrupted_run

CELLS = ["yunet+edgeface_xs+similarity", "yunet+edgeface_xs+box", "yunet+edgeface_xxs+similarity",
         "yunet+edgeface_xxs+box"]


def test_holm_adjusts_as_the_step_down_rule_says():
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1 = 0.03, 0.06, 0.04; made non-decreasing: 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0]) and holm([]) == []


def test_kendalls_tau_of_two_rankings():
    table = pd.DataFrame({"detector": list("abcd") * 2, "embedder": ["x"] * 4 + ["y"] * 4, "align": "similarity",
                          "accuracy": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]})
    (row,) = rank_agreement(table).to_dict("records")
    assert (row["embedder_a"], row["embedder_b"], row["n_detectors"], row["tau"]) == ("x", "y", 4, 1.0)
    table.loc[table["embedder"] == "y", "accuracy"] = [0.2, 0.3, 0.4, 0.5]  # reversed order
    assert rank_agreement(table)["tau"].iloc[0] == pytest.approx(-1.0)


@pytest.mark.shared
def test_a_matrix_run_has_a_row_per_cell_and_detects_once(tmp_path, capsys):
    out = tmp_path / "matrix"
    code = main(["matrix", *RUN_ARGS, "--embedders", "edgeface_xs,edgeface_xxs", "--aligns", "similarity,box",
                 "--out", str(out), "--quiet"])
    assert code == 0
    run = load_run(out)
    report = run.report.set_index("method")
    assert list(report.index) == CELLS  # (no --aligned-dir: no reference rows)
    assert report.loc["yunet+edgeface_xxs+box", ["detector", "embedder", "align"]].tolist() == \
        ["yunet", "edgeface_xxs", "box"]
    n_images = int(report["n_images"].iloc[0])
    assert report.loc[CELLS, "detections_reused"].tolist() == [0, n_images, n_images, n_images]  # detected once
    # the default cell is the plain run over the same pairs, to every printed digit
    plain = report_row(uninterrupted_run())
    cell = report_row(out, "yunet+edgeface_xs+similarity")
    assert {m: cell[m] for m in METRICS} == {m: plain[m] for m in METRICS}
    # the box crop (no rotation, no landmarks) loses to the 5-point similarity, as the issue measured
    for embedder in ("edgeface_xs", "edgeface_xxs"):
        assert report.loc[f"yunet+{embedder}+box", "accuracy"] < report.loc[f"yunet+{embedder}+similarity", "accuracy"]
    wide = pd.read_csv(out / "matrix.csv")
    assert wide["accuracy:edgeface_xxs:box"].iloc[0] == pytest.approx(report.loc["yunet+edgeface_xxs+box", "accuracy"])
    ranking = read_frame(out / "matrix_ranking.csv", ("embedder", "align", "detector"), ("rank",))
    assert len(ranking) == 4 and ranking["tied_with_best"].all()  # one detector: it is the best
    for name in ("matrix.md", "matrix_align-box.png", "matrix_embedder-edgeface_xxs.png"):
        assert (out / name).stat().st_size > 500, name
    capsys.readouterr()
    assert main(["compare", f"{out}:yunet+edgeface_xs+similarity", f"{out}:yunet+edgeface_xs+box", "--quiet"]) in (0, 1)
    table = capsys.readouterr().out
    assert "yunet+edgeface_xs+box" in table and "strict" in table


def test_an_unknown_alignment_mode_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        main(["matrix", "--aligns", "similarity,tilt"])
    assert "similarity, eyes, affine, roll, box" in capsys.readouterr().err


@pytest.mark.shared
def test_a_second_matrix_run_reads_everything_from_the_cache(tmp_path, monkeypatch):
    args = ["matrix", "--methods", "yunet", "--lfw-dir", str(RUN_ARGS[3]), "--weights-dir", str(RUN_ARGS[5]),
            "--max-pairs", "20", "--device", "cpu", "--embedders", "edgeface_xs", "--aligns", "eyes,affine",
            "--out", str(tmp_path), "--quiet"]
    assert main(args) == 0
    first = load_run(tmp_path).report.set_index("method")

    def refuse(*args, **kwargs):
        raise AssertionError("a matrix over complete caches started a method's process")

    monkeypatch.setattr(matrix, "run_isolated", refuse)
    assert main(args) == 0
    again = load_run(tmp_path).report.set_index("method")
    assert np.array_equal(first["accuracy"], again["accuracy"]) and np.array_equal(first["wall_s"], again["wall_s"])


@pytest.mark.shared
def test_a_matrix_run_without_resume_still_detects_once(tmp_path):
    """--no-resume recomputes every cell, but a method's later cells align from the detections its
    first cell has just made, as a resumed run's do."""
    args = ["matrix", "--methods", "yunet", "--lfw-dir", str(RUN_ARGS[3]), "--weights-dir", str(RUN_ARGS[5]),
            "--max-pairs", "20", "--device", "cpu", "--embedders", "edgeface_xs,edgeface_xxs", "--aligns", "eyes",
            "--out", str(tmp_path), "--quiet", "--no-resume"]
    for _ in range(2):  # the second run, over complete caches, detects again once
        assert main(args) == 0
        report = load_run(tmp_path).report
        assert report["detections_reused"].tolist() == [0, report["n_images"].iloc[0]]


@pytest.mark.shared
def test_the_notebook_api_runs_a_matrix(tmp_path):
    import benchmark

    report = benchmark.run_matrix("yunet", embedders=["edgeface_xxs"], aligns=["eyes", "roll"], lfw_dir=RUN_ARGS[3],
                                  weights_dir=RUN_ARGS[5], out=tmp_path, max_pairs=20, device="cpu", progress=False)
    assert list(report["method"]) == ["yunet+edgeface_xxs+eyes", "yunet+edgeface_xxs+roll"]
    assert (report["error"] == "").all() and report["accuracy"].between(0.5, 1.0).all()


def test_a_cell_is_drawn_in_its_detectors_colour():
    from benchmark.report.plots import method_color

    assert method_color("yunet+edgeface_xxs+box") == method_color("yunet") != method_color("mtcnn+edgeface_xs+eyes")
