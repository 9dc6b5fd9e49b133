"""The leaderboard's figures: per (evidence, embedder, alignment) the detectors ranked with the
paired test ``facebench compare`` uses (McNemar on the pairs' decisions, Holm-corrected), and the
tables a person reads, as :class:`Table` (cells with their text and the value they sort by), which
the Markdown and HTML writers render alike."""
from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..report.compare import ALPHA, decisions_p, holm
from ..report.matrix import rank_agreement
from .evidence import ROBUSTNESS, Evidence, Result

#: the alignment the main tables show (the others: the alignment table)
MAIN_ALIGN = "similarity"
#: data sets in the order their columns appear
DATASET_ORDER = ("lfw", "cfp-fp", "cfp-ff")
DATASET_NAMES = {"lfw": "LFW", "cfp-fp": "CFP-FP", "cfp-ff": "CFP-FF"}


@dataclass
class Ranking:
    """The detectors of one (evidence, embedder, alignment), best first: whether each is tied with
    the best (not significantly below it) and which detectors beat it significantly (pairwise,
    Holm over the group's pairs; None where a result has no per-pair decisions)."""

    evidence: str
    embedder: str
    align: str
    results: list[Result]
    tied: dict[str, bool | None] = field(default_factory=dict)
    beaten_by: dict[str, list[str] | None] = field(default_factory=dict)


def rankings(results: list[Result], alpha: float = ALPHA) -> list[Ranking]:
    """A :class:`Ranking` per (evidence, embedder, alignment) of ``results``."""
    groups: dict[tuple[str, str, str], list[Result]] = {}
    for result in results:
        groups.setdefault((result.evidence, result.embedder, result.align), []).append(result)
    out = []
    for (evidence, embedder, align), members in groups.items():
        members = sorted(members, key=lambda r: (-r.accuracy, r.detector))
        ranking = Ranking(evidence, embedder, align, members)
        n_pairs = next((len(r.correct) for r in members if r.correct is not None), 0)
        decided = [r for r in members if r.correct is not None and len(r.correct) == n_pairs]
        best = members[0]
        vs_best = [r for r in decided if r is not best] if best in decided else []
        adjusted = holm([decisions_p(best.correct, r.correct) for r in vs_best]) if vs_best else []
        ranking.tied = {r.detector: None for r in members}
        if best in decided:
            ranking.tied[best.detector] = True
            ranking.tied.update({r.detector: p >= alpha for r, p in zip(vs_best, adjusted, strict=True)})
        pairs = list(itertools.combinations(decided, 2))
        adjusted_pairs = holm([decisions_p(a.correct, b.correct) for a, b in pairs]) if pairs else []
        ranking.beaten_by = {r.detector: ([] if r in decided else None) for r in members}
        for (a, b), p in zip(pairs, adjusted_pairs, strict=True):
            if p < alpha and a.accuracy != b.accuracy:
                winner, loser = (a, b) if a.accuracy > b.accuracy else (b, a)
                ranking.beaten_by[loser.detector].append(winner.detector)
        out.append(ranking)
    return out


@dataclass
class Cell:
    text: str
    sort: float | str | None = None  # what the column sorts by (None: the text)


@dataclass
class Table:
    """A titled table: ``columns`` headers, ``rows`` of cells; ``detector_column`` holds the
    detector names the page links; ``anchor`` names the table in the page."""

    title: str
    anchor: str
    columns: list[str]
    rows: list[list[Cell]]
    note: str = ""
    detector_column: int | None = 0


def pct(value: float, digits: int = 2) -> Cell:
    return Cell("" if _missing(value) else f"{100 * value:.{digits}f}", None if _missing(value) else float(value))


def num(value: float, digits: int = 1) -> Cell:
    return Cell("" if _missing(value) else f"{value:,.{digits}f}", None if _missing(value) else float(value))


