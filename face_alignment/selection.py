"""Which detected face is *the* face of an image.

Rule (:func:`pick_target_face`, the default; a data set may pass its own to
:func:`refine_targets`): among the faces whose box contains the image centre, the largest; when
no box contains the centre, the largest face of all. On LFW the labelled person is the one
centred in the image (other people appear at the edges, sometimes larger), and in an ordinary
one-person photo the rule picks the only or the most prominent face.

A tilted face gets a second look (:func:`refine_targets`), so that detectors whose landmarks
lean towards upright faces still align it right.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from .types import Face

#: ``(faces, image_shape) -> the target face or None``
FacePicker = Callable[[Sequence[Face], tuple[int, ...]], Face | None]


def pick_target_face(faces: Sequence[Face], image_shape: tuple[int, ...]) -> Face | None:
    """The target face of an image of ``image_shape`` (H, W, ...), or None when there is none."""
    if not faces:
        return None
    cy, cx = image_shape[0] / 2.0, image_shape[1] / 2.0
    centred = [f for f in faces if f.bbox[0] <= cx <= f.bbox[2] and f.bbox[1] <= cy <= f.bbox[3]]
    return max(centred or faces, key=lambda f: f.area)


def pick_central_face(faces: Sequence[Face], image_shape: tuple[int, ...], large: float = 0.5) -> Face | None:
    """The most central large face, for loose crops of one person at any size (CFP): among the
    faces at least ``large`` times the area of the largest (a small face in the background is never
    the subject), the one whose box centre is nearest the image centre; None when there is none."""
    if not faces:
        return None
    biggest = max(f.area for f in faces)
    cy, cx = image_shape[0] / 2.0, image_shape[1] / 2.0
    candidates = [f for f in faces if f.area >= large * biggest]
    return min(candidates, key=lambda f: np.hypot((f.bbox[0] + f.bbox[2]) / 2 - cx, (f.bbox[1] + f.bbox[3]) / 2 - cy))


def roll_degrees(landmarks: np.ndarray) -> float:
    """In-plane rotation of a face: the angle of the line from the left to the right eye."""
    (lx, ly), (rx, ry) = landmarks[0], landmarks[1]
    return float(np.degrees(np.arctan2(ry - ly, rx - lx)))


def refine_targets(detector, images: Sequence[np.ndarray], detections: Sequence[Sequence[Face]],
                   roll_limit: float = 10.0, max_looks: int = 3,
                   pick: FacePicker = pick_target_face) -> list[Face | None]:
    """The target face of each of ``images``, chosen by ``pick`` among its first-look
    ``detections`` (``detector.detect(images)``), with further looks at tilted faces.

    Many detectors regress landmarks that are biased towards an upright face: on a face rolled
    by 30 degrees YuNet's eyes come out about 15 pixels off. When the target's roll exceeds
    ``roll_limit`` degrees, the image is turned upright about the face, detected again, and the
    landmarks are mapped back; if a look finds nothing there, the previous one stands. Each
    further look turns the image by the roll measured so far; it stops when a look changes the
    roll by less than 2 degrees (a detector that underestimates roll converges in 2-3 looks).
    """
    targets = [pick(faces, image.shape) for image, faces in zip(images, detections)]
    for i, image in enumerate(images):
        face = targets[i]
        if face is None or abs(roll_degrees(face.landmarks)) <= roll_limit:
            continue
        for _ in range(max_looks - 1):
            better = _upright_look(detector, image, face)
            if better is None:
                break
            change = abs(roll_degrees(better.landmarks) - roll_degrees(face.landmarks))
            face = better
            if change < 2.0:
                break
        targets[i] = face
    return targets


def _upright_look(detector, image: np.ndarray, face: Face) -> Face | None:
    """Detect again in ``image`` turned upright about ``face``; landmarks in original pixels."""
    centre = face.landmarks.mean(axis=0)
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), roll_degrees(face.landmarks), 1.0)
    upright = cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REPLICATE)
    candidates = [f for f in detector.detect([upright])[0]
                  if f.bbox[0] <= centre[0] <= f.bbox[2] and f.bbox[1] <= centre[1] <= f.bbox[3]]
    if not candidates:
        return None
    best = max(candidates, key=lambda f: f.area)
    inverse = cv2.invertAffineTransform(matrix)
    dense = None if best.dense is None else _apply(inverse, best.dense)
    return Face(face.bbox, best.score, _apply(inverse, best.landmarks), dense)


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]
