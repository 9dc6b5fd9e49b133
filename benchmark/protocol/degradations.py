"""The catalogue of image conditions for the robustness benchmark: what each does, at severities
1 to 5 fixed by one physical parameter, and the ``--conditions`` syntax.

A condition is a deterministic function of (image, condition, severity, key): the strength is
fixed per severity, and what is inherently random (a noise pattern, a motion direction, a
rotation's sign, a position) is drawn from a seed hashed from the condition's name and the
image's key, so an image is degraded the same way in any run, process or thread.

Kinds: *photometric* (albumentations' filters; the pixels stay where they are), *resolution*
(the whole image smaller, as from a distant camera, not upscaled back), *geometric* (the exact
affine map from original to new pixels comes with the image; empty canvas is black, so no
mirrored face appears in it), *occlusion* (a patch placed from the clean image's 5 landmarks).
"""
from __future__ import annotations

import hashlib
import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from face_alignment import ARCFACE_TEMPLATE, CROP_SIZE
from face_alignment.errors import FaceBenchError

from .conditions import CLEAN, Conditioned, ImageCondition

PHOTOMETRIC, RESOLUTION, GEOMETRIC, OCCLUSION = "photometric", "resolution", "geometric", "occlusion"
SEVERITIES = range(1, 6)
#: the display gamma that relates pixel values to light (sRGB is close to it)
GAMMA = 2.2
#: a light surgical-mask blue (RGB)
MASK_COLOUR = (185, 205, 225)


class ConditionError(FaceBenchError):
    """An unknown condition or severity, a bad ``--conditions`` value, missing landmarks."""


@dataclass(frozen=True)
class ConditionSpec:
    """One condition: its ``parameter`` in ``unit`` takes ``values[severity - 1]``; ``draw`` says
    what is drawn per image (empty: nothing). ``function(image, value, seed)`` gives the
    :class:`Conditioned` image; an occlusion's takes the 5 landmarks in place of the seed."""

    name: str
    kind: str
    parameter: str
    unit: str
    values: tuple[float, float, float, float, float]
    function: Callable[..., Conditioned]
    draw: str = ""


_IMPORT_LOCK = threading.Lock()


def _albumentations():
    """albumentations, imported on first use without its update check (a PyPI request at each
    import) and without ``albumentations.pytorch``, which imports torch (seconds, hundreds of MB)
    wherever torch is installed; none of its torch transforms is used here."""
    with _IMPORT_LOCK:
        if "albumentations" not in sys.modules:
            os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
            sys.modules["albumentations.pytorch"] = None  # its package imports it inside suppress(ImportError)
            try:
                import albumentations
            finally:
                del sys.modules["albumentations.pytorch"]
        import albumentations
    return albumentations


def _run(transform, image: np.ndarray, seed: int) -> np.ndarray:
    """``transform`` (made for this call: the pipeline decodes in threads) applied with ``seed``."""
    transform.set_random_seed(seed)
    return transform(image=image)["image"]


def _gaussian_noise(image: np.ndarray, std: float, seed: int) -> Conditioned:
    """Independent noise in each pixel and channel (albumentations draws it with OpenCV from a
    16-bit seed it draws from ours, and truncates it toward zero: ~0.4 grey levels less std)."""
    noise = _albumentations().GaussNoise(std_range=(std / 255, std / 255), mean_range=(0, 0), per_channel=True,
                                         noise_scale_factor=1, p=1)
    return Conditioned(_run(noise, image, seed))


def _motion_blur(image: np.ndarray, length: float, seed: int) -> Conditioned:
    """A straight streak of ``length`` pixels through each point, at a drawn angle, centred (an
    off-centre kernel would shift the image)."""
    blur = _albumentations().MotionBlur(blur_limit=(int(length), int(length)), angle_range=(0, 180),
                                        direction_range=(0, 0), allow_shifted=False, p=1)
    return Conditioned(_run(blur, image, seed))


def _gaussian_blur(image: np.ndarray, sigma: float, seed: int) -> Conditioned:
    blur = _albumentations().GaussianBlur(sigma_limit=(sigma, sigma), blur_limit=0, p=1)
    return Conditioned(_run(blur, image, seed))