def text(value) -> Cell:
    """A text cell; empty for a missing value (NaN in a table read back)."""
    return Cell("" if _missing(value) else str(value))


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def datasets(evidence: Evidence) -> list[str]:
    """The data sets the results cover, in :data:`DATASET_ORDER` (others after, as found)."""
    found = list(dict.fromkeys(r.evidence for r in evidence.results if not r.evidence.startswith(ROBUSTNESS)))
    return sorted(found, key=lambda d: (DATASET_ORDER.index(d) if d in DATASET_ORDER else len(DATASET_ORDER), d))


def embedders(evidence: Evidence) -> list[str]:
    return list(dict.fromkeys(r.embedder for r in evidence.results))


def timing_runs(evidence: Evidence, results: list[Result]) -> set[int]:
    """The runs of ``results`` whose times are not comparable with the majority's (another
    machine or commit): their times are marked."""
    keys = Counter(evidence.provenance[r.run].timing_key for r in results)
    if not keys:
        return set()
    majority = keys.most_common(1)[0][0]
    return {r.run for r in results if evidence.provenance[r.run].timing_key != majority}


def detector_table(evidence: Evidence, embedder: str, ranks: list[Ranking]) -> Table:
    """An embedder's detectors (alignment :data:`MAIN_ALIGN`): per data set accuracy, its fold
    std, strict accuracy and whether it is tied with the best; success rate, landmark NME,
    robustness mean (and strict) and worst condition, time per image and peak memory."""
    sets = datasets(evidence)
    by = {(r.evidence, r.detector): r for r in evidence.results if r.embedder == embedder and r.align == MAIN_ALIGN}
    tied = {(k.evidence, d): t for k in ranks if k.embedder == embedder and k.align == MAIN_ALIGN
            for d, t in k.tied.items()}
    detectors = sorted({d for _, d in by}, key=lambda d: (-max((by[(s, d)].accuracy for s in sets if (s, d) in by),
                                                              default=0.0), d))
    nme = _landmark_nme(evidence)
    robust = _robustness_summary(evidence, embedder)
    scope = Counter(s["scope"] for s in robust.values()).most_common(1)[0][0] if robust else None
    timed = [by[(sets[0], d)] for d in detectors if sets and (sets[0], d) in by]
    odd_runs = timing_runs(evidence, timed)
    columns = ["detector"]
    for s in sets:
        name = DATASET_NAMES.get(s, s)
        columns += [f"{name} acc %", f"{name} ± std", f"{name} strict %", f"{name} tied"]
    columns += ["success %", "NME %", "robust mean %", "robust strict %", "worst condition", "worst %", "ms / img",
                "RSS MB"]
    rows = []
    for d in detectors:
        row = [Cell(d)]
        for s in sets:
            r = by.get((s, d))
            mark = tied.get((s, d))
            row += [pct(r.accuracy if r else None), pct(r.accuracy_std if r else None),
                    pct(r.strict_accuracy if r else None),
                    Cell({True: "tied", False: "", None: "?"}[mark] if r else "", {True: 1, False: 0}.get(mark))]
        first = next((by[(s, d)] for s in sets if (s, d) in by), None)
        summary = robust.get(d, {})
        means = [pct(summary.get("mean_accuracy")), pct(summary.get("mean_strict_accuracy"))]
        if summary.get("scope", scope) != scope:
            for cell in means:
                cell.text += " §" if cell.text else ""
        time_cell = num(first.ms_per_image if first else None, 2)
        if first is not None and first.run in odd_runs:
            time_cell.text += " †"
        memory_cell = num(first.peak_rss_mb if first else None, 0)
        if first is not None and first.reused_detections and memory_cell.text:
            memory_cell.text += " ‡"
        row += [pct(first.success_rate if first else None, 1), pct(nme.get(d), 2),
                *means, text(summary.get("worst_condition")),
                pct(summary.get("worst_accuracy")), time_cell, memory_cell]
        rows.append(row)
    note = (f"Alignment {MAIN_ALIGN}. *tied*: not significantly below the best detector of that column's data set "
            f"(McNemar on the pairs' decisions, Holm-corrected, alpha {ALPHA}). Success, time and memory: "
            f"{DATASET_NAMES.get(sets[0], sets[0]) if sets else ''}. NME: landmark error over the inter-ocular "
            "distance (the landmark benchmark). † time from another machine or commit than the others: not "
            "comparable. ‡ a matrix cell that aligned from cached detections: its peak memory leaves out the "
            "detector's. § robustness over other conditions or pairs than most rows': not comparable.")
    return Table(f"{embedder}: the detectors", f"detectors-{embedder}", columns, rows, note)


