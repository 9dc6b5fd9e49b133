"""Alignment onto an embedding model's crop template (the ArcFace 112x112 one by default): the five-point
similarity (``align_face``) and the alignment modes (``align``, ``ALIGN_MODES``)."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .types import Face

#: ArcFace / insightface template for a 112x112 crop, in LANDMARK_NAMES order
#: (insightface ``utils/face_align.py``, ``arcface_dst``).
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)
CROP_SIZE = 112


@dataclass(frozen=True)
class CropTemplate:
    """What an embedding model expects of a face crop: a square of ``size`` pixels with the five
    points (in LANDMARK_NAMES order, crop pixels) at ``points``: the target of every alignment."""

    size: int
    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        points = tuple((float(x), float(y)) for x, y in np.asarray(self.points, np.float64).reshape(5, 2))
        object.__setattr__(self, "points", points)
        if int(self.size) < 1:
            raise ValueError(f"a crop template needs a positive size, got {self.size}")
        object.__setattr__(self, "size", int(self.size))

    @property
    def array(self) -> np.ndarray:
        """The five points, ``(5, 2)`` float32."""
        return np.array(self.points, np.float32)

    def scaled(self, size: int) -> CropTemplate:
        """The same template for a crop of ``size`` pixels."""
        return CropTemplate(size, np.array(self.points, np.float64) * (size / self.size))


#: the ArcFace / insightface template (EdgeFace and insightface's recognition models)
ARCFACE = CropTemplate(CROP_SIZE, ARCFACE_TEMPLATE)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, translation) mapping
    ``src`` points onto ``dst`` points (Umeyama 1991, no reflection).

    Parameters
    ----------
    src, dst : ndarray, shape (N, 2)

    Returns
    -------
    ndarray, shape (2, 3), float64
        The affine matrix for ``cv2.warpAffine``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0
    rotation = u @ np.diag(d) @ vt
    src_var = (src_c**2).sum() / len(src)
    scale = (s * d).sum() / src_var if src_var > 0 else 1.0
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Warp ``image`` so that its five ``landmarks`` land on the ArcFace template.

    Parameters
    ----------
    image : ndarray, HxWx3 uint8 RGB
    landmarks : ndarray, shape (5, 2), in LANDMARK_NAMES order
    size : int
        Output side; the template is scaled from 112 (e.g. 224 for a 2x crop).

    Returns
    -------
    ndarray, size x size x 3 uint8 RGB
    """
    template = ARCFACE_TEMPLATE * (size / CROP_SIZE)
    return warp(image, similarity_transform(np.asarray(landmarks).reshape(5, 2), template), size)


def warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The ``size`` x ``size`` crop that the (2, 3) ``matrix`` (image pixels -> crop pixels) cuts:
    bilinear, black beyond the image. Every alignment warps through here."""
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)


# --- alignment modes --------------------------------------------------------------------------
#
# Every mode is an affine map from image pixels to crop pixels, so each is a (2, 3) matrix
# (``alignment_matrix``) and one ``cv2.warpAffine`` (``align``). Coordinates are those of the
# template: the crop is the square [0, size] x [0, size] and a template for another size is the
# same one multiplied (``CropTemplate.scaled``), so every mode's matrix for ``template.scaled(2 *
# size)`` is exactly twice its matrix for ``template``.

#: the alignment modes, the default first
ALIGN_MODES = ("similarity", "eyes", "affine", "roll", "box")

#: How large the five points are inside a detector's box made square (side = max(w, h), as
#: MTCNN's ``rerec`` squares its boxes): the RMS distance of the five landmarks from their
#: centroid over the square box's side. Median over the 7,701 LFW deep-funneled images that
#: pairs.txt uses (every one detected), YuNet (``face_detection_yunet_2023mar``) boxes and
#: landmarks, the face nearest the image centre; interquartile range 0.210 - 0.223. The ``box``
#: mode enlarges the square box so that the points have the template's size in the crop.
BOX_POINTS_SCALE = 0.2171


def _rms_radius(points: np.ndarray) -> float:
    """The RMS distance of ``points`` from their centroid."""
    points = np.asarray(points, np.float64)
    return float(np.sqrt(((points - points.mean(axis=0)) ** 2).sum(axis=1).mean()))


def box_enlargement(template: CropTemplate = ARCFACE) -> float:
    """The factor by which the ``box`` mode enlarges a detector's square box: the margin the
    template implies. The template's points take ``rms / size`` of its crop; inside a typical
    square detector box they take :data:`BOX_POINTS_SCALE` of its side; the crop must therefore
    cover ``BOX_POINTS_SCALE / (rms / size)`` box sides (about 1.046 for ARCFACE: facenet-pytorch's
    ``margin`` of about 5 px at 112, ``margin = size * (1 - 1 / factor)``)."""
    return BOX_POINTS_SCALE * template.size / _rms_radius(template.points)


def _face_box(face: Face, template: CropTemplate) -> tuple[float, float, float, float]:
    """The face's box as ``cx, cy, w, h``; an empty box (no positive side, e.g. a degenerate
    detection) is replaced by :func:`landmark_box`, so ``box`` and ``roll`` always have one."""
    box = np.asarray(face.bbox, np.float64).reshape(4)
    if not np.all(np.isfinite(box)) or max(box[2] - box[0], box[3] - box[1]) <= 0:
        box = landmark_box(face.landmarks, template).astype(np.float64)
    x1, y1, x2, y2 = box
    return (x1 + x2) / 2.0, (y1 + y2) / 2.0, max(x2 - x1, 0.0), max(y2 - y1, 0.0)


def _affine_fit(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares full affine map (6 dof) of ``src`` onto ``dst``, ``(2, 3)`` float64."""
    src = np.asarray(src, np.float64).reshape(-1, 2)
    dst = np.asarray(dst, np.float64).reshape(-1, 2)
    design = np.hstack([src, np.ones((len(src), 1))])
    solution, *_ = np.linalg.lstsq(design, dst, rcond=None)
    return np.ascontiguousarray(solution.T)