def _jpeg(image: np.ndarray, quality: float, seed: int) -> Conditioned:
    """A JPEG round trip of the RGB image: albumentations hands the array to OpenCV, which reads
    it as BGR, so it is given BGR (else the luma would mix swapped red and blue)."""
    jpeg = _albumentations().ImageCompression(compression_type="jpeg", quality_range=(int(quality), int(quality)), p=1)
    bgr = _run(jpeg, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), seed)
    return Conditioned(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def _exposure(image: np.ndarray, stops: float, seed: int) -> Conditioned:
    """Light times ``2 ** stops``: pixel values times ``2 ** (stops / GAMMA)``, clipped at 255.
    (albumentations' brightness/contrast computes ``alpha * x + beta``; alpha is 1 + contrast.)"""
    gain = 2.0 ** (stops / GAMMA)
    exposure = _albumentations().RandomBrightnessContrast(brightness_limit=(0, 0), contrast_limit=(gain - 1, gain - 1),
                                                          p=1)
    return Conditioned(_run(exposure, image, seed))


def _low_contrast(image: np.ndarray, kept: float, seed: int) -> Conditioned:
    """Each pixel's distance to the image's mean value times ``kept``: ``kept * x + (1 - kept) *
    mean`` (``brightness_by_max=False`` makes the added term a fraction of the mean)."""
    contrast = _albumentations().RandomBrightnessContrast(brightness_limit=(1 - kept, 1 - kept),
                                                          contrast_limit=(kept - 1, kept - 1),
                                                          brightness_by_max=False, p=1)
    return Conditioned(_run(contrast, image, seed))


def _area_resize(image: np.ndarray, factor: float) -> Conditioned:
    """``image`` resized by ``factor`` (rounded to whole pixels) with pixel-area averaging. In
    pixel-centre coordinates ``cv2.resize`` maps ``x`` to ``(x + 0.5) * sx - 0.5``, with ``sx``
    the real ratio of the sizes."""
    h, w = image.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    sx, sy = size[0] / w, size[1] / h
    matrix = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]])
    return Conditioned(cv2.resize(image, size, interpolation=cv2.INTER_AREA), matrix)


def _downscale(image: np.ndarray, factor: float, seed: int) -> Conditioned:
    return _area_resize(image, factor)


def _rotation(image: np.ndarray, degrees: float, seed: int) -> Conditioned:
    """Rotated by ``degrees`` (the sign drawn) about its centre onto a canvas just large enough
    to hold all of it, bilinear."""
    h, w = image.shape[:2]
    angle = degrees * np.random.default_rng(seed).choice((-1, 1))
    cos, sin = abs(np.cos(np.radians(angle))), abs(np.sin(np.radians(angle)))
    size = (int(np.ceil(w * cos + h * sin - 1e-6)), int(np.ceil(w * sin + h * cos - 1e-6)))
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), float(angle), 1.0)
    matrix[:, 2] += ((size[0] - w) / 2, (size[1] - h) / 2)  # the centre goes to the canvas's centre
    rotated = cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=0)
    return Conditioned(rotated, matrix)


def _small_offcentre(image: np.ndarray, factor: float, seed: int) -> Conditioned:
    """Scaled by ``factor`` and pasted, at a whole-pixel offset, into a black canvas of the
    original size, as far from its centre as the canvas allows in a drawn direction."""
    small = _area_resize(image, factor)
    (h, w), (sh, sw) = image.shape[:2], small.image.shape[:2]
    direction = np.random.default_rng(seed).uniform(0, 2 * np.pi)
    left, top = round((w - sw) / 2 * (1 + np.cos(direction))), round((h - sh) / 2 * (1 + np.sin(direction)))
    canvas = np.zeros_like(image)
    canvas[top:top + sh, left:left + sw] = small.image
    return Conditioned(canvas, small.matrix + [[0, 0, left], [0, 0, top]])


def fallback_landmarks(shape: tuple[int, ...]) -> np.ndarray:
    """Where an occluder goes without the clean image's landmarks: the ArcFace template scaled to
    the central square of half the shorter side (on 250x250 LFW images, within 10 px of the
    median YuNet points: the template's crop sits a little lower than LFW's framing)."""
    h, w = shape[:2]
    return (ARCFACE_TEMPLATE / CROP_SIZE - 0.5) * (min(h, w) / 2) + ((w - 1) / 2, (h - 1) / 2)


