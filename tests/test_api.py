"""The notebook API (``import benchmark``) on a real run: run_lfw, load_run, plot_*, compare_runs."""
import json
import re
import subprocess
import sys

import pandas as pd
import pytest
from matplotlib.figure import Figure

import benchmark
from benchmark.api import resolve_methods
from benchmark.report.files import COLUMNS
from face_alignment.errors import FaceBenchError
from tests.conftest import ALIGNED_DIR, LFW_DIR, REPO, SHARED, WEIGHTS_DIR

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def notebook_run(tmp_path_factory):
    """What a notebook does: one call, the report back as a DataFrame (100 pairs, YuNet + reference)."""
    out = tmp_path_factory.mktemp("nb")
    report = benchmark.run_lfw(["yunet"], lfw_dir=LFW_DIR, weights_dir=WEIGHTS_DIR, out=out, aligned_dir=ALIGNED_DIR,
                               device="cpu", max_pairs=100, progress=False, isolate=False)
    return out, report


def test_run_lfw_returns_the_report(notebook_run):
    out, report = notebook_run
    assert isinstance(report, pd.DataFrame)
    assert report["method"].tolist() == ["reference", "yunet"]
    assert list(report.columns[: len(COLUMNS)]) == COLUMNS
    # --max-pairs 100 keeps 5 same + 5 different pairs of each of the 10 folds
    assert report["n_pairs"].tolist() == [100, 100]
    # measured 0.99 for both (one pair of the 100 wrong); EdgeFace-XS is at 99.5% on all of LFW, and
    # a crop a few pixels off or a broken threshold lands below 0.97
    assert report["accuracy"].tolist() == pytest.approx([0.99, 0.99], abs=0.015) and (report["error"] == "").all()
    assert report["success_rate"].tolist() == [1.0, 1.0]
    assert report["flip"].dtype == bool and not report["flip"].any()
    for file in ("report.csv", "summary.md", "overview.png", "roc.png", "gallery.png", "run.json"):
        assert (out / file).is_file(), file


def test_load_run_gives_report_scores_and_logs(notebook_run):
    out, report = notebook_run
    run = benchmark.load_run(out)
    pd.testing.assert_frame_equal(run.report, report)
    assert run.methods == ["reference", "yunet"]
    scores = run.scores("yunet")
    assert len(scores.distances) == 100 and scores.same.sum() == 50
    log = run.image_log("yunet")
    assert len(log) == run.row("yunet")["n_images"] and set(log["status"]) <= {"found", "no_face_fallback"}
    assert run.info["image_root"].endswith("lfw-deepfunneled") and run.info["max_pairs"] == 100
    assert "yunet" in run._repr_html_()
    with pytest.raises(FaceBenchError, match="has no method 'mtcnn'; it has reference, yunet"):
        run.scores("mtcnn")


def test_plot_functions_return_figures(notebook_run):
    out, report = notebook_run
    run = benchmark.load_run(out)
    for fig in (benchmark.plot_overview(report), benchmark.plot_overview(out), benchmark.plot_roc(str(out)),
                benchmark.plot_gallery(run, n_images=3)):
        assert isinstance(fig, Figure)
    assert len(benchmark.plot_overview(report).get_axes()) == 6
    assert len(benchmark.plot_roc(run).axes[0].get_lines()) == 2
    assert len(benchmark.plot_gallery(run, n_images=3).get_axes()) == 3 * 2


def test_compare_runs_in_a_notebook(notebook_run):
    out, _ = notebook_run
    table = benchmark.compare_runs(f"{out}:reference", f"{out}:yunet")
    assert len(table) == 1 and table.loc[0, "method_b"] == "yunet"
    assert table.loc[0, "ci_low"] <= table.loc[0, "accuracy_diff"] <= table.loc[0, "ci_high"]


def test_clear_errors(tmp_path):
    with pytest.raises(FaceBenchError, match="unknown option.*flipp.*takes"):
        benchmark.run_lfw(["yunet"], lfw_dir=LFW_DIR, out=tmp_path, flipp=True)
    with pytest.raises(FaceBenchError, match="unknown method.*nope.*choose from"):
        benchmark.run_lfw("yunet,nope", lfw_dir=LFW_DIR, out=tmp_path)
    with pytest.raises(FaceBenchError, match="holds no report.csv"):
        benchmark.load_run(tmp_path)


def test_resolve_methods():
    assert resolve_methods(" yunet, mtcnn ") == ["yunet", "mtcnn"]
    assert resolve_methods(["retinaface"]) == ["retinaface"]
    ready = resolve_methods("all", WEIGHTS_DIR)
    assert "yunet" in ready and "mtcnn" in ready  # their weights are in ../shared/weights


def _readme_block(heading: str) -> str:
    """The first ```python block after ``heading`` in the README."""
    text = (REPO / "README.md").read_text()
    after = text[text.index(heading):]
    start = after.index("```python\n") + len("```python\n")
    return after[start:after.index("```", start)]


def test_the_readmes_notebook_code_runs_as_a_plain_script(tmp_path):
    """Pasted into a script with no ``if __name__ == "__main__":`` guard, the README's notebook code
    runs: each method's spawned process must not run the script again."""
    code = _readme_block("### The benchmark in a notebook")
    replacements = (('"../shared/', f'"{SHARED}/'), ('"results/nb', f'"{tmp_path}/nb'),
                    ("max_pairs=600", "max_pairs=40"))
    for old, new in replacements:
        assert old in code, old  # the README still reads as this test assumes
        code = code.replace(old, new)
    script = tmp_path / "readme_notebook.py"
    script.write_text(code + "\nprint(report.set_index('method')[['accuracy', 'success_rate', 'error']].to_json())\n")
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(rows["accuracy"]) == {"reference", "yunet", "mtcnn"}
    assert all(error == "" for error in rows["error"].values())
    # 40 pairs: real numbers, not the fallback's (every face is found on these LFW images)
    assert all(0.85 <= acc <= 1.0 for acc in rows["accuracy"].values()), rows
    assert rows["success_rate"]["yunet"] == 1.0 and rows["success_rate"]["mtcnn"] == 1.0
    # the image the README's gallery shows is one of the run's (else its cells say "not in this run")
    shown = re.search(r'plot_gallery\(run, images=\["([^"]+)"\]', code).group(1)
    assert shown in benchmark.load_run(tmp_path / "nb").image_log("yunet")["image"].tolist()
