"""A finished cell read back without building anything: the index from a cell's declared identity
to its cache.

A cell's cache (:class:`~.cache.ShardCache`) is named by a key over what really produced it: the
sha256 of the weights files it loaded, the devices its detector and embedder really ran on, the
code of their classes. Those facts need the models built, which a rerun over a complete cache
would do for nothing (seconds per method, the process spawn included). So a cell that completes
also writes an index entry, named by its *declared* identity: everything that can be known
before building (the weights' sha256 as their :class:`~face_alignment.weights.WeightSpec` and the
run's meta declare them, the device asked for, the source of the suite's packages, the library
versions, the images, the condition, the alignment). A rerun looks the identity up, finds the
folder, and scores its results in the parent (:func:`cached_row`).

The identity is deliberately broader than the cache key: any change to the suite's code gives a
new one, so the first rerun after it takes the slow path once, which reads the cache it finds
under the real key and writes the new entry. A run that may load files the declarations do not
vouch for (unverified weights allowed, an explicit embedder weights file, INT8 calibration) has
no identity and always takes the slow path.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from backbones import embedder_spec
from face_alignment.atomic import atomic_path
from face_alignment.registry import get_method

from ..protocol.base import REFERENCE, VerificationProtocol
from ..protocol.conditions import CLEAN, ImageCondition
from .cache import MethodResults, ShardCache, cache_key
from .cropping import code_version

log = logging.getLogger(__name__)

#: where the index entries are, under a run folder's ``cache``
INDEX_FOLDER = "cells"
#: the row fields a cell learns only by building its models, kept in its index entry (NVML's
#: peak: the reason it was not measured, where it was not)
BUILT_FACTS = ("detector_model", "detector_device", "embedder_device", "device", "tf32", "detector_weights_sha256",
               "peak_gpu_nvml_mb")


@cache
def source_version() -> str:
    """A sha256 over every Python file of the suite's packages (``face_alignment``, ``backbones``,
    ``benchmark``): the code that aligns, embeds, detects and runs."""
    import backbones
    import benchmark
    import face_alignment

    digest = hashlib.sha256()
    for package in (face_alignment, backbones, benchmark):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*.py")):
            digest.update(f"{package.__name__}/{path.relative_to(root)}".encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def declared_identity(method: str, config, protocol: VerificationProtocol, meta: dict, images: Sequence[str],
                      condition: ImageCondition = CLEAN, **key_parts) -> str | None:
    """The declared identity of ``method``'s cell under ``config`` (its embedder, backend,
    precision, alignment) and ``meta`` (:func:`~.runner.prepare_run`'s), over ``images`` under
    ``condition``; None where declarations cannot vouch for the files the cell would load."""
    if config.allow_unverified_weights or config.embedder_weights or config.precision == "int8":
        return None
    spec = embedder_spec(config.embedder_model)
    if method == REFERENCE:
        detector, root, align = {}, protocol.reference_dir, "similarity"
    else:
        info = get_method(method)
        detector = {"code": code_version(info.factory, protocol.pick_face),
                    "weights": sorted(s.sha256 for s in info.weights + info.optional_weights)}
        root, align = protocol.image_root, config.align
    return cache_key(kind="declared cell", source=source_version(), method=method, detector=detector,
                     embedder=meta["embedder_sha256"], embedder_code=code_version(spec.build),
                     embedder_input=spec.model_input.key(), backend=meta["embedder_backend"],
                     precision=config.precision, quantized=config.quantized, flip=config.flip, device=meta["device"],
                     versions=meta["versions"], root=str(Path(root).resolve()), images=list(images),
                     condition=condition.name, align=align, **key_parts)


class CellIndex:
    """The index entries of a cache folder (``<out>/cache``, or ``--cache-dir``):
    ``<cache>/cells/<identity>.json``, each naming a cell's cache folder and its :data:`BUILT_FACTS`."""

    def __init__(self, cache: Path) -> None:
        self.folder = Path(cache) / INDEX_FOLDER

    def record(self, identity: str | None, cache: ShardCache, row: dict) -> None:
        """Note that the complete ``cache`` is the cell ``identity`` (None: nothing to note)."""
        if identity is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        entry = {"cache": cache.folder.name, "facts": {name: row[name] for name in BUILT_FACTS if name in row}}
        with atomic_path(self.folder / f"{identity[:32]}.json") as tmp:
            tmp.write_text(json.dumps(entry))

    def lookup(self, identity: str | None, n: int, dim: int) -> tuple[MethodResults, dict] | None:
        """The complete results of the cell ``identity`` over ``n`` images and its built facts, or
        None (no entry, or its cache is gone or incomplete)."""
        path = self.folder / f"{identity[:32]}.json" if identity else None
        if path is None or not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text())
            folder, facts = self.folder.parent / entry["cache"], dict(entry["facts"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring the unreadable cache index entry %s (%s: %s)", path, type(exc).__name__, exc)
            return None
        results = ShardCache(folder).load(n, dim) if folder.is_dir() else None
        if results is None or results.done < n:
            return None
        return results, facts
