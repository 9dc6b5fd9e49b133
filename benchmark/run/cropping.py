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
import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
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
    """What aligning one image produced: the crop, its status, the landmarks, the detector's
    score, why it fell back; ``face`` is what the crop was aligned from (box and points in the
    pixels of the image the cropper saw; None for reference crops), ``detect_ms`` the detection's
    time where it was read from earlier work (None: measured now)."""

    crop: np.ndarray
    status: int
    landmarks: np.ndarray
    score: float = float("nan")
    reason: str = ""
    face: Face | None = None
    detect_ms: float | None = None


#: ``cropper(images, indices)``: one :class:`Outcome` per image; ``indices`` (the images' positions
#: in the run's list) let a cropper reuse detections made earlier (:class:`KnownDetections`)
Cropper = Callable[..., list[Outcome]]


@dataclass(frozen=True)
class KnownDetections:
    """Detections made earlier of a run's images (a detection cache's rows, indexed like its image
    list): the faces' boxes and points in the pixels of the image the detector saw, their status,
    score, reason and detection time. A detection is known where ``status`` is not pending."""

    status: np.ndarray  # (n,) int8
    boxes: np.ndarray  # (n, 4) float32
    points: np.ndarray  # (n, 5, 2) float32
    scores: np.ndarray  # (n,) float32
    detect_ms: np.ndarray  # (n,) float32
    reasons: dict[int, str]

    def knows(self, index: int) -> bool:
        """Whether image ``index`` was detected (an unreadable image is decoded again)."""
        return self.status[index] in (FOUND, FALLBACK)

    def covers(self, indices: Sequence[int]) -> bool:
        return all(self.knows(int(i)) for i in indices)

    def outcome(self, image: np.ndarray, index: int, template: CropTemplate, mode: str) -> Outcome:
        """The crop of image ``index`` aligned from its known face, as the detection made it (a face
        not found: the fallback crop for this template)."""
        ms = float(self.detect_ms[index])
        if self.status[index] == FALLBACK:
            return replace(_fallback(image, self.reasons.get(index, ""), template, mode), detect_ms=ms)
        face = Face(self.boxes[index], float(self.scores[index]), self.points[index])
        return Outcome(align(image, face, template, mode), FOUND, face.landmarks, face.score, face=face, detect_ms=ms)


def fallback_landmarks(shape: tuple[int, ...]) -> np.ndarray:
    return FALLBACK_LANDMARKS * np.array([shape[1], shape[0]], np.float32)


def _fallback(image: np.ndarray, reason: str, template: CropTemplate, mode: str) -> Outcome:
    """The crop at LFW's median face position (its box: the square the similarity would cut)."""
    landmarks = fallback_landmarks(image.shape)
    face = Face(landmark_box(landmarks, template), float("nan"), landmarks)
    return Outcome(align(image, face, template, mode), FALLBACK, face.landmarks, reason=reason, face=face)


def detector_cropper(detector, pick_face: FacePicker = pick_target_face, template: CropTemplate = ARCFACE,
                     mode: str = "similarity", known: KnownDetections | None = None) -> Cropper:
    """Detect a batch, pick each image's target face and align it onto ``template`` by ``mode``;
    a detector error on the batch is retried image by image so that it costs only the image
    that causes it. An image whose detection is ``known`` (by its index) is not detected again:
    its crop is aligned from the known face, the same crop as the detection's first run made."""

    def detect(images: Sequence[np.ndarray]) -> list[Outcome]:
        try:
            targets = refine_targets(detector, images, detector.detect(images), pick=pick_face)
        except Exception as exc:  # any backend failure; isolate the image(s) behind it
            if len(images) > 1:
                return [o for image in images for o in detect([image])]
            return [_fallback(images[0], f"{DETECTOR_ERROR}: {type(exc).__name__}: {exc}", template, mode)]
        return [
            _fallback(image, "no face found", template, mode) if face is None
            else Outcome(align(image, face, template, mode), FOUND, face.landmarks, face.score, face=face)
            for image, face in zip(images, targets)
        ]

    def crop(images: Sequence[np.ndarray], indices: Sequence[int] | None = None) -> list[Outcome]:
        if known is None or indices is None:
            return detect(images)
        reuse = [known.knows(int(i)) for i in indices]
        unknown = [image for image, r in zip(images, reuse) if not r]
        fresh = iter(detect(unknown) if unknown else [])
        return [known.outcome(image, int(i), template, mode) if r else next(fresh)
                for image, i, r in zip(images, indices, reuse)]

    return crop


