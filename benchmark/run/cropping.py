"""From images to aligned crops: a method's image source and the croppers it uses.

A cropper turns a batch of RGB images into one :class:`Outcome` each: the crop (the embedder's
template, by an alignment mode of :data:`face_alignment.ALIGN_MODES`), a status, the landmarks it
was aligned with and the detector's score. :func:`detector_cropper` detects, picks the target face
(the protocol's rule) and aligns it; a face not found is aligned with :data:`FALLBACK_LANDMARKS`
(the median landmark positions of LFW faces, as fractions of the image size: a centre crop at
LFW's framing) and counted. :func:`reference_cropper` passes reference crops through.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from face_alignment import ARCFACE, CropTemplate, Face, align, create_detector, landmark_box, pick_target_face
from face_alignment.selection import FacePicker, refine_targets
from face_alignment.weights import sha256_file

from ..protocol.base import REFERENCE, VerificationProtocol, reference_crop
from .cache import FALLBACK, FOUND

#: how the reason of an image starts when the detector raised on it
DETECTOR_ERROR = "detector error"
#: median YuNet landmarks over LFW deep-funneled images (every 8th image of pairs.txt, 963
#: faces), as fractions of (width, height); the fallback alignment for a face not found
FALLBACK_LANDMARKS = np.array(
    [[0.4152, 0.4495], [0.5902, 0.4486], [0.5053, 0.5465], [0.4319, 0.6229], [0.5811, 0.6202]], np.float32
)


@dataclass(frozen=True)
class Outcome:
    """What aligning one image produced."""

    crop: np.ndarray
    status: int
    landmarks: np.ndarray
    score: float = float("nan")
    reason: str = ""


Cropper = Callable[[Sequence[np.ndarray]], list[Outcome]]


def fallback_landmarks(shape: tuple[int, ...]) -> np.ndarray:
    return FALLBACK_LANDMARKS * np.array([shape[1], shape[0]], np.float32)


def _fallback(image: np.ndarray, reason: str, template: CropTemplate, mode: str) -> Outcome:
    """The crop at LFW's median face position (its box: the square the similarity would cut)."""
    landmarks = fallback_landmarks(image.shape)
    face = Face(landmark_box(landmarks, template), float("nan"), landmarks)
    return Outcome(align(image, face, template, mode), FALLBACK, landmarks, reason=reason)


def detector_cropper(detector, pick_face: FacePicker = pick_target_face, template: CropTemplate = ARCFACE,
                     mode: str = "similarity") -> Cropper:
    """Detect a batch, pick each image's target face and align it onto ``template`` by ``mode``;
    a detector error on the batch is retried image by image so that it costs only the image
    that causes it."""

    def crop(images: Sequence[np.ndarray]) -> list[Outcome]:
        try:
            targets = refine_targets(detector, images, detector.detect(images), pick=pick_face)
        except Exception as exc:  # any backend failure; isolate the image(s) behind it
            if len(images) > 1:
                return [o for image in images for o in crop([image])]
            return [_fallback(images[0], f"{DETECTOR_ERROR}: {type(exc).__name__}: {exc}", template, mode)]
        return [
            _fallback(image, "no face found", template, mode) if face is None
            else Outcome(align(image, face, template, mode), FOUND, face.landmarks, face.score)
            for image, face in zip(images, targets)
        ]

    return crop


def reference_cropper(size: int = ARCFACE.size) -> Cropper:
    """Reference crops are already aligned (on the ArcFace template): used as they are, resized
    to ``size`` where that is not their size."""
    nan = np.full((5, 2), np.nan, np.float32)

    def crop(images: Sequence[np.ndarray]) -> list[Outcome]:
        return [Outcome(reference_crop(image, size), FOUND, nan, 1.0) for image in images]

    return crop


def takes_reference_crops(template: CropTemplate) -> bool:
    """Whether reference crops (ArcFace-aligned) fit an embedder of ``template``: the ArcFace
    template at any size."""
    return template == ARCFACE.scaled(template.size)


@dataclass(frozen=True)
class CropperRecipe:
    """How to build a method's cropper again in another process (a detection replica, a Ray
    actor): picklable, and building it there gives the same crops as here. ``method`` None is
    the :func:`reference_cropper`."""

    method: str | None = None
    pick_face: FacePicker = pick_target_face  # a module-level function, so that it pickles
    device: str = "cpu"
    weights_dir: str | Path | None = None
    template: CropTemplate = ARCFACE
    align: str = "similarity"

    def build(self) -> Cropper:
        if self.method is None:
            return reference_cropper(self.template.size)
        detector = create_detector(self.method, device=self.device, weights_dir=self.weights_dir)
        return detector_cropper(detector, self.pick_face, self.template, self.align)


@dataclass(frozen=True)
class ImageSource:
    """Where a method's images are and what turns them into crops (``cropper`` here, ``recipe``
    to build the same in another process)."""

    root: Path
    cropper: Cropper
    producer: str  # the code that makes the crops: part of the cache key
    model: str = ""
    weights_sha256: str = ""
    device: str = ""  # where the detector really runs (FaceDetector.real_device); none for reference crops
    recipe: CropperRecipe = CropperRecipe()


def image_source(method: str, protocol: VerificationProtocol, device: str, weights_dir=None,
                 template: CropTemplate = ARCFACE, mode: str = "similarity") -> ImageSource:
    """The reference crops for :data:`REFERENCE`, else the images through ``method``'s detector,
    aligned onto ``template`` by ``mode``."""
    if method == REFERENCE:
        recipe = CropperRecipe(template=template)
        return ImageSource(protocol.reference_dir, recipe.build(), REFERENCE, recipe=recipe)
    detector = create_detector(method, device=device, weights_dir=weights_dir)
    producer = f"{type(detector).__module__}.{type(detector).__qualname__}"
    # the device it really got, so that a replica or an actor builds it there, without asking anew
    recipe = CropperRecipe(method, protocol.pick_face, detector.real_device or device, weights_dir, template, mode)
    return ImageSource(protocol.image_root, detector_cropper(detector, protocol.pick_face, template, mode), producer,
                       detector.model_label, weights_sha256(detector.weight_paths), detector.real_device, recipe)


def weights_sha256(paths: Sequence[Path]) -> str:
    """The sha256 of the one weights file, or for several, of their sha256s joined by newlines."""
    digests = [sha256_file(p) for p in paths]
    if len(digests) <= 1:
        return digests[0] if digests else ""
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()
