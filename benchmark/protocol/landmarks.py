"""Landmark accuracy on hand-labelled 5-point faces (the CUHK list format of Sun et al. 2013):
the label file, which detected face is the labelled one, and the error metrics as pure functions
of arrays.

Normaliser: every error is divided by the **inter-ocular distance of the labels** (IOD), the
distance between the two labelled eye centres (the common 5-point convention). NME of a face is
the mean over its five points of ``|predicted - labelled| / IOD``.

Misses: a face the detector did not find has an infinite NME (its predicted points are NaN).
The CED, its area and the failure rates count misses as failures; the mean, median and p90 NME,
the per-point errors and the mean offset are over the found faces only, and the miss rate is
reported beside them.

Offset: a method's points follow its training labels' convention (where exactly "the eye" or
"the mouth corner" is), so its error against CUHK's labels holds a constant per-point offset as
well as the per-image error. The offset of a point is the mean of its error vectors in face units,
in each face's own frame: the vector divided by the IOD and rotated so that the labels' eye line
is horizontal (x from the left eye towards the right eye, y down the face). Removing it
(:func:`remove_offset`) maps the offset back into each image's frame (times its IOD, rotated by
its eye line) and subtracts it; the NME then left is the per-image error. The offset is
estimated on the same faces it is removed from (in-sample), so that NME is what a per-point
bias correction could at best reach on them.

Shapes: ``N`` faces, 5 points in :data:`face_alignment.LANDMARK_NAMES` order (left eye, right
eye, nose, left mouth corner, right mouth corner, as seen in the image), ``(x, y)`` in pixels.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from face_alignment import LANDMARK_NAMES, Face
from face_alignment.errors import DatasetError
from face_alignment.selection import FacePicker

from .base import find_data_dir

#: what the errors are divided by (the summary's ``normaliser`` column)
NORMALISER = "interocular"
NORMALISER_TEXT = "inter-ocular distance of the labels (between the two labelled eye centres)"
#: failure thresholds on NME; a miss is a failure at both
FAILURE_THRESHOLDS = (0.10, 0.20)
#: the CED's area is taken from 0 to this NME
AUC_LIMIT = 0.10


@dataclass(frozen=True)
class LabelledFace:
    """One line of a CUHK label file.

    Attributes
    ----------
    image : str
        The image path relative to the images folder, with ``/`` (the file has ``\\``).
    box : ndarray, shape (4,), float64
        The authors' face box as ``x1, y1, x2, y2`` (the file's order is left, right, top, bottom).
    points : ndarray, shape (5, 2), float64
        ``(x, y)`` of left eye, right eye, nose tip, left mouth corner, right mouth corner.
    line : int
        The line number in the file (1-based).
    """

    image: str
    box: np.ndarray
    points: np.ndarray
    line: int

    @property
    def box_centre(self) -> np.ndarray:
        """The centre of :attr:`box`, shape (2,)."""
        return np.array([(self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0])


@dataclass(frozen=True)
class LabelSet:
    """The faces of a label file whose image is in ``images_dir``, and how many lines were skipped
    because their image is not there (e.g. the ``lfw_5590`` lines, whose images are not shared)."""

    source: Path
    images_dir: Path
    faces: list[LabelledFace]
    n_lines: int
    n_skipped: int

    def __len__(self) -> int:
        return len(self.faces)

    @property
    def points(self) -> np.ndarray:
        """Every face's labelled points, shape (N, 5, 2)."""
        return np.stack([f.points for f in self.faces]) if self.faces else np.zeros((0, 5, 2))


LANDMARKS_ENV = "FACEBENCH_LANDMARKS"
#: where the labelled set is looked for when no label file is given (after $FACEBENCH_LANDMARKS)
LANDMARKS_CANDIDATES = ("data/landmarks", "../shared/data/landmarks")
DEFAULT_LABELS = "testImageList.txt"


def default_labels() -> Path:
    """CUHK's ``testImageList.txt`` in ``$FACEBENCH_LANDMARKS``, ``data/landmarks`` or ``../shared/data/landmarks``."""
    hint = "Give the label list with --labels (CUHK's 5-point format) and its images' folder with --images."
    return find_data_dir(None, LANDMARKS_ENV, LANDMARKS_CANDIDATES, "landmarks", hint) / DEFAULT_LABELS


