"""The plain loop that ``facebench speed`` measures the whole product against: what a user would
write without this suite. Each image decoded, detected (YuNet) and aligned in turn, each batch of
64 crops embedded with PyTorch when it fills, nothing overlapped; then the LFW protocol's score.

``python -m benchmark.plain_loop [--max-pairs N]`` runs it (imports and model loading included,
as in the command it is compared with) and prints ``accuracy A`` on its last line."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .run.cache import UNREADABLE, MethodResults
from .run.pipeline import safe_load

EMBED_BATCH = 64


def sequential_pass(images: list[str], root: Path, cropper, embedder, results: MethodResults) -> MethodResults:
    """The plain loop the pipeline is measured against: each image decoded, detected and aligned
    in turn, each batch of 64 crops embedded when it fills; nothing overlaps."""
    pending: list[tuple[int, object]] = []

    def embed_pending() -> None:
        embeddings = embedder.embed(np.stack([o.crop for _, o in pending]))
        for (i, outcome), embedding in zip(pending, embeddings):
            results.embeddings[i], results.status[i] = embedding, outcome.status
            results.landmarks[i], results.scores[i] = outcome.landmarks, outcome.score
        pending.clear()

    for i, rel in enumerate(images):
        image, error = safe_load(root / rel)
        if image is None:
            results.status[i], results.reasons[i] = UNREADABLE, error
            continue
        pending.append((i, cropper([image])[0]))
        if len(pending) == EMBED_BATCH:
            embed_pending()
    if pending:
        embed_pending()
    return results


def main(argv: list[str] | None = None) -> float:
    from backbones import create_embedder
    from face_alignment import create_detector

    from .protocol.lfw import lfw_protocol
    from .protocol.scores import summarize
    from .run.cropping import detector_cropper

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lfw-dir")
    parser.add_argument("--weights-dir")
    parser.add_argument("--max-pairs", type=int, help="a subset spread over the folds (default: all 6,000)")
    args = parser.parse_args(argv)
    protocol = lfw_protocol(args.lfw_dir, max_pairs=args.max_pairs)  # the subset the command's --max-pairs takes
    pairs = protocol.pairs
    cropper = detector_cropper(create_detector("yunet", device="cpu", weights_dir=args.weights_dir))
    embedder = create_embedder("torch", weights_dir=args.weights_dir, device="cpu", batch_size=EMBED_BATCH)
    results = sequential_pass(pairs.images, protocol.image_root, cropper, embedder,
                              MethodResults.empty(len(pairs.images)))
    accuracy = summarize(results.score(pairs))["accuracy"]
    print(f"accuracy {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
