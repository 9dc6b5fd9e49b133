"""The robustness benchmark: every method on a protocol's pairs with each pair's second image (the
probe) under image conditions (:mod:`benchmark.protocol.degradations`), and the oracle that tells
the detector's loss from the embedder's (:mod:`benchmark.report.robustness`).

Per method, in its own process as in the benchmark: the clean pass over every image (the cache
``facebench run`` uses in the same folder), then one pass per condition over the probes only,
each cached and resumable under a key that names the condition and the oracle. The oracle's
landmark method (default ``retinaface``: the detector that made the crops insightface's
recognition models, EdgeFace among them, are trained on) runs first: its clean landmarks place
every method's occlusions, and align the oracle's probes (:class:`OracleAlignment`).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from face_alignment import ARCFACE, CropTemplate
from face_alignment.alignment import similarity_transform, warp
from face_alignment.weights import unverified_weights

from ..protocol.base import VerificationProtocol
from ..protocol.conditions import CLEAN, Conditioned, ImageCondition
from ..protocol.degradations import CONDITIONS, make_condition, parse_conditions
from ..protocol.pairs import select_folds
from ..protocol.scores import pair_scores, summarize
from ..report.files import run_info, write_image_log, write_report, write_run_info
from ..report.robustness import (
    CLEAN_CONDITION,
    ORACLE,
    SUMMARY_FILE,
    TABLE_FILE,
    heatmap_severity,
    row_name,
    save_robustness_charts,
    write_summary,
    write_table,
)
from .cache import FOUND, STATUS_NAMES, MethodResults
from .cropping import CropperRecipe, ImageSource
from .failures import method_failure
from .isolation import Progress
from .runner import (
    RunConfig,
    default_out,
    engine_for,
    method_models,
    prepare_run,
    process_method,
    run_isolated,
    timing,
)
from .sysinfo import run_provenance

log = logging.getLogger(__name__)

DEFAULT_ORACLE = "retinaface"


@dataclass
class RobustnessConfig(RunConfig):
    """A benchmark run's options plus the conditions (``quick``, ``all`` or ``NAME:SEVERITY,...``),
    the oracle's landmark method and the folds to run (1 to 10; default all)."""

    conditions: str = "quick"
    oracle: str = DEFAULT_ORACLE
    folds: Sequence[int] = field(default_factory=tuple)
    embedders: Sequence[str] = field(default_factory=tuple)  # several embedders; none: ``embedder_model`` alone

    @property
    def embedder_names(self) -> tuple[str, ...]:
        return tuple(self.embedders) or (self.embedder_model,)


class OracleAlignment(ImageCondition):
    """``condition``, then the probe aligned with its clean image's landmarks (``landmarks``: key
    -> (5, 2) points in the original image's pixels, as the oracle's method logged them, its
    fallback centre crop's where it found no face) carried through the condition's transform,
    onto the embedder's ``template`` by the 5-point similarity. The image it gives is the crop,
    which the oracle's cropper passes through."""

    def __init__(self, condition: ImageCondition, landmarks: Mapping[str, np.ndarray], method: str,
                 template: CropTemplate = ARCFACE) -> None:
        self.condition, self.landmarks, self.template = condition, landmarks, template
        self.name = f"oracle({method})/{condition.name}"

    def apply(self, image: np.ndarray, key: str) -> Conditioned:
        conditioned = self.condition.apply(image, key)
        points = conditioned.to_conditioned(self.landmarks[key]).astype(np.float32)
        to_crop = similarity_transform(points, self.template.array)
        matrix = to_crop[:, :2] @ conditioned.matrix
        matrix[:, 2] += to_crop[:, 2]
        return Conditioned(warp(conditioned.image, to_crop, self.template.size), matrix)


