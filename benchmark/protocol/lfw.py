"""LFW: where its images and pairs file are, and its protocols (View 2's ``pairs.txt``, View 1's
files, Kaggle's ``pairs.csv`` or a ``path1,path2,same`` CSV over the same images)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from PIL import Image

from face_alignment import CROP_SIZE
from face_alignment.errors import DatasetError

from .base import VerificationProtocol, find_data_dir
from .pairs import N_FOLDS, PairList, read_pairs, subset_pairs

log = logging.getLogger(__name__)

LFW_ENV = "FACEBENCH_LFW"
#: where the LFW folder is looked for when none is given, in order (after $FACEBENCH_LFW)
LFW_CANDIDATES = ("data/lfw", "../shared/data/lfw")
IMAGE_FOLDERS = ("lfw-deepfunneled", "lfw", "lfw_funneled")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DATA_HINT = (
    "Get LFW with `facebench fetch-lfw --data-dir data/lfw` (downloads lfw-deepfunneled.tgz and "
    "pairs.txt from the official LFW site and checks them), or pass --lfw-dir pointing at a "
    "folder holding `lfw-deepfunneled/` (or `lfw/`) and `pairs.txt`."
)


def find_lfw_dir(lfw_dir: str | os.PathLike | None = None) -> Path:
    """``lfw_dir``, else ``$FACEBENCH_LFW``, ``data/lfw`` or ``../shared/data/lfw``, whichever
    exists first."""
    return find_data_dir(lfw_dir, LFW_ENV, LFW_CANDIDATES, "LFW", DATA_HINT)


def find_image_root(lfw_dir: str | os.PathLike) -> Path:
    """The folder holding ``<Name>/<Name>_NNNN.jpg``: ``lfw_dir`` itself or one of
    ``lfw-deepfunneled/``, ``lfw/``, ``lfw_funneled/`` inside it."""
    root = Path(lfw_dir)
    if not root.is_dir():
        raise DatasetError(f"LFW folder {root} does not exist. {DATA_HINT}")
    for name in IMAGE_FOLDERS:
        if (root / name).is_dir():
            return root / name
    return root


def find_pairs_file(lfw_dir: str | os.PathLike, image_root: Path) -> Path:
    for folder in (Path(lfw_dir), image_root, image_root.parent):
        for name in ("pairs.txt", "pairs.csv"):
            if (folder / name).is_file():
                return folder / name
    raise DatasetError(f"no pairs.txt or pairs.csv in {lfw_dir}; pass --pairs. {DATA_HINT}")


def lfw_protocol(lfw_dir: str | os.PathLike | None = None, pairs: str | os.PathLike | None = None,
                 aligned_dir: str | os.PathLike | None = None, max_pairs: int | None = None) -> VerificationProtocol:
    """The LFW protocol of ``pairs`` (default: the pairs file beside the images) over the images
    of ``lfw_dir`` (see :func:`find_lfw_dir`); ``max_pairs`` keeps a subset spread over the 10
    folds (quick checks: its numbers are not the protocol's)."""
    lfw_dir = find_lfw_dir(lfw_dir)
    image_root = find_image_root(lfw_dir)
    pair_list = read_pairs(pairs or find_pairs_file(lfw_dir, image_root))
    if max_pairs:
        per_fold = max(1, max_pairs // (2 * N_FOLDS))
        if 2 * N_FOLDS * per_fold != max_pairs:
            log.warning("--max-pairs %d: using %d pairs, %d same and %d different in each of the %d folds",
                        max_pairs, 2 * N_FOLDS * per_fold, per_fold, per_fold, N_FOLDS)
        pair_list = subset_pairs(pair_list, per_fold)
    _warn_if_aligned(image_root, pair_list)
    return VerificationProtocol("lfw", image_root, pair_list, Path(aligned_dir) if aligned_dir else None,
                                data_hint=DATA_HINT)


def _warn_if_aligned(image_root: Path, pairs: PairList) -> None:
    """LFW's images are 250x250; 112x112 ones are aligned crops given where the originals belong."""
    first = next((image_root / p for p in pairs.images if (image_root / p).is_file()), None)
    if first is None:
        return
    with Image.open(first) as image:
        if image.size == (CROP_SIZE, CROP_SIZE):
            log.warning("the images under %s are %dx%d: aligned crops? Give the folder of the original LFW "
                        "images as --lfw-dir (the crops go to --aligned-dir)", image_root, *image.size)
