"""What a leaderboard reads: any mix of run folders (a benchmark run of any data set, a matrix, a
robustness run, a landmark run), or their compact copies (:mod:`.copies`), as one list of
:class:`Result` (one detector's figures on one piece of evidence, with its per-pair decisions for
the significance tests) and the :class:`Provenance` of each folder.

A piece of evidence is what a result was scored on: a data set (``lfw``, ``cfp-fp``, ``cfp-ff``),
or a robustness condition (``robustness@downscale-5``; ``robustness@clean`` is the robustness
run's own clean pass over its probe pairs). Each belongs to a *category* a user asks about
(:data:`DATASET_CATEGORIES`, :data:`CONDITION_CATEGORIES`).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from face_alignment.errors import FaceBenchError

from ..protocol.base import REFERENCE
from ..report.compare import correct_decisions
from ..report.files import RUN_INFO, load_run, read_run_info
from ..report.landmarks import SUMMARY_FILE as LANDMARKS_FILE
from ..report.landmarks import read_summary as read_landmarks
from ..report.robustness import ORACLE
from ..report.robustness import read_table as read_robustness

log = logging.getLogger(__name__)

ROBUSTNESS_FILE = "robustness.csv"
#: a copy's per-pair decisions: one row per report row, the decisions packed as hex (:mod:`.copies`)
DECISIONS_FILE = "decisions.csv"
#: what a user asks about, per data set and per robustness condition
DATASET_CATEGORIES = {"lfw": "frontal", "cfp-ff": "frontal", "cfp-fp": "profiles"}
CONDITION_CATEGORIES = {"gaussian_blur": "blur", "motion_blur": "blur", "downscale": "low resolution",
                        "small_offcentre": "low resolution", "rotation": "rotation", "mask_occlusion": "occlusion",
                        "sunglasses": "occlusion", "gaussian_noise": "noise and light", "jpeg": "noise and light",
                        "underexposure": "noise and light", "overexposure": "noise and light",
                        "low_contrast": "noise and light"}
ROBUSTNESS = "robustness"
#: rows that are not a detector's: the reference crops, the robustness oracle
NOT_DETECTORS = (REFERENCE, ORACLE)


@dataclass(frozen=True)
class Provenance:
    """Where a folder's figures come from: ``commit`` and ``started`` (UTC) of its rows, the
    ``machine`` (CPU, cores, GPU) and ``command`` its run.json records ("not recorded" for runs
    from before they were), and what kind of run it is."""

    folder: str
    kind: str
    dataset: str
    commit: str
    started: str
    machine: str
    command: str

    @property
    def timing_key(self) -> tuple[str, str]:
        """Times are comparable only between runs of one machine and one commit."""
        return self.machine, self.commit


@dataclass
class Result:
    """One detector's figures on one piece of evidence, with one embedder and alignment."""

    evidence: str
    category: str
    embedder: str
    align: str
    detector: str
    accuracy: float
    accuracy_std: float
    strict_accuracy: float
    success_rate: float
    ms_per_image: float
    peak_rss_mb: float
    run: int  # index of the folder's Provenance
    # per pair: decided right at its fold's threshold (not compared: results are told apart by their names)
    correct: np.ndarray | None = field(default=None, repr=False, compare=False)
    reused_detections: bool = False  # aligned from cached detections: its peak memory leaves out the detector's
    n_pairs: int = 0  # how many pairs it was scored on
    # per pair, under strict accuracy (a pair with a face not found decided "different")
    strict_correct: np.ndarray | None = field(default=None, repr=False, compare=False)


@dataclass
class Evidence:
    """Everything the leaderboard reads: results, landmark rows, robustness summaries, provenance."""

    results: list[Result] = field(default_factory=list)
    landmarks: pd.DataFrame = field(default_factory=pd.DataFrame)
    robustness: pd.DataFrame = field(default_factory=pd.DataFrame)  # summaries, with their run and n_pairs
    provenance: list[Provenance] = field(default_factory=list)