def _roll_matrix(face: Face, template: CropTemplate) -> np.ndarray:
    """deepface's alignment (``extract_faces`` with ``align=True``, deepface 0.0.100; the same
    geometry since 0.0.93) as one affine map.

    What deepface does: the angle is ``atan2`` of the eye vector from the image-left eye to the
    image-right eye (its ``left_eye`` is the subject's left, the image's right), in degrees;
    ``align_img_wrt_eyes`` rotates the image by it with ``cv2.getRotationMatrix2D`` (about the
    centre of a sub-image twice the box's size, i.e. about the box centre; 0.0.93 rotated the
    whole padded image about its centre), which makes the eye line horizontal;
    ``project_facial_area`` moves the box's centre by the same rotation and keeps its width and
    height, so the cut is the detector box, axis-aligned in the rotated image, around the rotated
    centre; ``resize_image`` scales that cut by ``min(size / h, size / w)`` (aspect ratio kept)
    and pads it with black to the square, the cut in the middle. The matrix is the geometry;
    :func:`align` then blacks out the padding (:func:`roll_padding`), which a warp alone would
    fill with the image beyond the box.

    Where this differs: deepface first adds a black border of half the image on each side (and
    cuts a sub-image) so that the rotation does not push the face out of the picture; a single
    warp samples outside the image as black anyway, so none is needed. deepface rounds the box
    and the projected box to whole pixels (``int``), clips the projected box to the sub-image and
    rounds the resized size and the padding (``diff // 2``); here the box stays in floating point,
    is not clipped, and its centre goes exactly to the crop centre. deepface resamples twice
    (bicubic rotation, then ``cv2.resize``'s bilinear); here one bilinear warp does both. Colour
    order and the ``/ 255`` normalisation are not geometry and are not reproduced."""
    cx, cy, w, h = _face_box(face, template)
    left, right = np.asarray(face.landmarks, np.float64)[:2]
    angle = np.arctan2(right[1] - left[1], right[0] - left[0])
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.array([[cos, sin], [-sin, cos]])  # getRotationMatrix2D(angle): eye line -> horizontal
    side = max(w, h)
    scale = template.size / side if side > 0 else 1.0
    linear = scale * rotation
    centre = np.array([cx, cy])
    matrix = np.empty((2, 3))
    matrix[:, :2] = linear
    matrix[:, 2] = template.size / 2.0 - linear @ centre
    return matrix


def _box_matrix(face: Face, template: CropTemplate) -> np.ndarray:
    """facenet-pytorch's crop (``extract_face``: the detector box grown by ``margin``, cut and
    resized to the square), no rotation: the detector's box made square about its centre (side
    max(w, h)), enlarged by :func:`box_enlargement` (the margin the template implies), its centre
    on the crop centre.

    Where this differs: facenet-pytorch does not square MTCNN's (nearly square) box, takes its
    ``margin`` in output pixels (``margin * w / (size - margin)`` of the image each way), rounds the
    grown box to whole pixels and clips it to the image, so a face at the border is stretched;
    here the square is kept whole and what lies outside the image is black."""
    cx, cy, w, h = _face_box(face, template)
    side = max(w, h) * box_enlargement(template)
    scale = template.size / side if side > 0 else 1.0
    half = template.size / 2.0
    return np.array([[scale, 0.0, half - scale * cx], [0.0, scale, half - scale * cy]])