def _landmark_nme(evidence: Evidence) -> dict[str, float]:
    table = evidence.landmarks
    if table.empty:
        return {}
    ok = table[table["error"].fillna("") == ""]
    return dict(zip(ok["method"], ok["nme_mean"], strict=True))


def _robustness_summary(evidence: Evidence, embedder: str) -> dict[str, dict]:
    """Per detector, the last robustness summary that has conditions, with its ``scope`` (how many
    conditions, over how many pairs): means over other scopes are not comparable."""
    table = evidence.robustness
    if table.empty:
        return {}
    rows = table[(table["embedder"] == embedder) & (table["n_conditions"] > 0)]
    return {row["method"]: {**row.to_dict(), "scope": (int(row["n_conditions"]), int(row["n_pairs"]))}
            for _, row in rows.iterrows()}


def alignment_table(evidence: Evidence) -> Table | None:
    """How much each alignment mode costs or buys: per embedder and data set, the mean change in
    accuracy (points) against :data:`MAIN_ALIGN` over the detectors scored both ways, and the range."""
    results = [r for r in evidence.results if not r.evidence.startswith(ROBUSTNESS)]
    base = {(r.evidence, r.embedder, r.detector): r.accuracy for r in results if r.align == MAIN_ALIGN}
    changes: dict[tuple[str, str, str], list[float]] = {}
    for r in results:
        key = (r.evidence, r.embedder, r.detector)
        if r.align != MAIN_ALIGN and key in base:
            changes.setdefault((r.align, r.embedder, r.evidence), []).append(100 * (r.accuracy - base[key]))
    if not changes:
        return None
    rows = []
    for (align, embedder, data), values in sorted(changes.items()):
        rows.append([Cell(align), Cell(embedder), Cell(DATASET_NAMES.get(data, data)), Cell(str(len(values)),
                     len(values)), num(float(np.mean(values)), 2), num(min(values), 2), num(max(values), 2)])
    return Table("What each alignment mode costs or buys", "alignment",
                 ["alignment", "embedder", "data set", "detectors", "mean change (points)", "worst", "best"], rows,
                 f"Accuracy of each mode minus {MAIN_ALIGN}'s (the 5-point similarity onto the embedder's template), "
                 "same detector, same embedder, same pairs.", detector_column=None)


def agreement_table(evidence: Evidence, ranks: list[Ranking]) -> Table | None:
    """Does the best detector depend on the embedder? Per data set and alignment, Kendall's tau
    between two embedders' accuracies over the same detectors, and each embedder's tied group."""
    frames = [pd.DataFrame([{"align": k.align, "detector": r.detector, "embedder": k.embedder,
                             "accuracy": r.accuracy} for r in k.results]).assign(evidence=k.evidence)
              for k in ranks if not k.evidence.startswith(ROBUSTNESS)]
    if not frames:
        return None
    table = pd.concat(frames, ignore_index=True)
    rows = []
    for data, group in table.groupby("evidence", sort=False):
        for _, tau in rank_agreement(group).iterrows():
            rows.append([Cell(DATASET_NAMES.get(data, data)), Cell(tau["align"]), Cell(tau["embedder_a"]),
                         Cell(tau["embedder_b"]), Cell(str(tau["n_detectors"]), tau["n_detectors"]),
                         num(tau["tau"], 2), num(tau["p_value"], 3)])
    if not rows:
        return None
    return Table("Does the best detector depend on the embedder?", "agreement",
                 ["data set", "alignment", "embedder A", "embedder B", "detectors", "Kendall's tau", "p"], rows,
                 "tau 1: the two embedders order the detectors alike; 0: unrelated orders.", detector_column=None)


