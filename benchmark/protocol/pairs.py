"""Pairs files, folds and the unique-image list of a verification protocol.

Three pairs layouts are read:

* the official ``pairs.txt`` (View 2: header ``10 300``; View 1 ``pairsDevTrain.txt`` /
  ``pairsDevTest.txt``: header ``N``), lines ``name i j`` (same person) or ``name1 i name2 j``;
* Kaggle's ``pairs.csv``: the same lines as comma-separated rows under a header row;
* a plain CSV with the header ``path1,path2,same`` (``same`` is 1/0 or true/false), for scoring
  one's own images; relative paths are taken from the image root.

Folds: a View-2 file's 10 folds are its consecutive blocks (header ``folds per_fold``: fold ``k``
is lines ``2*per_fold*k + 1 ..``). Any other list is split into 10 folds in file order, each
holding an equal share of the same-person and of the different-person pairs.
"""
from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from face_alignment.errors import DatasetError

N_FOLDS = 10


@dataclass(frozen=True)
class PairList:
    """Pairs as indices into ``images`` (relative paths, in order of first use)."""

    images: list[str]
    first: np.ndarray  # (P,) int, index into images
    second: np.ndarray  # (P,) int
    same: np.ndarray  # (P,) bool
    folds: np.ndarray  # (P,) int in [0, N_FOLDS)
    source: str

    def __len__(self) -> int:
        return len(self.same)

    def fingerprint(self) -> str:
        """sha256 over both images, the label and the fold of each pair, in order: two runs whose
        score files are compared pair by pair must have the same one."""
        lines = (f"{self.images[a]}\t{self.images[b]}\t{int(same)}\t{int(fold)}"
                 for a, b, same, fold in zip(self.first, self.second, self.same, self.folds))
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def lfw_image(name: str, number: str) -> str:
    try:
        index = int(number)
    except ValueError:
        raise DatasetError(f"image number {number!r} is not an integer") from None
    if index < 1:
        raise DatasetError(f"image number {index} is not a valid LFW number (they start at 1)")
    return f"{name}/{name}_{index:04d}.jpg"


#: a pairs file's lines as (line number in the file, fields), blank lines left out
Rows = list[tuple[int, list[str]]]


def _lfw_rows(rows: Rows, source: str) -> list[tuple[str, str, bool]]:
    out = []
    for line, fields in rows:
        fields = [f.strip() for f in fields if f.strip()]
        try:
            if len(fields) == 3:
                out.append((lfw_image(fields[0], fields[1]), lfw_image(fields[0], fields[2]), True))
            elif len(fields) == 4:
                out.append((lfw_image(fields[0], fields[1]), lfw_image(fields[2], fields[3]), False))
            else:
                raise DatasetError(f"expected 3 fields (name i j) or 4 (name1 i name2 j), got {len(fields)}")
        except DatasetError as exc:
            raise DatasetError(f"{source} line {line}: {exc}: {' '.join(fields)!r}") from None
    return out


def _block_folds(same: np.ndarray, per_fold: int) -> np.ndarray | None:
    """Folds of consecutive blocks of ``per_fold`` same then ``per_fold`` different pairs."""
    size = 2 * per_fold
    if per_fold <= 0 or len(same) != N_FOLDS * size:
        return None
    pattern = np.tile(np.r_[np.ones(per_fold, bool), np.zeros(per_fold, bool)], N_FOLDS)
    return np.repeat(np.arange(N_FOLDS), size) if np.array_equal(same, pattern) else None


def _stratified_folds(same: np.ndarray) -> np.ndarray:
    folds = np.empty(len(same), dtype=int)
    for label in (True, False):
        idx = np.flatnonzero(same == label)
        folds[idx] = np.arange(len(idx)) * N_FOLDS // max(1, len(idx))
    return folds


