"""``facebench leaderboard``: the ranking statistics against values worked by hand, the documents
against the run folders they are built from (real LFW runs), copies that give the same document,
and ``docs/RESULTS.md`` equal to what the command makes from ``docs/results``."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.leaderboard.board import detector_table, rankings, robustness_table
from benchmark.leaderboard.charts import pareto_front
from benchmark.leaderboard.evidence import Result, pack_decisions, read_evidence, strict_view, unpack_decisions
from benchmark.report.compare import compare_runs, holm, mcnemar
from tests.browser import browser  # noqa: F401  (the fixture)
from tests.conftest import LFW_DIR, REPO, WEIGHTS_DIR


def _result(detector: str, correct: np.ndarray, ms: float = 1.0) -> Result:
    return Result("lfw", "frontal", "edgeface_xs", "similarity", detector, float(correct.mean()), 0.0,
                  float(correct.mean()), 1.0, ms, 100.0, 0, correct)


def test_the_pareto_front_is_the_points_nothing_beats_on_both():
    # (ms, accuracy): b is slower and worse than a; d ties a's accuracy but is slower
    points = [(1.0, 99.0), (2.0, 98.0), (5.0, 99.5), (3.0, 99.0), (0.5, 90.0)]
    assert pareto_front(points) == [4, 0, 2]


def test_packed_decisions_round_trip():
    correct = np.random.default_rng(0).random(6001) > 0.3
    packed = pack_decisions(correct)
    assert len(packed) == 2 * 751 and np.array_equal(unpack_decisions(packed, 6001), correct)


def test_rankings_tie_and_beat_as_mcnemar_and_holm_say():
    n = 600
    best = np.ones(n, bool)
    close = best.copy()
    close[:3] = False  # 3 discordant pairs: exact binomial p = 0.25, not significant
    far = best.copy()
    far[:40] = False  # 40 discordant: p ~ 2e-9, significant after any correction
    (ranking,) = rankings([_result("far", far), _result("best", best), _result("close", close)])
    assert [r.detector for r in ranking.results] == ["best", "close", "far"]
    p_close, p_far = mcnemar(3, 0)[0], mcnemar(40, 0)[0]
    assert p_close == pytest.approx(0.25)
    assert ranking.tied == {"best": True, "close": holm([p_close, p_far])[0] >= 0.05, "far": False}
    assert ranking.tied["close"] is True
    # pairwise, Holm over the three pairs: close vs far has 37 discordant pairs, significant too
    assert ranking.beaten_by == {"best": [], "close": [], "far": ["best", "close"]}


def test_a_result_without_decisions_is_neither_tied_nor_beaten():
    best = np.ones(100, bool)
    unknown = _result("unknown", best)
    unknown.correct = None
    (ranking,) = rankings([_result("best", best), unknown])
    assert ranking.tied["unknown"] is None and ranking.beaten_by["unknown"] is None


def test_the_strict_view_takes_strict_figures_and_leaves_out_results_without_them():
    scored = np.ones(100, bool)
    strict = scored.copy()
    strict[:7] = False  # 7 pairs with a face not found
    new = _result("new", scored)
    new.strict_accuracy, new.strict_correct = 0.93, strict
    old = _result("old", scored)  # from before strict accuracy was recorded
    old.strict_accuracy, old.strict_correct = float("nan"), None
    (view,) = strict_view([old, new])
    assert view.detector == "new" and view.accuracy == 0.93 and view.correct is strict
    assert new.accuracy == 1.0  # the scored result is left as it was


@pytest.fixture(scope="module")
def two_detector_run(tmp_path_factory) -> Path:
    """A real 100-pair LFW run of YuNet and MediaPipe's simple detector."""
    out = tmp_path_factory.mktemp("board-run")
    assert main(["--methods", "yunet,mediapipe_simple", "--lfw-dir", str(LFW_DIR), "--weights-dir", str(WEIGHTS_DIR),
                 "--max-pairs", "100", "--device", "cpu", "--out", str(out), "--quiet"]) == 0
    return out