def reference_cropper(size: int = ARCFACE.size) -> Cropper:
    """Reference crops are already aligned (on the ArcFace template): used as they are, resized
    to ``size`` where that is not their size."""
    nan = np.full((5, 2), np.nan, np.float32)

    def crop(images: Sequence[np.ndarray], indices: Sequence[int] | None = None) -> list[Outcome]:
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
    known: KnownDetections | None = None

    def build(self) -> Cropper:
        if self.method is None:
            return reference_cropper(self.template.size)
        detector = create_detector(self.method, device=self.device, weights_dir=self.weights_dir)
        return detector_cropper(detector, self.pick_face, self.template, self.align, self.known)


@dataclass(frozen=True)
class ImageSource:
    """Where a method's images are and what turns them into crops (``cropper`` here, ``recipe``
    to build the same in another process). A *described* source (:meth:`described`) keeps only
    the facts, for a process whose engine builds its croppers elsewhere (the Ray driver)."""

    root: Path
    cropper: Cropper | None
    producer: str  # the code that makes the crops: part of the cache key
    model: str = ""
    weights_sha256: str = ""
    device: str = ""  # where the detector really runs (FaceDetector.real_device); none for reference crops
    recipe: CropperRecipe = CropperRecipe()
    detector: object = None  # the FaceDetector behind ``cropper``; None for reference crops and described sources
    code_version: str = ""  # a sha256 over the source of the detector and of the face choice

    @property
    def detects(self) -> bool:
        """Whether the crops come from a detector (not reference crops)."""
        return self.recipe.method is not None

    def described(self) -> ImageSource:
        """This source's facts without its cropper or detector (small, picklable)."""
        return replace(self, cropper=None, detector=None)

    def reusing(self, known: KnownDetections | None) -> ImageSource:
        """This source with ``known`` detections reused, not detected again (here and in ``recipe``)."""
        if not self.detects or known is None:
            return self
        recipe = replace(self.recipe, known=known)
        cropper = None if self.detector is None else detector_cropper(self.detector, recipe.pick_face, recipe.template,
                                                                      recipe.align, known)
        return replace(self, cropper=cropper, recipe=recipe)


def image_source(method: str, protocol: VerificationProtocol, device: str, weights_dir=None,
                 template: CropTemplate = ARCFACE, mode: str = "similarity") -> ImageSource:
    """The reference crops for :data:`REFERENCE`, else the images through ``method``'s detector,
    aligned onto ``template`` by ``mode``."""
    if method == REFERENCE:
        return built_source(CropperRecipe(template=template), protocol.reference_dir)
    return built_source(CropperRecipe(method, protocol.pick_face, device, weights_dir, template, mode),
                        protocol.image_root)


def built_source(asked: CropperRecipe, root: Path) -> ImageSource:
    """The image source of ``asked`` over the images under ``root``, its detector built (on the
    device it asks; the recipe it keeps names the device the detector really got, so that a
    replica or an actor builds it there, without asking anew)."""
    if asked.method is None:
        return ImageSource(root, asked.build(), REFERENCE, recipe=asked)
    detector = create_detector(asked.method, device=asked.device, weights_dir=asked.weights_dir)
    producer = f"{type(detector).__module__}.{type(detector).__qualname__}"
    recipe = replace(asked, device=detector.real_device or asked.device)
    return ImageSource(root, detector_cropper(detector, recipe.pick_face, recipe.template, recipe.align), producer,
                       detector.model_label, weights_sha256(detector.weight_paths), detector.real_device, recipe,
                       detector, code_version(type(detector), recipe.pick_face, refine_targets))


def code_version(*objects) -> str:
    """A sha256 over the source files of the modules that define ``objects`` (classes: with their
    base classes'), so that a change to that code gives caches a new key. The face_alignment
    helpers every detector uses (:mod:`face_alignment.detectors.common`) are always in it."""
    from face_alignment.detectors import common

    files = {Path(inspect.getfile(common))}
    for obj in objects:
        for cls in inspect.getmro(obj) if inspect.isclass(obj) else (obj,):
            module = inspect.getmodule(cls)
            if module is not None and getattr(module, "__file__", None) and \
                    module.__name__.partition(".")[0] not in sys.stdlib_module_names:
                files.add(Path(module.__file__))
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def weights_sha256(paths: Sequence[Path]) -> str:
    """The sha256 of the one weights file, or for several, of their sha256s joined by newlines."""
    digests = [sha256_file(p) for p in paths]
    if len(digests) <= 1:
        return digests[0] if digests else ""
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()