def read_evidence(folders) -> Evidence:
    """The evidence of ``folders`` (run folders or their copies), in order; a result that a later
    folder has too (same evidence over as many pairs, embedder, alignment, detector) is the later
    folder's."""
    evidence = Evidence()
    for folder in map(Path, folders):
        kind = folder_kind(folder)
        run = len(evidence.provenance)
        evidence.provenance.append(provenance(folder, kind))
        if kind == "landmarks":
            table = read_landmarks(folder / LANDMARKS_FILE).assign(run=run)
            evidence.landmarks = pd.concat([evidence.landmarks, table], ignore_index=True)
        elif kind == ROBUSTNESS:
            results = _robustness_results(folder, run)
            evidence.results += results
            # the pairs its means are over (every condition of a run scores the same pairs)
            summary = pd.read_csv(folder / "robustness_summary.csv").assign(
                run=run, n_pairs=max((r.n_pairs for r in results), default=0))
            evidence.robustness = pd.concat([evidence.robustness, summary], ignore_index=True)
        else:
            evidence.results += _run_results(folder, run)
    evidence.results = _latest(_apart_by_pairs(evidence.results))
    return evidence


def folder_kind(folder: Path) -> str:
    """``robustness``, ``landmarks``, ``matrix`` or ``benchmark`` (what the folder holds)."""
    if (folder / ROBUSTNESS_FILE).is_file():
        return ROBUSTNESS
    if (folder / LANDMARKS_FILE).is_file():
        return "landmarks"
    if (folder / "report.csv").is_file():
        return "matrix" if (folder / "matrix.csv").is_file() else "benchmark"
    raise FaceBenchError(f"{folder} is not a run folder: it holds no report.csv, robustness.csv or landmarks.csv "
                         "(give the --out folder of a facebench run, or a copy made by facebench leaderboard --copy)")


def provenance(folder: Path, kind: str) -> Provenance:
    info = read_run_info(folder) if (folder / RUN_INFO).is_file() else {}
    rows = pd.DataFrame()
    for name in ("report.csv", LANDMARKS_FILE):
        if (folder / name).is_file():
            rows = pd.read_csv(folder / name, dtype=str, keep_default_na=False)
            break
    first = {**info, **(rows.iloc[0].to_dict() if len(rows) else {})}  # the rows' own, else run.json's
    return Provenance(str(folder), kind, info.get("dataset", "lfw") if kind != "landmarks" else "landmarks",
                      first.get("git_commit") or "not recorded", first.get("started_at") or "not recorded",
                      info.get("machine") or "not recorded", info.get("command") or "not recorded")


def _run_results(folder: Path, run: int) -> list[Result]:
    """A benchmark or matrix run's detector rows that have results."""
    loaded = load_run(folder)
    decisions = _decisions(folder)
    out = []
    for _, row in loaded.report[loaded.report["error"] == ""].iterrows():
        detector = row.get("detector") or row["method"]
        if detector in NOT_DETECTORS:
            continue
        correct, strict = decisions.get(row["method"], (None, None)) if decisions else _scored_decisions(
            loaded, row["method"])
        out.append(Result(loaded.dataset, DATASET_CATEGORIES.get(loaded.dataset, loaded.dataset),
                          row.get("embedder") or "edgeface_xs", row.get("align") or "similarity", detector,
                          float(row["accuracy"]), float(row["accuracy_std"]),
                          float(row.get("strict_accuracy", np.nan)), float(row["success_rate"]),
                          float(row["detect_ms_median"]), float(row["peak_rss_mb"]), run, correct,
                          float(row.get("detections_reused") or 0) > 0, int(float(row["n_pairs"])), strict))
    return out