def alignment_matrix(face: Face, template: CropTemplate = ARCFACE, mode: str = "similarity") -> np.ndarray:
    """The affine map (image pixels -> crop pixels) that alignment ``mode`` uses for ``face``.

    Parameters
    ----------
    face : Face
        ``bbox`` (``x1, y1, x2, y2``) and the five ``landmarks`` in LANDMARK_NAMES order.
    template : CropTemplate
        The crop's size and where its five points go.
    mode : str
        One of :data:`ALIGN_MODES`:

        - ``similarity``: the least-squares similarity of the five points onto the template
          (insightface's alignment; for ARCFACE the crop is :func:`align_face`'s, bit for bit);
        - ``eyes``: the similarity that puts both eyes exactly on the template's eyes;
        - ``affine``: the least-squares full affine map (6 dof) of the five points onto the
          template;
        - ``roll``: deepface's: the image rotated so that the eye line is horizontal, the
          detector box cut from it, resized keeping its aspect ratio and padded with black to the
          square (the padding is :func:`align`'s, :func:`roll_padding`);
        - ``box``: facenet-pytorch's: no rotation, the detector box made square about its centre
          and enlarged by the margin the template implies (:func:`box_enlargement`).

    Returns
    -------
    ndarray, shape (2, 3), float64
    """
    landmarks = np.asarray(face.landmarks).reshape(5, 2)
    if mode == "similarity":
        return similarity_transform(landmarks, template.array)
    if mode == "eyes":
        # two point pairs fix a similarity (4 dof): the least-squares fit is exact
        return similarity_transform(landmarks[:2], np.array(template.points[:2], np.float64))
    if mode == "affine":
        return _affine_fit(landmarks, np.array(template.points, np.float64))
    if mode == "roll":
        return _roll_matrix(face, template)
    if mode == "box":
        return _box_matrix(face, template)
    raise ValueError(f"unknown alignment mode {mode!r}; the modes are: {', '.join(ALIGN_MODES)}")


def align(image: np.ndarray, face: Face, template: CropTemplate = ARCFACE, mode: str = "similarity") -> np.ndarray:
    """The crop of ``face`` that alignment ``mode`` makes for ``template``.

    Parameters
    ----------
    image : ndarray, HxWx3 uint8 RGB
    face : Face
    template : CropTemplate
    mode : str
        One of :data:`ALIGN_MODES` (see :func:`alignment_matrix`).

    Returns
    -------
    ndarray, ``template.size x template.size x 3`` uint8 RGB
    """
    size = template.size
    crop = warp(image, alignment_matrix(face, template, mode), size)
    if mode == "roll":  # deepface pads the resized cut with black, it does not show what lies beyond
        left, top, right, bottom = roll_padding(face, template)
        crop[:top] = 0
        crop[size - bottom:] = 0
        crop[:, :left] = 0
        crop[:, size - right:] = 0
    return crop


def roll_padding(face: Face, template: CropTemplate = ARCFACE) -> tuple[int, int, int, int]:
    """The black bands (``left, top, right, bottom``, whole pixels) with which the ``roll`` mode
    pads the resized detector box to the square, as deepface's ``resize_image`` counts them: the
    box resized by ``size / max(w, h)`` to whole pixels, the rest split with the odd pixel after
    it. The longer side has none."""
    _, _, w, h = _face_box(face, template)
    size = template.size
    side = max(w, h)
    if side <= 0:
        return 0, 0, 0, 0
    # the small epsilon keeps the longer side at exactly ``size`` where w * size / w rounds below it
    inner_w = min(size, int(w * size / side + 1e-9))
    inner_h = min(size, int(h * size / side + 1e-9))
    left, top = (size - inner_w) // 2, (size - inner_h) // 2
    return left, top, size - inner_w - left, size - inner_h - top


def landmark_box(landmarks: np.ndarray, template: CropTemplate = ARCFACE) -> np.ndarray:
    """A detector box for a face known only by its five ``landmarks`` (a fallback): the
    axis-aligned box, ``x1, y1, x2, y2`` float32, of the square that the ``similarity`` alignment
    cuts from the image (the crop's corners mapped back through the inverse similarity)."""
    matrix = similarity_transform(np.asarray(landmarks).reshape(5, 2), template.array)
    inverse = cv2.invertAffineTransform(matrix)
    size = float(template.size)
    corners = np.array([[0.0, 0.0, 1.0], [size, 0.0, 1.0], [size, size, 1.0], [0.0, size, 1.0]])
    mapped = corners @ inverse.T
    return np.concatenate([mapped.min(axis=0), mapped.max(axis=0)]).astype(np.float32)