def run_robustness(config: RobustnessConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every method of ``config`` clean and under each condition, and the oracle. Writes the
    run folder (default ``results/robustness-<dataset>``: ``report.csv`` with a row per method x
    condition, their scores and per-image logs, ``robustness.csv``, ``robustness_summary.csv`` and
    the charts); returns the robustness table and its summary per method."""
    specs = parse_conditions(config.conditions)
    config = replace(config, out=config.out or Path("results") / f"robustness-{default_out(config.dataset).name}")
    runs = {name: prepare_run(replace(config, embedder_model=name)) for name in config.embedder_names}
    run = runs[config.embedder_names[0]]
    metas = {name: each.meta for name, each in runs.items()}
    protocol = run.protocol
    if config.folds:
        protocol = replace(protocol, pairs=select_folds(protocol.pairs, config.folds))
    probes = _probes(protocol)
    log.info("%d pairs (%s), %d probes, %d conditions", len(protocol.pairs),
             f"folds {','.join(map(str, config.folds))}" if config.folds else "all folds", len(probes), len(specs))
    write_run_info(run.out, {**run_info(protocol, config.max_pairs), **run_provenance(),
                             "conditions": [f"{n}-{s}" for n, s in specs]})
    rows, report, landmarks = [], [], None
    for method in [config.oracle, *(m for m in config.methods if m != config.oracle)]:  # the oracle's landmarks first
        work = _work(method, config, len(protocol.pairs.images), len(probes), len(specs))
        args = (method, config, protocol, probes, specs, landmarks, metas, run.out)
        outcome = run_isolated(_robust_method, args, method, work, config.progress)
        named = len(metas) > 1
        result = outcome.result or {
            "report": [{"method": row_name(method, embedder=name if named else ""), **meta, "error": outcome.error}
                       for name, meta in metas.items()],
            "rows": [_error_row(method, CLEAN_CONDITION, 0, outcome.error, name, named) for name in metas],
            "landmarks": None}
        rows.extend(result["rows"])
        report.extend(result["report"])
        if method == config.oracle:
            landmarks = result["landmarks"]
        write_report(report, run.out / "report.csv")
        write_table(rows, run.out / TABLE_FILE)
    table = write_table(rows, run.out / TABLE_FILE)
    summary = write_summary(table, run.out / SUMMARY_FILE)
    gallery = [(n, s) for n, s in specs if s == heatmap_severity(table)]
    save_robustness_charts(run.out, table, [make_condition(n, s, landmarks) for n, s in gallery], protocol.image_root,
                           _gallery_probe(probes, landmarks), [*config.methods, ORACLE], config.oracle)
    return table, summary


def _gallery_probe(probes: Sequence[str], landmarks: Mapping[str, np.ndarray] | None) -> str | None:
    """The first probe whose face the oracle's method found clean (its crops are comparable)."""
    return next((p for p in probes if landmarks and p in landmarks), None)


def _probes(protocol: VerificationProtocol) -> list[str]:
    """The images that are some pair's second image, in image-list order."""
    is_probe = np.zeros(len(protocol.pairs.images), bool)
    is_probe[protocol.pairs.second] = True
    return [image for image, probe in zip(protocol.pairs.images, is_probe) if probe]


def _work(method: str, config: RobustnessConfig, n_images: int, n_probes: int, n_specs: int) -> int:
    """The images ``method``'s process goes through, for each embedder: its clean pass, its passes
    over the probes, and for the oracle's method the oracle's passes (clean and per condition)."""
    return len(config.embedder_names) * (n_images + n_probes * (n_specs if method in config.methods else 0)
                                         + (n_probes * (1 + n_specs) if method == config.oracle else 0))


@dataclass
class _Passes:
    """A method's passes (:func:`~.runner.process_method` with the run's fixed arguments) and their
    progress as one bar over all of them (``total`` images)."""

    config: RobustnessConfig
    embedder: object
    meta: dict
    out: Path
    progress: Progress
    total: int
    done_before: int = 0

    def __call__(self, method: str, source: ImageSource, images: Sequence[str],
                 condition: ImageCondition = CLEAN) -> MethodResults:
        """``images`` under ``condition``, cached; a degraded pass's key names the oracle's method,
        whose landmarks place the occlusions (the clean pass's is the benchmark's own)."""
        key = {} if condition is CLEAN else {"oracle": self.config.oracle}
        results, _, _ = process_method(method, source, self.config, images, self.embedder, self.meta, self.out,
                                       lambda done, n: self.progress(self.done_before + done, self.total), condition,
                                       **key)
        self.done_before += len(images)
        return results


def _error_row(method: str, condition: str, severity: int, error: str, embedder: str, named: bool) -> dict:
    """A robustness table row without figures (``named``: the row's name holds the embedder)."""
    return {"method": method, "condition": condition, "severity": severity, "kind": _kind(condition),
            "row": row_name(method, condition, severity, embedder if named else ""), "error": error,
            "embedder": embedder}


def _kind(condition: str) -> str:
    return CONDITIONS[condition].kind if condition in CONDITIONS else ""


def _robust_method(method: str, config: RobustnessConfig, *args, **kwargs) -> dict:
    """:func:`_method_passes` in one session of the run's engine (Ray: one cluster for every pass)."""
    with engine_for(config).session():
        return _method_passes(method, config, *args, **kwargs)


def _method_passes(method: str, config: RobustnessConfig, protocol: VerificationProtocol, probes: list[str],
                   specs: Sequence[tuple[str, int]], landmarks: Mapping[str, np.ndarray] | None,
                   metas: dict[str, dict], out: Path, progress: Progress = lambda done, total: None) -> dict:
    """One method's rows for each embedder (clean and per condition; the oracle's too when
    ``method`` is the oracle's), and, for the oracle's method, its clean landmarks of the faces it
    found. The embedders after the first align from the first one's detections (detect once)."""
    images = protocol.pairs.images
    total = _work(method, config, len(images), len(probes), len(specs))
    found: dict[str, np.ndarray] | None = None
    table: list[dict] = []
    report: list[dict] = []
    done_before = 0
    for i, name in enumerate(config.embedder_names):
        cell = replace(config, embedder_model=name, keep_detections=i > 0)
        with unverified_weights(config.allow_unverified_weights):  # the parent has reported the file (meta)
            source, embedder = method_models(method, protocol, cell)
        passes = _Passes(cell, embedder, metas[name], out, progress, total, done_before)
        clean = passes(method, source, images)
        position = {image: i for i, image in enumerate(images)}
        rows = _Rows(method, protocol, clean, np.array([position[p] for p in probes], int), probes, metas[name], out,
                     name, len(metas) > 1)
        rows.add(CLEAN_CONDITION, 0, clean, source)
        if method == config.oracle and found is None:
            found = {image: clean.landmarks[i] for i, image in enumerate(images) if clean.status[i] == FOUND}
        placed = found if method == config.oracle else landmarks
        if method in config.methods:
            for condition_name, severity in specs:
                with rows.failure(condition_name, severity):
                    condition = make_condition(condition_name, severity, placed)
                    rows.add(condition_name, severity, passes(method, source, probes, condition), source)
        if method == config.oracle:
            _oracle_rows(rows, passes, specs, placed, embedder.model_input.template)
        table.extend(rows.table)
        report.extend(rows.report)
        done_before = passes.done_before
    return {"rows": table, "report": report, "landmarks": found}


def _oracle_rows(method_rows: _Rows, passes: _Passes, specs: Sequence[tuple[str, int]],
                 landmarks: Mapping[str, np.ndarray], template: CropTemplate) -> None:
    """The oracle's rows, clean and per condition, into ``method_rows``' lists: the probes aligned
    onto ``template`` with the oracle method's clean landmarks; a probe whose face that method did
    not find counts as not found (it is aligned with the method's fallback centre crop, as the
    method was)."""
    clean, protocol, config = method_rows.clean, method_rows.protocol, passes.config
    every = dict(zip(protocol.pairs.images, clean.landmarks))
    recipe = CropperRecipe(template=template)
    source = ImageSource(protocol.image_root, recipe.build(), f"oracle:{config.oracle}", recipe=recipe)
    oracle = replace(method_rows, method=ORACLE, table=[], report=[],
                     probe_found=clean.status[method_rows.probe_index] == FOUND)
    for name, severity in [(CLEAN_CONDITION, 0), *specs]:
        with oracle.failure(name, severity):
            condition = OracleAlignment(CLEAN if severity == 0 else make_condition(name, severity, landmarks), every,
                                        config.oracle, template)
            oracle.add(name, severity, passes(ORACLE, source, method_rows.probes, condition), source)
    method_rows.table.extend(oracle.table)
    method_rows.report.extend(oracle.report)


@dataclass
class _Rows:
    """Scores one method's passes against its clean first images and collects their rows: the
    robustness table's (``table``) and report.csv's (``report``), with scores and logs written."""

    method: str
    protocol: VerificationProtocol
    clean: MethodResults  # every image, clean: the first image of each pair
    probe_index: np.ndarray  # the probes' positions in the image list
    probes: list[str]
    meta: dict
    out: Path
    embedder: str = ""
    named: bool = False  # the rows' names hold the embedder (a run of several)
    table: list[dict] = field(default_factory=list)
    report: list[dict] = field(default_factory=list)
    probe_found: np.ndarray | None = None  # the oracle's: where its method found the clean face

    @contextmanager
    def failure(self, condition: str, severity: int) -> Iterator[None]:
        """A block whose exception becomes the error row of (condition, severity), not the run's end."""
        row = _error_row(self.method, condition, severity, "", self.embedder, self.named)
        with method_failure(row, row["row"], self.out):
            yield
        if row["error"]:
            self.table.append(row)
            self.report.append({"method": row["row"], **self.meta, "error": row["error"]})

    def add(self, condition: str, severity: int, results: MethodResults, source: ImageSource) -> None:
        name = row_name(self.method, condition, severity, self.embedder if self.named else "")
        pairs = self.protocol.pairs
        if self.method != ORACLE and condition == CLEAN_CONDITION:
            scores, images, found = results.score(pairs), pairs.images, results.status == FOUND
        else:
            found = results.status == FOUND
            if self.probe_found is not None:
                found &= self.probe_found
            embeddings = np.full((len(pairs.images), results.embeddings.shape[1]), np.nan, np.float32)
            probe_found = np.zeros(len(pairs.images), bool)
            embeddings[self.probe_index], probe_found[self.probe_index] = results.embeddings, found
            scores = pair_scores(self.clean.embeddings, self.clean.status == FOUND, pairs,
                                 probes=(embeddings, probe_found))
            images = self.probes
        scores.save(self.out / "scores" / f"{name}.npz")
        write_image_log(self.out / "images" / f"{name}.csv", images, results, STATUS_NAMES)
        metrics = summarize(scores)
        times = timing(results, source.weights_sha256)
        self.report.append({"method": name, **self.meta, **metrics, **times, "success_rate": float(np.mean(found)),
                            "n_failed_images": int(np.count_nonzero(~found)), "n_pairs": len(pairs),
                            "n_images": len(images), "detector_model": source.model})
        self.table.append({**_error_row(self.method, condition, severity, "", self.embedder, self.named), **metrics,
                           **times,
                           "success_rate": float(np.mean(found)), "n_pairs": len(pairs), "n_probes": len(images),
                           "landmark_shift_iod": self._landmark_shift(results, condition)})

    def _landmark_shift(self, results: MethodResults, condition: str) -> float:
        """Median over the probes found both clean and degraded of the mean distance between the
        method's points on the degraded image (mapped back to the original's pixels) and its points
        on the clean image, in inter-ocular distances of the clean points; NaN for clean and oracle rows."""
        if condition == CLEAN_CONDITION or self.method == ORACLE:
            return float("nan")
        clean_points = self.clean.landmarks[self.probe_index]
        both = (results.status == FOUND) & (self.clean.status[self.probe_index] == FOUND)
        if not both.any():
            return float("nan")
        iod = np.linalg.norm(clean_points[both, 0] - clean_points[both, 1], axis=1)
        error = np.linalg.norm(results.landmarks[both] - clean_points[both], axis=2).mean(axis=1)
        return float(np.median(error / np.maximum(iod, 1e-6)))
