"""dlib's own face recognition pipeline on LFW, to read the suite's ``dlib`` + ``dlib_resnet`` cell
against: ``python -m benchmark.dlib_reference [--max-pairs N]``.

As dlib's ``face_recognition.py`` example does it: the HOG frontal detector (one upsampling), the
5-point shape predictor, ``dlib.get_face_chip(image, shape, 150, 0.25)`` and the ResNet's 128-d
descriptor (no jitter), all from the ``face_recognition_models`` wheel; the target face of an image
is the one the suite picks (the largest whose box holds the image centre). A face not found has no descriptor: its
pairs are decided "different", so the accuracy printed is the strict one (with the fraction of
images found beside it). Scored with the suite's protocol (10 folds, insightface's threshold rule).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from face_alignment import Face, load_image, pick_target_face
from face_alignment.detectors.dlib import model_file

from .protocol.lfw import lfw_protocol
from .protocol.scores import pair_scores, summarize

CHIP_SIZE, CHIP_PADDING, UPSAMPLE = 150, 0.25, 1


def target(detections, shape: tuple[int, ...]):
    """The detection the suite's rule picks (:func:`~face_alignment.pick_target_face`: the largest
    face whose box holds the image centre, else the largest), or None."""
    faces = [Face((r.left(), r.top(), r.right(), r.bottom()), 1.0, np.zeros((5, 2))) for r in detections]
    chosen = pick_target_face(faces, shape)
    return None if chosen is None else detections[next(i for i, f in enumerate(faces) if f is chosen)]


def run(lfw_dir=None, max_pairs: int | None = None, batch: int = 64) -> dict:
    """Embed every image of the LFW protocol with dlib's pipeline and score its pairs; returns the
    report's metrics with ``success_rate`` and ``ms_per_image`` (detect, shape, chip, descriptor)."""
    import dlib

    protocol = lfw_protocol(lfw_dir, max_pairs=max_pairs)
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(model_file("shape_predictor_5_face_landmarks.dat")))
    network = dlib.face_recognition_model_v1(str(model_file("dlib_face_recognition_resnet_model_v1.dat")))
    images = protocol.pairs.images
    embeddings = np.full((len(images), 128), np.nan, np.float32)
    chips, where = [], []
    started = time.perf_counter()
    for i, name in enumerate(images):
        image = load_image(protocol.image_root / name)
        face = target(list(detector(image, UPSAMPLE)), image.shape)
        if face is not None:
            chips.append(dlib.get_face_chip(image, predictor(image, face), CHIP_SIZE, CHIP_PADDING))
            where.append(i)
        if len(chips) == batch or (i == len(images) - 1 and chips):
            embeddings[where] = np.array(network.compute_face_descriptor(chips), np.float32)
            chips, where = [], []
    seconds = time.perf_counter() - started
    found = ~np.isnan(embeddings[:, 0])
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    metrics = summarize(pair_scores(embeddings, found, protocol.pairs))
    return {**metrics, "success_rate": float(found.mean()), "ms_per_image": 1000 * seconds / len(images),
            "n_pairs": len(protocol.pairs), "n_images": len(images)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.dlib_reference", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw-dir", help="LFW root (default: as facebench finds it)")
    parser.add_argument("--max-pairs", type=int, help="a subset spread over the 10 folds (as facebench --max-pairs)")
    args = parser.parse_args(argv)
    result = run(args.lfw_dir, args.max_pairs)
    print(f"dlib's own pipeline (HOG, 5-point predictor, get_face_chip, ResNet): {result['n_pairs']} pairs over "
          f"{result['n_images']} images; accuracy (strict: no face, no match) {result['accuracy']:.4f} ± "
          f"{result['accuracy_std']:.4f}, on pairs both found {result['accuracy_found']:.4f}, found "
          f"{result['success_rate']:.4f}, {result['ms_per_image']:.1f} ms per image")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
