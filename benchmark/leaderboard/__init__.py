"""``facebench leaderboard``: one page for the answer, from any mix of run folders.

:func:`write_leaderboard` reads the folders (:mod:`.evidence`), ranks the detectors per data set,
embedder and alignment with the paired test ``compare`` uses (:mod:`.board`), draws the charts
(:mod:`.charts`) and writes ``leaderboard.md`` (:mod:`.markdown`) and a self-contained
``leaderboard.html`` (:mod:`.page`). :func:`~.copies.copy_runs` keeps a run folder's small files
(its CSVs, run.json, the per-pair decisions packed) for a document that must not drift from its runs.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..report.files import write_text
from .board import (
    MAIN_ALIGN,
    agreement_table,
    alignment_table,
    datasets,
    detector_table,
    embedders,
    landmarks_table,
    provenance_table,
    rankings,
    robustness_table,
    tied_groups_table,
)
from .charts import save_charts
from .evidence import Evidence, read_evidence, relative, strict_view
from .markdown import leaderboard_markdown
from .page import category_order, leaderboard_html, question_data

__all__ = ["write_leaderboard"]

TITLE = "Face alignment leaderboard"
MARKDOWN_FILE, HTML_FILE = "leaderboard.md", "leaderboard.html"


def write_leaderboard(folders, out: str | os.PathLike, markdown_name: str = MARKDOWN_FILE) -> list[Path]:
    """``leaderboard.md`` (named ``markdown_name``), ``leaderboard.html`` and their charts in
    ``out``, from the run folders (or copies) ``folders``; returns the two documents."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    evidence = read_evidence(folders)
    ranks = rankings(evidence.results)
    link = lambda folder: relative(folder, out)  # noqa: E731 - the folders as the documents in out reach them
    tables = [detector_table(evidence, e, ranks) for e in embedders(evidence)]
    tables += [t for t in (tied_groups_table(ranks), agreement_table(evidence, ranks), alignment_table(evidence),
                           robustness_table(evidence), landmarks_table(evidence)) if t is not None and t.rows]
    tables.append(provenance_table(evidence, link))
    charts = save_charts(evidence, out)
    intro = (f"Built by `facebench leaderboard` from {len(evidence.provenance)} run folders (Provenance, at the end); "
             f"each data set's figures are over its full protocol unless its folder says otherwise. Accuracy is the "
             f"10-fold verification accuracy; strict accuracy decides every pair with a face not found "
             f"\"different\" (no face, no match).")
    markdown = out / markdown_name
    write_text(markdown, leaderboard_markdown(TITLE, intro, tables, charts, out))
    page = out / HTML_FILE
    data = question_data([k for k in ranks if k.align == MAIN_ALIGN],
                         [k for k in rankings(strict_view(evidence.results)) if k.align == MAIN_ALIGN],
                         _times(evidence), {r.evidence: r.category for r in evidence.results})
    write_text(page, leaderboard_html(TITLE, intro.replace("`", ""), tables, charts, data, embedders(evidence),
                                      category_order(r.category for r in evidence.results if r.category != "clean"),
                                      _galleries(evidence, out)))
    return [markdown, page]


def _times(evidence: Evidence) -> dict[str, dict[str, float]]:
    """Per embedder, each detector's time per image on the first data set (alignment similarity)."""
    sets = datasets(evidence)
    times: dict[str, dict[str, float]] = {}
    for data in reversed(sets):  # the first data set's time wins
        for r in evidence.results:
            if r.evidence == data and r.align == MAIN_ALIGN:
                times.setdefault(r.embedder, {})[r.detector] = r.ms_per_image
    return times


def _galleries(evidence: Evidence, out: Path) -> dict[str, list[str]]:
    """Per detector, the galleries (relative to ``out``) of the runs that hold its crops."""
    galleries: dict[str, list[str]] = {}
    for r in evidence.results:
        folder = Path(evidence.provenance[r.run].folder)
        for name in ("gallery.png", "robustness_gallery.png"):
            if (folder / name).is_file():
                link = relative(folder / name, out)
                if link not in galleries.setdefault(r.detector, []):
                    galleries[r.detector].append(link)
    return galleries