def read_pairs(path: str | os.PathLike) -> PairList:
    """Parse a pairs file in any of the three layouts (see module docstring).

    A malformed line is an error that names it (a benchmark must not drop pairs silently), and
    so is an official file whose pair count or fold order differs from what its header says.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"pairs file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"pairs file {path} is not UTF-8 text (byte {exc.start}): give a pairs.txt or CSV "
                           "file") from None
    numbered = [(n, ln) for n, ln in enumerate(text.splitlines(), start=1) if ln.strip()]
    if not numbered:
        raise DatasetError(f"pairs file {path} is empty")
    header = numbered[0][1].replace(",", " ").split()
    per_fold = None
    if path.suffix.lower() == ".csv":
        rows = [(n, fields) for (n, _), fields in zip(numbered, csv.reader(ln for _, ln in numbered))]
        names = [h.strip().lower() for h in rows[0][1]]
        if names[:3] == ["path1", "path2", "same"]:
            triples = _plain_rows(rows[1:], path)
        else:
            triples = _lfw_rows(rows[1:], str(path))
            per_fold = 300 if len(triples) == 6000 else None
    elif all(h.isdigit() for h in header) and len(header) in (1, 2):
        triples = _lfw_rows([(n, ln.split()) for n, ln in numbered[1:]], str(path))
        per_fold = _check_official(triples, [n for n, _ in numbered[1:]], [int(h) for h in header], path)
    else:
        raise DatasetError(
            f"{path}: unrecognised pairs layout (expected an official pairs.txt with a numeric header, "
            "Kaggle's pairs.csv, or a CSV with header path1,path2,same)"
        )
    if not triples:
        raise DatasetError(f"pairs file {path} has no pairs")
    return make_pair_list(triples, str(path), per_fold)


def _check_official(triples, lines: list[int], header: list[int], path: Path) -> int | None:
    """Check an official file against its header (View 2: ``folds per_fold``, View 1: ``n``, each
    n same-person pairs then n different ones); the View-2 folds' size."""
    per_block, blocks = (header[1], header[0]) if len(header) == 2 else (header[0], 1)
    expected = 2 * per_block * blocks
    if len(triples) != expected:
        raise DatasetError(f"{path}: the header ({' '.join(map(str, header))}) announces {expected} pairs, the file "
                           f"has {len(triples)}: it is truncated or edited; use the official file")
    pattern = np.tile(np.r_[np.ones(per_block, bool), np.zeros(per_block, bool)], blocks)
    wrong = np.flatnonzero(np.array([same for _, _, same in triples]) != pattern)
    if wrong.size:
        i = int(wrong[0])
        kind = "same-person (name i j)" if pattern[i] else "different-person (name1 i name2 j)"
        raise DatasetError(f"{path} line {lines[i]}: expected a {kind} pair there (the header says blocks of "
                           f"{per_block} same then {per_block} different pairs)")
    return per_block if len(header) == 2 and blocks == N_FOLDS else None


def _plain_rows(rows: Rows, path: Path) -> list[tuple[str, str, bool]]:
    out = []
    for line, row in rows:
        if len(row) < 3:
            raise DatasetError(f"{path} line {line}: expected path1,path2,same, got {row!r}")
        first, second, flag = row[0].strip(), row[1].strip(), row[2].strip().lower()
        if not first or not second:
            raise DatasetError(f"{path} line {line}: an image path is empty: {row!r}")
        if flag not in ("1", "0", "true", "false"):
            raise DatasetError(f"{path} line {line}: same must be 1/0 or true/false, got {row[2]!r}")
        out.append((first, second, flag in ("1", "true")))
    return out


def make_pair_list(triples, source: str, per_fold: int | None) -> PairList:
    """A :class:`PairList` of ``(image, image, same)`` triples; the folds are the file's blocks
    of ``per_fold`` same then ``per_fold`` different pairs where it is laid out so, else stratified."""
    index: dict[str, int] = {}
    first, second, same = [], [], []
    for a, b, is_same in triples:
        first.append(index.setdefault(a, len(index)))
        second.append(index.setdefault(b, len(index)))
        same.append(is_same)
    same_arr = np.array(same, dtype=bool)
    folds = _block_folds(same_arr, per_fold) if per_fold else None
    if folds is None:
        folds = _stratified_folds(same_arr)
    return PairList(list(index), np.array(first), np.array(second), same_arr, folds, source)


def subset_pairs(pairs: PairList, per_fold: int) -> PairList:
    """The first ``per_fold`` same and ``per_fold`` different pairs of every fold, for quick
    checks (tests, smoke runs). Numbers on a subset are not the protocol's."""
    keep = []
    for fold in range(N_FOLDS):
        for label in (True, False):
            keep.extend(np.flatnonzero((pairs.folds == fold) & (pairs.same == label))[:per_fold])
    return _keep_pairs(pairs, np.sort(np.array(keep, dtype=int)))


def select_folds(pairs: PairList, folds: Sequence[int]) -> PairList:
    """The pairs of ``folds`` (numbered 1 to 10, as in the protocols' files) and only the images
    they use: slow methods on part of a protocol. Accuracy is then over those folds (each fold's
    threshold chosen on the other selected ones), not the protocol's figure."""
    wanted = sorted(set(folds))
    if not wanted or wanted[0] < 1 or wanted[-1] > N_FOLDS:
        raise DatasetError(f"folds must be between 1 and {N_FOLDS}, got {list(folds)}")
    return _keep_pairs(pairs, np.flatnonzero(np.isin(pairs.folds, [f - 1 for f in wanted])))


def _keep_pairs(pairs: PairList, keep: np.ndarray) -> PairList:
    """The pairs at the sorted indices ``keep``, in their folds, over only the images they use."""
    triples = [(pairs.images[pairs.first[i]], pairs.images[pairs.second[i]], bool(pairs.same[i])) for i in keep]
    subset = make_pair_list(triples, pairs.source, None)
    return PairList(subset.images, subset.first, subset.second, subset.same, pairs.folds[keep], pairs.source)
