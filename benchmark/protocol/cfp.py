"""CFP (Sengupta et al., WACV 2016): frontal-to-frontal (FF) and frontal-to-profile (FP)
verification on 7,000 loosely cropped images of 500 people.

The release's layout: ``Data/Images/<person>/{frontal,profile}/NN.jpg``; ``Protocol/Pair_list_F.txt``
and ``Pair_list_P.txt`` number the frontal and profile images (``index ../Data/Images/...``, paths
relative to ``Protocol/``); ``Protocol/Split/<FF|FP>/<01..10>/{same,diff}.txt`` hold each fold's
350 same-person and 350 different-person pairs as ``i,j`` (FF: both frontal; FP: frontal, then
profile). No person is in two folds. The pairs are listed fold by fold, each fold's same pairs
first, so the folds are the pairs file's blocks as in LFW's View 2, and each fold is scored at the
threshold chosen on the other nine (insightface's rule, :mod:`benchmark.protocol.metrics`).

The target face of a loose crop is the most central large face
(:func:`face_alignment.selection.pick_central_face`).
"""
from __future__ import annotations

import os
from pathlib import Path

from face_alignment.errors import DatasetError
from face_alignment.selection import pick_central_face

from .base import VerificationProtocol, find_data_dir
from .pairs import N_FOLDS, make_pair_list, subset_pairs

CFP_ENV = "FACEBENCH_CFP"
#: where the CFP folder is looked for when none is given, in order (after $FACEBENCH_CFP)
CFP_CANDIDATES = ("data/cfp", "../shared/data/cfp")
#: the protocols by data-set name, and which image list each side of a pair indexes
SPLITS = {"cfp-ff": ("FF", ("F", "F")), "cfp-fp": ("FP", ("F", "P"))}
PAIRS_PER_FOLD = 350  # of each kind
DATA_HINT = (
    "CFP is published by its authors (Sengupta et al., WACV 2016) for non-commercial research; put the "
    "release's Data/ and Protocol/ folders in data/cfp, or pass --cfp-dir."
)


def find_cfp_dir(cfp_dir: str | os.PathLike | None = None) -> Path:
    """``cfp_dir``, else ``$FACEBENCH_CFP``, ``data/cfp`` or ``../shared/data/cfp``, whichever exists first."""
    return find_data_dir(cfp_dir, CFP_ENV, CFP_CANDIDATES, "CFP", DATA_HINT)


def _image_list(path: Path) -> dict[int, str]:
    """``Pair_list_?.txt``: index -> image path relative to ``Data/Images``."""
    if not path.is_file():
        raise DatasetError(f"{path} does not exist: not a CFP folder. {DATA_HINT}")
    images = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        prefix = "../Data/Images/"
        if len(fields) != 2 or not fields[0].isdigit() or not fields[1].startswith(prefix):
            raise DatasetError(f"{path} line {number}: expected 'index {prefix}...', got {line!r}")
        images[int(fields[0])] = fields[1][len(prefix):]
    return images


def _split_pairs(path: Path) -> list[tuple[int, int]]:
    """A split file's ``i,j`` lines."""
    if not path.is_file():
        raise DatasetError(f"{path} does not exist: not a complete CFP protocol. {DATA_HINT}")
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != 2 or not all(f.strip().isdigit() for f in fields):
            raise DatasetError(f"{path} line {number}: expected two indices 'i,j', got {line!r}")
        pairs.append((int(fields[0]), int(fields[1])))
    return pairs


def cfp_protocol(dataset: str = "cfp-fp", cfp_dir: str | os.PathLike | None = None,
                 max_pairs: int | None = None) -> VerificationProtocol:
    """The CFP protocol ``dataset`` (``cfp-fp`` or ``cfp-ff``) over the images of ``cfp_dir``
    (see :func:`find_cfp_dir`); ``max_pairs`` keeps a subset spread over the 10 folds (quick checks:
    its numbers are not the protocol's)."""
    if dataset not in SPLITS:
        raise DatasetError(f"unknown CFP protocol {dataset!r}; choose {' or '.join(SPLITS)}")
    root = find_cfp_dir(cfp_dir)
    split, sides = SPLITS[dataset]
    lists = {kind: _image_list(root / "Protocol" / f"Pair_list_{kind}.txt") for kind in sorted(set(sides))}
    triples = []
    for fold in range(1, N_FOLDS + 1):
        for name, same in (("same", True), ("diff", False)):
            path = root / "Protocol" / "Split" / split / f"{fold:02d}" / f"{name}.txt"
            fold_pairs = _split_pairs(path)
            if len(fold_pairs) != PAIRS_PER_FOLD:
                raise DatasetError(f"{path} has {len(fold_pairs)} pairs; CFP's folds have {PAIRS_PER_FOLD}")
            for i, j in fold_pairs:
                try:
                    triples.append((lists[sides[0]][i], lists[sides[1]][j], same))
                except KeyError as exc:
                    raise DatasetError(f"{path}: index {exc.args[0]} is not in Pair_list_{sides[0]}/"
                                       f"{sides[1]}.txt") from None
    pairs = make_pair_list(triples, str(root / "Protocol" / "Split" / split), PAIRS_PER_FOLD)
    if max_pairs:
        pairs = subset_pairs(pairs, max(1, max_pairs // (2 * N_FOLDS)))
    return VerificationProtocol(dataset, root / "Data" / "Images", pairs, pick_face=pick_central_face,
                                data_hint=DATA_HINT)