def parse_label_line(text: str, source: str | os.PathLike = "<labels>", line: int = 0) -> LabelledFace:
    """One CUHK line: ``path left right top bottom x1 y1 x2 y2 ... x5 y5`` (points interleaved).

    Raises :class:`DatasetError` naming ``source`` and ``line`` when the line has not 15 fields,
    a field is not a finite number, the box is empty (left >= right or top >= bottom) or both
    eyes are at one point (no inter-ocular distance to normalise by).
    """
    fields = text.split()
    where = f"{source}, line {line}"
    if len(fields) != 15:
        raise DatasetError(f"{where}: expected an image path, 4 box numbers and 10 point coordinates "
                           f"(15 fields), found {len(fields)}: {text.strip()[:120]!r}")
    try:
        numbers = np.array([float(v) for v in fields[1:]], dtype=np.float64)
    except ValueError:
        raise DatasetError(f"{where}: not a number among the 14 coordinates: {text.strip()[:120]!r}") from None
    if not np.all(np.isfinite(numbers)):
        raise DatasetError(f"{where}: a coordinate is not finite: {text.strip()[:120]!r}")
    left, right, top, bottom = numbers[:4]
    if not (left < right and top < bottom):
        raise DatasetError(f"{where}: empty face box (left {left:g}, right {right:g}, top {top:g}, "
                           f"bottom {bottom:g}; the order is left, right, top, bottom)")
    points = numbers[4:].reshape(5, 2)
    if np.array_equal(points[0], points[1]):
        raise DatasetError(f"{where}: both eyes at the same point, so there is no inter-ocular distance to "
                           f"normalise by: {text.strip()[:120]!r}")
    image = fields[0].replace("\\", "/")
    return LabelledFace(image, np.array([left, top, right, bottom]), points, line)


def read_labels(path: str | os.PathLike, images_dir: str | os.PathLike | None = None) -> LabelSet:
    """The faces of the CUHK label file ``path`` whose image exists under ``images_dir`` (the
    folder the file's paths are relative to; default: the label file's folder). Lines whose image
    is absent are skipped and counted (:attr:`LabelSet.n_skipped`); blank lines are ignored; a
    malformed line raises :class:`DatasetError` naming the file and line (whether or not its
    image is here)."""
    path = Path(path)
    root = Path(images_dir) if images_dir is not None else path.parent
    if not path.is_file():
        raise DatasetError(f"label file not found: {path}")
    if not root.is_dir():
        raise DatasetError(f"images folder not found: {root}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read the label file {path}: {exc}") from None
    faces, n_lines, skipped = [], 0, 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        n_lines += 1
        face = parse_label_line(line, path, number)
        if (root / face.image).is_file():
            faces.append(face)
        else:
            skipped += 1
    return LabelSet(path, root, faces, n_lines, skipped)


# --- which detected face is the labelled one -------------------------------------------------


def pick_labelled_face(faces: Sequence[Face], centre: np.ndarray) -> Face | None:
    """The detected face that is the labelled one: among the faces whose box contains ``centre``
    (the labels' box centre, :attr:`LabelledFace.box_centre`), the one whose box centre is nearest
    it; when no box contains it, the nearest of all faces. None when there are no faces."""
    if not faces:
        return None
    cx, cy = centre
    containing = [f for f in faces if f.bbox[0] <= cx <= f.bbox[2] and f.bbox[1] <= cy <= f.bbox[3]]

    def distance(face: Face) -> float:
        return float(np.hypot((face.bbox[0] + face.bbox[2]) / 2.0 - cx, (face.bbox[1] + face.bbox[3]) / 2.0 - cy))

    return min(containing or faces, key=distance)


def labelled_face_picker(face: LabelledFace) -> FacePicker:
    """A ``pick(faces, image_shape)`` for :func:`face_alignment.selection.refine_targets` that
    chooses the detection of the labelled ``face`` (:func:`pick_labelled_face`)."""
    centre = face.box_centre
    return lambda faces, image_shape: pick_labelled_face(faces, centre)