def _face_polygon(points: np.ndarray, corners: list[tuple[float, float]]) -> np.ndarray:
    """``corners`` given as (across, down) in the face's own frame: across in eye-to-eye vectors
    from the eyes' midpoint, down in eye-midpoint-to-mouth-midpoint vectors."""
    eyes, mouth = points[:2].mean(0), points[3:].mean(0)
    across, down = points[1] - points[0], mouth - eyes
    return np.array([eyes + a * across + d * down for a, d in corners])


def _coverage(shape: tuple[int, ...], polygon: np.ndarray) -> np.ndarray:
    """The HxWx1 fraction of each pixel inside ``polygon`` (anti-aliased edges)."""
    canvas = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(canvas, np.round(polygon * 16).astype(np.int32), 255, cv2.LINE_AA, shift=4)
    return canvas[..., None].astype(np.float32) / 255


def _mask_occlusion(image: np.ndarray, top: float, points: np.ndarray) -> Conditioned:
    """An opaque mask-coloured patch 2.2 eye distances wide from ``top`` eye-to-mouth distances
    below the eye line down to twice that distance (past the chin)."""
    cover = _coverage(image.shape, _face_polygon(points, [(-1.1, top), (1.1, top), (1.1, 2.0), (-1.1, 2.0)]))
    blended = image * (1 - cover) + np.array(MASK_COLOUR, np.float32) * cover
    return Conditioned(np.rint(blended).astype(np.uint8))


def _sunglasses(image: np.ndarray, transmission: float, points: np.ndarray) -> Conditioned:
    """A band over both eyes (0.45 eye distances beyond each eye, 0.3 eye-to-mouth distances
    above and below them) that lets ``transmission`` % of the light through."""
    cover = _coverage(image.shape, _face_polygon(points, [(-0.95, -0.3), (0.95, -0.3), (0.95, 0.3), (-0.95, 0.3)]))
    gain = (transmission / 100) ** (1 / GAMMA)
    return Conditioned(np.rint(image * (1 - cover * (1 - gain))).astype(np.uint8))


CONDITIONS: dict[str, ConditionSpec] = {spec.name: spec for spec in (
    ConditionSpec("gaussian_noise", PHOTOMETRIC, "noise std", "grey levels of 255", (10, 20, 30, 45, 60),
                  _gaussian_noise, "noise pattern"),
    ConditionSpec("motion_blur", PHOTOMETRIC, "streak length", "px", (5, 9, 13, 19, 25), _motion_blur, "angle"),
    ConditionSpec("gaussian_blur", PHOTOMETRIC, "blur sigma", "px", (1, 2, 3, 4, 6), _gaussian_blur),
    ConditionSpec("jpeg", PHOTOMETRIC, "JPEG quality", "1-100", (30, 20, 15, 10, 5), _jpeg),
    ConditionSpec("underexposure", PHOTOMETRIC, "exposure", "EV (stops)", (-1, -2, -3, -4, -5), _exposure),
    ConditionSpec("overexposure", PHOTOMETRIC, "exposure", "EV (stops)", (0.5, 1, 1.5, 2, 2.5), _exposure),
    ConditionSpec("low_contrast", PHOTOMETRIC, "contrast kept", "fraction", (0.5, 0.35, 0.25, 0.15, 0.1),
                  _low_contrast),
    ConditionSpec("downscale", RESOLUTION, "scale factor (LFW's ~100 px face: 100x px)", "x",
                  (0.6, 0.4, 0.28, 0.2, 0.12), _downscale),
    ConditionSpec("rotation", GEOMETRIC, "in-plane angle", "degrees", (15, 30, 45, 60, 90), _rotation, "sign"),
    ConditionSpec("small_offcentre", GEOMETRIC, "scale factor, in a same-size canvas", "x",
                  (0.7, 0.55, 0.45, 0.35, 0.25), _small_offcentre, "direction"),
    ConditionSpec("mask_occlusion", OCCLUSION, "mask top below the eye line", "eye-to-mouth distances",
                  (0.8, 0.65, 0.5, 0.35, 0.2), _mask_occlusion),
    ConditionSpec("sunglasses", OCCLUSION, "lens transmission", "%", (60, 30, 12, 5, 0), _sunglasses),
)}

#: ``--conditions quick``: one condition per physical cause (optics, sensor, light, distance,
#: pose, an occluder) at severities 1, 3 and 5
QUICK = ("gaussian_blur", "gaussian_noise", "underexposure", "downscale", "rotation", "mask_occlusion")
QUICK_SEVERITIES = (1, 3, 5)


