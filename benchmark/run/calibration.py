"""Calibration crops for the static INT8 embedder: LFW images of people who are in none of the
evaluated pairs, aligned as the benchmark aligns (YuNet, target face, ArcFace template).

No calibration image shows a person of the test pairs, so calibrating cannot leak test faces
into the quantized model. The images are spread evenly over the sorted list of candidates, so
the set is the same on every machine with the same LFW folder.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from backbones import Calibration
from face_alignment import create_detector, load_image
from face_alignment.errors import DatasetError, ImageError

from ..protocol.lfw import IMAGE_SUFFIXES, lfw_protocol
from ..protocol.pairs import PairList
from .cache import FOUND
from .cropping import detector_cropper

log = logging.getLogger(__name__)

CALIBRATION_IMAGES = 256
#: names how the calibration crops are made: part of the quantized model's cache name
RECIPE = "yunet-target-arcface-v1"


def calibration_images(image_root: Path, pairs: PairList, count: int = CALIBRATION_IMAGES) -> list[str]:
    """``count`` image paths (relative to ``image_root``) of people absent from ``pairs``."""
    excluded = {Path(p).parts[0] for p in pairs.images}
    candidates = sorted(f"{person.name}/{f.name}" for person in Path(image_root).iterdir()
                        if person.is_dir() and person.name not in excluded
                        for f in person.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not candidates:
        raise DatasetError(f"no image under {image_root} of a person outside the evaluated pairs to calibrate "
                           "INT8 on; use --precision fp32, or an LFW folder with the full image set")
    picks = np.unique(np.linspace(0, len(candidates) - 1, min(count, len(candidates))).round().astype(int))
    return [candidates[i] for i in picks]


def lfw_calibration(image_root: Path, pairs: PairList, weights_dir=None,
                    count: int = CALIBRATION_IMAGES) -> Calibration:
    """The :class:`~backbones.quantize.Calibration` of :func:`calibration_images`; the crops are
    detected and aligned only when a model has to be quantized (images without a face are left out)."""
    images = calibration_images(image_root, pairs, count)
    key = hashlib.sha256("\n".join([RECIPE, *images]).encode()).hexdigest()

    def load() -> np.ndarray:
        cropper = detector_cropper(create_detector("yunet", device="cpu", weights_dir=weights_dir))
        crops = []
        for rel in images:
            try:
                image = load_image(Path(image_root) / rel)
            except ImageError as exc:
                log.warning("calibration: skipping %s", exc)
                continue
            outcome = cropper([image])[0]
            if outcome.status == FOUND:
                crops.append(outcome.crop)
        log.info("calibration: %d crops from %d LFW images of people outside the test pairs", len(crops), len(images))
        return np.stack(crops) if crops else np.zeros((0, 112, 112, 3), np.uint8)

    return Calibration(key, load)


def run_calibration(config) -> Calibration:
    """The calibration set of a benchmark run (a :class:`~benchmark.run.runner.RunConfig`): people
    of its whole pairs file are excluded, not only those of a ``max_pairs`` subset, so that every
    run on the same data shares one INT8 model."""
    protocol = lfw_protocol(config.lfw_dir, config.pairs)
    return lfw_calibration(protocol.image_root, protocol.pairs, config.weights_dir)