# --- metrics -----------------------------------------------------------------------------------


def _check(pred: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    if labels.ndim != 3 or labels.shape[1:] != (5, 2) or pred.shape != labels.shape:
        raise ValueError(f"expected predictions and labels of shape (N, 5, 2); got {pred.shape} and {labels.shape}")
    return pred, labels


def interocular_distance(labels: np.ndarray) -> np.ndarray:
    """The distance between the labelled left and right eye centres: (N, 5, 2) -> (N,)."""
    labels = np.asarray(labels, dtype=np.float64)
    return np.hypot(*(labels[:, 1] - labels[:, 0]).T)


def found_mask(pred: np.ndarray) -> np.ndarray:
    """Which faces have predicted points (a miss is all NaN): (N, 5, 2) -> (N,) bool."""
    return np.all(np.isfinite(np.asarray(pred, dtype=np.float64)), axis=(1, 2))


def point_errors(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each point's distance to its label over the IOD: (N, 5, 2), (N, 5, 2) -> (N, 5); NaN for
    the points of a missed face."""
    pred, labels = _check(pred, labels)
    return np.linalg.norm(pred - labels, axis=2) / interocular_distance(labels)[:, None]


def nme(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Normalised mean error of each face: the mean of its five point errors over the IOD of its
    labels: (N, 5, 2), (N, 5, 2) -> (N,); ``inf`` for a missed face (NaN predictions)."""
    errors = point_errors(pred, labels).mean(axis=1)
    return np.where(np.isnan(errors), np.inf, errors)


def _eye_frames(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per face, the unit vector along the labels' eye line and the IOD: (N, 2), (N,)."""
    iod = interocular_distance(labels)
    return (labels[:, 1] - labels[:, 0]) / iod[:, None], iod


def face_frame_errors(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Error vectors ``pred - labels`` in face units: divided by the IOD and rotated so that the
    labels' eye line is the x axis (x towards the right eye, y down the face):
    (N, 5, 2), (N, 5, 2) -> (N, 5, 2); NaN for a missed face."""
    pred, labels = _check(pred, labels)
    axis, iod = _eye_frames(labels)
    error = pred - labels
    along = error[..., 0] * axis[:, None, 0] + error[..., 1] * axis[:, None, 1]
    across = -error[..., 0] * axis[:, None, 1] + error[..., 1] * axis[:, None, 0]
    return np.stack([along, across], axis=2) / iod[:, None, None]


def mean_offset(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each point's mean error vector in face units (:func:`face_frame_errors`) over the found
    faces: (N, 5, 2), (N, 5, 2) -> (5, 2); NaN when no face was found."""
    errors = face_frame_errors(pred, labels)[found_mask(pred)]
    return errors.mean(axis=0) if len(errors) else np.full((5, 2), np.nan)


def remove_offset(pred: np.ndarray, labels: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """``pred`` with the per-point ``offset`` (5, 2), in face units, subtracted in each face's
    frame (scaled by its IOD, rotated by its labels' eye line): (N, 5, 2) -> (N, 5, 2)."""
    pred, labels = _check(pred, labels)
    axis, iod = _eye_frames(labels)
    offset = np.asarray(offset, dtype=np.float64).reshape(1, 5, 2)
    dx = offset[..., 0] * axis[:, None, 0] - offset[..., 1] * axis[:, None, 1]
    dy = offset[..., 0] * axis[:, None, 1] + offset[..., 1] * axis[:, None, 0]
    return pred - np.stack([dx, dy], axis=2) * iod[:, None, None]


def ced(nmes: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The cumulative error distribution: the fraction of faces with NME <= each threshold
    (a miss, ``inf``, never counts): (N,), (T,) -> (T,)."""
    nmes = np.asarray(nmes, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if nmes.size == 0:
        return np.full(thresholds.shape, np.nan)
    return np.mean(nmes[None, :] <= thresholds[:, None], axis=1)


def ced_area(nmes: np.ndarray, limit: float = AUC_LIMIT) -> float:
    """The area under the CED from 0 to ``limit``, divided by ``limit`` (a perfect method has 1,
    one that misses every face 0): exactly the mean of ``max(0, 1 - NME / limit)`` over the faces,
    misses counting 0. (N,) -> float."""
    nmes = np.asarray(nmes, dtype=np.float64)
    if nmes.size == 0:
        return float("nan")
    return float(np.mean(np.clip(1.0 - nmes / limit, 0.0, None)))


def failure_rate(nmes: np.ndarray, threshold: float) -> float:
    """The fraction of faces with NME > ``threshold``, misses (``inf``) included: (N,) -> float."""
    nmes = np.asarray(nmes, dtype=np.float64)
    return float(np.mean(nmes > threshold)) if nmes.size else float("nan")


def _threshold_label(value: float) -> str:
    return f"{value:.2f}"


def _nme_stats(nmes: np.ndarray, suffix: str = "") -> dict[str, float]:
    found = nmes[np.isfinite(nmes)]
    stats = {
        f"nme_mean{suffix}": float(found.mean()) if found.size else float("nan"),
        f"nme_median{suffix}": float(np.median(found)) if found.size else float("nan"),
        f"nme_p90{suffix}": float(np.percentile(found, 90)) if found.size else float("nan"),
    }
    for threshold in FAILURE_THRESHOLDS:
        stats[f"failure_{_threshold_label(threshold)}{suffix}"] = failure_rate(nmes, threshold)
    stats[f"auc_{_threshold_label(AUC_LIMIT)}{suffix}"] = ced_area(nmes, AUC_LIMIT)
    return stats


#: the metric columns of :func:`landmark_metrics`, in order
METRIC_COLUMNS = [
    "n_faces", "n_found", "miss_rate",
    *_nme_stats(np.zeros(1)),
    *_nme_stats(np.zeros(1), "_offset_removed"),
    *(f"err_{name}" for name in LANDMARK_NAMES),
    *(f"offset_{name}_{axis}" for name in LANDMARK_NAMES for axis in "xy"),
]


@dataclass(frozen=True)
class LandmarkScores:
    """Per-face results of one method: ``nme`` and ``nme_offset_removed`` (N,) (``inf`` for a
    miss), ``offset`` (5, 2) in face units and ``metrics`` (the summary's metric columns)."""

    nme: np.ndarray
    nme_offset_removed: np.ndarray
    offset: np.ndarray
    metrics: dict[str, float]


def landmark_metrics(pred: np.ndarray, labels: np.ndarray) -> LandmarkScores:
    """Every metric of one method on N faces: ``pred`` (N, 5, 2), all NaN for a missed face;
    ``labels`` (N, 5, 2).

    Metrics (:data:`METRIC_COLUMNS`): ``n_faces``, ``n_found``, ``miss_rate``; NME
    ``mean``/``median``/``p90`` over the found faces; ``failure_0.10``/``failure_0.20`` (NME
    above the threshold, misses included); ``auc_0.10`` (:func:`ced_area`, misses count 0); the
    same with the mean offset removed (``*_offset_removed``); ``err_<point>`` (each point's mean
    error over the IOD, found faces); ``offset_<point>_x``/``_y`` (:func:`mean_offset`, face units).
    """
    pred, labels = _check(pred, labels)
    found = found_mask(pred)
    pred = np.where(found[:, None, None], pred, np.nan)  # a partly NaN prediction is a miss
    raw = nme(pred, labels)
    offset = mean_offset(pred, labels)
    unbiased = nme(remove_offset(pred, labels, offset), labels) if found.any() else raw
    n = len(labels)
    metrics: dict[str, float] = {
        "n_faces": n, "n_found": int(found.sum()),
        "miss_rate": float(1.0 - found.mean()) if n else float("nan"),
    }
    metrics.update(_nme_stats(raw))
    metrics.update(_nme_stats(unbiased, "_offset_removed"))
    per_point = point_errors(pred, labels)[found]
    for k, name in enumerate(LANDMARK_NAMES):
        metrics[f"err_{name}"] = float(per_point[:, k].mean()) if found.any() else float("nan")
    for k, name in enumerate(LANDMARK_NAMES):
        metrics[f"offset_{name}_x"], metrics[f"offset_{name}_y"] = map(float, offset[k])
    return LandmarkScores(raw, unbiased, offset, metrics)