@pytest.mark.shared
def test_the_leaderboard_shows_the_runs_figures_and_their_test(two_detector_run, tmp_path):
    out = tmp_path / "board"
    assert main(["leaderboard", str(two_detector_run), "--out", str(out), "--quiet"]) == 0
    report = pd.read_csv(two_detector_run / "report.csv").set_index("method")
    markdown = (out / "leaderboard.md").read_text()
    for detector in ("yunet", "mediapipe_simple"):
        row = report.loc[detector]
        line = next(line for line in markdown.splitlines() if line.startswith(f"| {detector} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1:4] == [f"{100 * row['accuracy']:.2f}", f"{100 * row['accuracy_std']:.2f}",
                              f"{100 * row['strict_accuracy']:.2f}"]
    # tied: the paired test compare uses (one comparison: Holm leaves McNemar's p as it is)
    compared = compare_runs(f"{two_detector_run}:yunet", f"{two_detector_run}:mediapipe_simple").iloc[0]
    (ranking,) = rankings(read_evidence([two_detector_run]).results)
    second = ranking.results[1].detector
    assert ranking.tied[second] == (compared["p_value"] >= 0.05)
    page = (out / "leaderboard.html").read_text()
    assert "<script" in page and "data:image/png;base64," in page and "http" not in page.split("<body>")[1]


@pytest.mark.shared
def test_copies_give_the_same_document(two_detector_run, tmp_path):
    assert main(["leaderboard", str(two_detector_run), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert main(["leaderboard", str(two_detector_run), "--copy-to", str(tmp_path / "copies"), "--out",
                 str(tmp_path / "b"), "--quiet"]) == 0
    copy = tmp_path / "copies" / two_detector_run.name
    assert sorted(p.name for p in copy.iterdir()) == ["decisions.csv", "report.csv", "run.json"]
    assert sum(p.stat().st_size for p in copy.iterdir()) < 100_000

    def without_folders(path: Path) -> str:  # the provenance's folder links differ, nothing else may
        return "\n".join(line for line in path.read_text().splitlines() if not line.startswith("| 1 |"))

    assert without_folders(tmp_path / "a" / "leaderboard.md") == without_folders(tmp_path / "b" / "leaderboard.md")


@pytest.mark.shared
def test_results_over_other_pairs_are_kept_apart_not_ranked_together(two_detector_run):
    """A 100-pair run beside the recorded 6,000-pair LFW matrix: the same detector on the same data
    set over other pairs is another piece of evidence (named with its pair count), neither replacing
    the other nor ranked against results over other pairs."""
    evidence = read_evidence([REPO / "docs" / "results" / "lfw-matrix", two_detector_run])
    yunet = {r.evidence: r for r in evidence.results
             if r.detector == "yunet" and r.embedder == "edgeface_xs" and r.align == "similarity"}
    assert sorted(yunet) == ["lfw (100 pairs)", "lfw (6,000 pairs)"]
    assert [len(r.correct) for r in (yunet["lfw (100 pairs)"], yunet["lfw (6,000 pairs)"])] == [100, 6000]
    for ranking in rankings(evidence.results):
        assert len({len(r.correct) for r in ranking.results}) == 1, ranking.evidence
        assert None not in ranking.tied.values(), ranking.evidence


RESULTS = REPO / "docs" / "results"


@pytest.mark.skipif(not RESULTS.is_dir(), reason="docs/results holds no recorded runs yet")
def test_docs_results_is_what_the_command_makes_of_the_recorded_runs(tmp_path):
    """docs/RESULTS.md cannot drift from its runs: the command regenerates it unchanged."""
    runs = sorted(p for p in RESULTS.iterdir() if p.is_dir())
    copied = tmp_path / "docs"
    shutil.copytree(RESULTS, copied / "results")
    assert main(["leaderboard", *map(str, (copied / "results" / p.name for p in runs)), "--out", str(copied),
                 "--markdown-name", "RESULTS.md", "--quiet"]) == 0
    assert (copied / "RESULTS.md").read_text() == (REPO / "docs" / "RESULTS.md").read_text()


@pytest.mark.skipif(not RESULTS.is_dir(), reason="docs/results holds no recorded runs yet")
def test_the_copies_packed_decisions_are_the_runs_accuracy_and_strict_accuracy():
    """Every recorded row's per-pair decisions, as scored and strict, average to the accuracy and
    strict accuracy its run reported (the folds are of equal size, so the mean of the decisions
    is the mean of the folds' accuracies): e.g. dlib_cnn under downscale 5, 94.92% and 50.00%."""
    checked = 0
    for decisions in sorted(RESULTS.glob("*/decisions.csv")):
        report = pd.read_csv(decisions.parent / "report.csv").set_index("method")
        for _, row in pd.read_csv(decisions, dtype=str, keep_default_na=False).iterrows():
            n = int(row["n_pairs"])
            correct, strict = unpack_decisions(row["correct"], n), unpack_decisions(row["strict"], n)
            assert correct.mean() == pytest.approx(report.loc[row["row"], "accuracy"], abs=1e-6), row["row"]
            assert strict.mean() == pytest.approx(report.loc[row["row"], "strict_accuracy"], abs=1e-6), row["row"]
            checked += 1
    assert checked > 300
    report = pd.read_csv(RESULTS / "robustness-downscale" / "report.csv").set_index("method")
    assert report.loc["dlib_cnn@downscale-5", ["accuracy", "strict_accuracy"]].round(4).tolist() == [0.9492, 0.5]


@pytest.mark.skipif(not RESULTS.is_dir(), reason="docs/results holds no recorded runs yet")
def test_a_robust_mean_over_other_conditions_is_marked_not_comparable():
    """The recorded runs: nine detectors under the quick preset (18 conditions, 1,200 pairs) and
    dlib_cnn under two downscale conditions only; only dlib_cnn's robust mean carries the mark, and
    the robustness table says what each mean is over."""
    evidence = read_evidence(sorted(p for p in RESULTS.iterdir() if p.is_dir()))
    table = detector_table(evidence, "edgeface_xs", rankings(evidence.results))
    column = table.columns.index("robust mean %")
    means = {row[0].text: row[column].text for row in table.rows if row[column].text}
    assert len(means) == 10 and {d for d, text in means.items() if text.endswith(" §")} == {"dlib_cnn"}
    scopes = {(row[0].text, row[2].text, row[3].text) for row in robustness_table(evidence).rows}
    assert ("dlib_cnn", "2", "1,200") in scopes and ("yunet", "18", "1,200") in scopes


@pytest.mark.shared
def test_the_page_sorts_and_answers_in_a_real_browser(two_detector_run, tmp_path, browser):  # noqa: F811
    """Headless chromium opens the page: a click on a header sorts the rows by that column, a
    second click reverses them; a time budget between the two detectors' times leaves the faster
    one, marked as a choice."""
    from selenium.webdriver.common.by import By

    out = tmp_path / "board"
    assert main(["leaderboard", str(two_detector_run), "--out", str(out), "--quiet"]) == 0
    browser.get((out / "leaderboard.html").as_uri())
    table = browser.find_element(By.ID, "table-detectors-edgeface_xs")
    header = next(th for th in table.find_elements(By.TAG_NAME, "th") if th.text.startswith("ms / img"))
    column = [th.text for th in table.find_elements(By.TAG_NAME, "th")].index(header.text)

    def times() -> list[float]:
        return [float(row.find_elements(By.TAG_NAME, "td")[column].get_attribute("data-sort"))
                for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")]

    header.click()
    assert header.get_attribute("aria-sort") == "descending" and times() == sorted(times(), reverse=True)
    header.click()
    assert header.get_attribute("aria-sort") == "ascending" and times() == sorted(times())
    fast, slow = times()
    assert fast < slow
    budget = browser.find_element(By.ID, "q-budget")
    budget.send_keys(f"{(fast + slow) / 2:.3f}")
    answer = browser.find_elements(By.CSS_SELECTOR, "#q-result tbody tr")
    assert len(answer) == 1 and "pick" in answer[0].get_attribute("class")
    browser.save_screenshot(str(tmp_path / "leaderboard.png"))
    assert (tmp_path / "leaderboard.png").stat().st_size > 10_000


@pytest.mark.skipif(not RESULTS.is_dir(), reason="docs/results holds no recorded runs yet")
def test_the_question_answers_strictly_unless_told_otherwise(tmp_path, browser):  # noqa: F811
    """The recorded runs, low resolution: retinaface finds few faces downscaled to 0.12, and the
    fallback crop hides it. Strict (the default) shows its strict accuracy there and does not mark
    it; unticked, the protocol's accuracy, and it is a choice again."""
    from selenium.webdriver.common.by import By

    table = pd.read_csv(RESULTS / "robustness-quick" / "robustness.csv").set_index("row")
    scored, strict = table.loc["retinaface@downscale-5", ["accuracy", "strict_accuracy"]]
    assert strict < scored - 0.4  # 50.92% against 94.42%
    assert main(["leaderboard", *map(str, sorted(p for p in RESULTS.iterdir() if p.is_dir())), "--out",
                 str(tmp_path), "--quiet"]) == 0
    browser.get((tmp_path / "leaderboard.html").as_uri())
    for box in browser.find_elements(By.CSS_SELECTOR, "input.q-cat"):
        if (box.get_attribute("value") == "low resolution") != box.is_selected():
            box.click()

    def retinaface() -> tuple[bool, str]:
        row = browser.find_element(By.CSS_SELECTOR, '#q-result tr[data-detector="retinaface"]')
        header = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#q-result th")]
        cell = row.find_elements(By.TAG_NAME, "td")[header.index("robustness@downscale-5 acc %")]
        return "pick" in row.get_attribute("class"), cell.text.split()[0]

    assert browser.find_element(By.ID, "q-strict").is_selected()
    assert retinaface() == (False, f"{100 * strict:.2f}")
    browser.find_element(By.ID, "q-strict").click()
    assert retinaface() == (True, f"{100 * scored:.2f}")


@pytest.mark.skipif(not RESULTS.is_dir(), reason="docs/results holds no recorded runs yet")
def test_the_readmes_headline_figures_are_in_the_generated_results():
    """The README's headline table is pasted by hand: each of its figures must be one of
    docs/RESULTS.md's, so that it cannot drift from the recorded runs either."""
    readme = (REPO / "README.md").read_text()
    headline = readme[readme.index("## Results"):readme.index("## More")]
    table = "\n".join(line for line in headline.splitlines() if line.startswith("| EdgeFace") or
                      line.startswith("| dlib ResNet"))
    figures = set(re.findall(r"\d+\.\d\d", table)) | set(re.findall(r"\d+\.\d\d", headline.split("\n- ")[1]))
    assert len(figures) >= 15, figures
    results = (REPO / "docs" / "RESULTS.md").read_text()
    missing = sorted(f for f in figures if f"| {f} |" not in results and f" {f}" not in results)
    assert not missing, f"README figures not in docs/RESULTS.md: {missing}"