class Degradation(ImageCondition):
    """A catalogue condition at one severity (see :func:`make_condition`)."""

    def __init__(self, spec: ConditionSpec, severity: int, landmarks: Mapping[str, np.ndarray] | None = None):
        self.spec, self.severity, self.landmarks = spec, severity, landmarks
        self.value = spec.values[severity - 1]
        self.name = f"{spec.name}:{severity}"

    def seed(self, key: str) -> int:
        """The seed of this condition on the image ``key``: the same in every process."""
        return int.from_bytes(hashlib.sha256(f"{self.name}\n{key}".encode()).digest()[:8], "big")

    def points(self, image: np.ndarray, key: str) -> np.ndarray:
        """The clean image's 5 landmarks for ``key``, or :func:`fallback_landmarks` where it has none."""
        points = self.landmarks.get(key)
        if points is not None and np.isfinite(points).all():
            return np.asarray(points, np.float64).reshape(5, 2)
        return fallback_landmarks(image.shape)

    def apply(self, image: np.ndarray, key: str) -> Conditioned:
        if self.spec.kind == OCCLUSION:
            return self.spec.function(image, self.value, self.points(image, key))
        return self.spec.function(image, self.value, self.seed(key))


def _spec(name: str) -> ConditionSpec:
    if name not in CONDITIONS:
        raise ConditionError(f"unknown condition {name!r}; choose from: {', '.join(CONDITIONS)}")
    return CONDITIONS[name]


def make_condition(name: str, severity: int, landmarks: Mapping[str, np.ndarray] | None = None) -> ImageCondition:
    """The condition ``name`` at ``severity`` (1-5; 0 is :data:`CLEAN`). An occlusion needs
    ``landmarks``: image key -> the clean image's (5, 2) points in its pixels, image-left eye
    first; a key without them (or with NaN) gets :func:`fallback_landmarks`."""
    spec = _spec(name)
    if isinstance(severity, bool) or not isinstance(severity, int | np.integer) or not 0 <= severity <= 5:
        raise ConditionError(f"severity of {name} must be an integer from 0 (clean) to 5, not {severity!r}")
    if severity == 0:
        return CLEAN
    if spec.kind == OCCLUSION and landmarks is None:
        raise ConditionError(f"{name} is placed from the clean image's landmarks: pass landmarks "
                             "(image key -> (5, 2) points); an empty mapping uses the fallback placement")
    return Degradation(spec, int(severity), landmarks)


def _severities(text: str, item: str) -> list[int]:
    low, dash, high = text.partition("-")
    try:
        first, last = int(low), int(high if dash else low)
    except ValueError:
        raise ConditionError(f"{item!r}: the severity must be a number or a range such as 1-5") from None
    if not 0 <= first <= last <= 5:
        raise ConditionError(f"{item!r}: severities run from 0 (clean) to 5")
    return list(range(first, last + 1))


def parse_conditions(spec: str) -> list[tuple[str, int]]:
    """``--conditions``: ``quick`` (:data:`QUICK` at 1, 3, 5), ``all`` (every condition at 1-5)
    or ``NAME:SEVERITY,...`` where a severity may be a range ``1-5``; in order, without repeats."""
    text = spec.strip()
    if text == "quick":
        return [(name, severity) for name in QUICK for severity in QUICK_SEVERITIES]
    if text == "all":
        return [(name, severity) for name in CONDITIONS for severity in SEVERITIES]
    chosen: list[tuple[str, int]] = []
    for item in text.split(","):
        name, colon, severities = item.strip().partition(":")
        if not colon:
            raise ConditionError(f"{item.strip()!r}: expected quick, all or NAME:SEVERITY[,...] "
                                 f"(e.g. rotation:1-5,jpeg:3); names: {', '.join(CONDITIONS)}")
        _spec(name)
        chosen += [(name, s) for s in _severities(severities, item.strip()) if (name, s) not in chosen]
    return chosen


def conditions_table() -> str:
    """A Markdown table of every condition: kind, parameter, unit, the five values, what is drawn."""
    rows = ["| condition | kind | parameter | unit | 1 | 2 | 3 | 4 | 5 | drawn per image |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for spec in CONDITIONS.values():
        values = " | ".join(f"{value:g}" for value in spec.values)
        rows.append(f"| `{spec.name}` | {spec.kind} | {spec.parameter} | {spec.unit} | {values} | {spec.draw or '-'} |")
    return "\n".join(rows)