def tied_groups_table(ranks: list[Ranking]) -> Table:
    """Per (data set, embedder, alignment) the detectors tied with the best, best first."""
    rows = []
    for k in ranks:
        if k.evidence.startswith(ROBUSTNESS):
            continue
        tied = [d for d, t in k.tied.items() if t]
        rows.append([Cell(DATASET_NAMES.get(k.evidence, k.evidence)), Cell(k.embedder), Cell(k.align),
                     Cell(k.results[0].detector), pct(k.results[0].accuracy),
                     Cell(", ".join(tied), len(tied)), Cell(str(len(k.results)), len(k.results))])
    return Table("The tied groups", "tied", ["data set", "embedder", "alignment", "best", "best acc %",
                                             "tied with the best", "detectors"], rows,
                 "Detectors not significantly below the best (McNemar, Holm-corrected).", detector_column=3)


def robustness_table(evidence: Evidence) -> Table | None:
    """Each robustness run's summary rows that have conditions (not the clean pass of the oracle's
    detector), with how many conditions and pairs their means are over."""
    table = evidence.robustness
    if table.empty:
        return None
    rows = [[text(row["method"]), text(row["embedder"]), Cell(str(row["n_conditions"]), row["n_conditions"]),
             num(row["n_pairs"], 0), pct(row["clean_accuracy"]), pct(row["mean_accuracy"]),
             pct(row.get("mean_strict_accuracy")), text(row["worst_condition"]), pct(row["worst_accuracy"]),
             pct(row.get("detector_loss"))] for _, row in table[table["n_conditions"] > 0].iterrows()]
    return Table("Robustness", "robustness", ["detector", "embedder", "conditions", "pairs", "clean %", "mean %",
                                              "mean strict %", "worst condition", "worst %",
                                              "detector's loss (points %)"], rows,
                 "Mean over the run's conditions (rows over other conditions or pairs are not comparable); strict: "
                 "a pair with a face not found counts as wrong. The detector's loss is the part of the drop the "
                 "oracle (the probes aligned with their clean landmarks) does not have.")


def landmarks_table(evidence: Evidence) -> Table | None:
    table = evidence.landmarks
    if table.empty:
        return None
    rows = [[Cell(str(row["method"])), pct(row["nme_mean"]), pct(row["nme_median"]), pct(row["nme_p90"]),
             pct(row["miss_rate"]), num(row["detect_ms_median"], 1)]
            for _, row in table.sort_values(["nme_mean", "method"], kind="stable").iterrows()]
    return Table("Landmark error against hand labels", "landmarks",
                 ["detector", "NME mean %", "NME median %", "NME p90 %", "miss %", "ms / img"], rows,
                 "NME: mean point error over the labels' inter-ocular distance (CUHK 5-point labels).")


def provenance_table(evidence: Evidence, link: Callable[[str], str] = str) -> Table:
    rows = [[Cell(str(i + 1), i + 1), Cell(link(p.folder)), Cell(p.kind), Cell(p.dataset), Cell(p.commit),
             Cell(p.started), Cell(p.machine), Cell(p.command)] for i, p in enumerate(evidence.provenance)]
    return Table("Provenance", "provenance", ["#", "folder", "kind", "data set", "commit", "started (UTC)",
                                              "machine", "command"], rows,
                 "Every figure above comes from one of these folders. Times are comparable only between runs of "
                 "one machine and one commit.", detector_column=None)