def _robustness_results(folder: Path, run: int) -> list[Result]:
    """A robustness run's detector rows, one piece of evidence per condition and severity."""
    table = read_robustness(folder / ROBUSTNESS_FILE)
    loaded = load_run(folder) if (folder / "report.csv").is_file() else None
    decisions = _decisions(folder)
    out = []
    for _, row in table[(table["error"] == "") & ~table["method"].isin(NOT_DETECTORS)].iterrows():
        condition = "clean" if int(row["severity"]) == 0 else f"{row['condition']}-{int(row['severity'])}"
        correct, strict = decisions.get(row["row"], (None, None)) if decisions else (
            _scored_decisions(loaded, row["row"]) if loaded is not None else (None, None))
        out.append(Result(f"{ROBUSTNESS}@{condition}", CONDITION_CATEGORIES.get(row["condition"], "clean"),
                          row.get("embedder") or "edgeface_xs", "similarity", row["method"], float(row["accuracy"]),
                          float(row["accuracy_std"]), float(row["strict_accuracy"]), float(row["success_rate"]),
                          float(row["detect_ms_median"]), np.nan, run, correct, n_pairs=int(float(row["n_pairs"])),
                          strict_correct=strict))
    return out


def _scored_decisions(run, name: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per-pair decisions of row ``name`` from the run's scores, as scored and strict, or Nones
    where it has no scores."""
    try:
        scores = run.scores(name)
    except FaceBenchError:
        return None, None
    return correct_decisions(scores), correct_decisions(scores.strict())


def _decisions(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """A copy's per-pair decisions by row name (:data:`DECISIONS_FILE`), as scored and strict
    (None in a copy made before strict ones were kept), or {} for a run folder."""
    path = folder / DECISIONS_FILE
    if not path.is_file():
        return {}
    table = pd.read_csv(path, dtype={"row": str, "correct": str, "strict": str}, keep_default_na=False)
    return {row["row"]: (unpack_decisions(row["correct"], int(row["n_pairs"])),
                         unpack_decisions(row["strict"], int(row["n_pairs"])) if row.get("strict") else None)
            for _, row in table.iterrows()}


def pack_decisions(correct: np.ndarray) -> str:
    """Per-pair booleans as hex (8 pairs a byte): a 6,000-pair row in 1,500 characters."""
    return np.packbits(np.asarray(correct, bool)).tobytes().hex()


def unpack_decisions(packed: str, n_pairs: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(bytes.fromhex(packed), np.uint8))[:n_pairs].astype(bool)


def strict_view(results: list[Result]) -> list[Result]:
    """``results`` scored strictly: their strict accuracy and per-pair decisions in place of the
    scored ones (what a system without a fallback crop gets); a result from before strict
    accuracy was recorded has none and is left out."""
    return [replace(r, accuracy=r.strict_accuracy, correct=r.strict_correct) for r in results
            if r.strict_correct is not None and not np.isnan(r.strict_accuracy)]


def _apart_by_pairs(results: list[Result]) -> list[Result]:
    """Figures over other pairs are other evidence (a ``--max-pairs`` or ``--folds`` run beside a
    full one): where one piece of evidence was scored on several numbers of pairs, each result's
    evidence is named with its count, so that no result replaces or is ranked against another's."""
    counts: dict[str, set[int]] = {}
    for result in results:
        counts.setdefault(result.evidence, set()).add(result.n_pairs)
    return [replace(r, evidence=f"{r.evidence} ({r.n_pairs:,} pairs)") if len(counts[r.evidence]) > 1 else r
            for r in results]


def _latest(results: list[Result]) -> list[Result]:
    """One result per (evidence, embedder, alignment, detector): the last folder's."""
    kept: dict[tuple, Result] = {}
    for result in results:
        key = (result.evidence, result.embedder, result.align, result.detector)
        if key in kept:
            log.info("%s: the figures of a later folder replace an earlier one's", " / ".join(key))
        kept[key] = result
    return list(kept.values())


def relative(path: str | os.PathLike, start: str | os.PathLike) -> str:
    """``path`` relative to ``start`` where it can be, else as it is (a link from the page)."""
    try:
        return os.path.relpath(path, start)
    except ValueError:
        return str(path)
