"""EdgeFace exported to ONNX (opset 17, dynamic batch), cached by the checkpoint's sha256.

The export starts from the float model of :func:`~backbones.edgeface.load_edgeface` (a ``*_q.pt``
checkpoint dequantized), so the ONNX model computes what the PyTorch embedder computes: input
``input`` ``(N, 3, 112, 112)`` float32 RGB in ``(x/255 - 0.5) / 0.5``, output ``embedding``
``(N, 512)`` float32, not normalised. It uses torch's TorchScript exporter (``dynamo=False``):
the newer dynamo exporter needs ``onnxscript``, which this project does not depend on, and the
TorchScript graph of EdgeNeXt has been checked here for parity (see ``tests/test_onnx_embedder.py``).

Files are written through a temporary file and ``os.replace``, so a crash or a concurrent run
never leaves half a model under the cache name.
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from face_alignment.atomic import atomic_path
from face_alignment.errors import FaceBenchError
from face_alignment.weights import sha256_file

log = logging.getLogger(__name__)

OPSET = 17
#: bumped when the exported graph changes, so that older cached files are not reused
EXPORT_VERSION = 1
INPUT_NAME, OUTPUT_NAME = "input", "embedding"
CROP_SHAPE = (3, 112, 112)


def default_cache_dir() -> Path:
    """Where exported and quantized models are kept: ``$XDG_CACHE_HOME/facebench/onnx``
    (``~/.cache/facebench/onnx`` when unset), outside the repository."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "facebench" / "onnx"


def export_onnx(weights: str | os.PathLike, dest: str | os.PathLike, opset: int = OPSET) -> Path:
    """Export the float EdgeFace model of checkpoint ``weights`` to ``dest`` (atomically) and
    check the file with ``onnx.checker``."""
    import onnx
    import torch

    from .edgeface import load_edgeface

    dest = Path(dest)
    model = load_edgeface(weights).eval()
    example = torch.zeros((2, *CROP_SHAPE))
    with atomic_path(dest) as tmp, torch.inference_mode(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*TorchScript-based ONNX export.*")
        batch_axis = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
        torch.onnx.export(model, (example,), str(tmp), opset_version=opset, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], dynamic_axes=batch_axis, do_constant_folding=True, dynamo=False)
        onnx.checker.check_model(str(tmp))
    log.info("exported %s to %s (opset %d, dynamic batch)", weights, dest, opset)
    return dest


def onnx_model_path(weights: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """The ONNX export of checkpoint ``weights``, exported on first use into ``cache_dir``
    (default :func:`default_cache_dir`) under a name carrying the checkpoint's sha256."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    dest = cache / f"edgeface-{sha256_file(weights)[:16]}-opset{OPSET}-v{EXPORT_VERSION}.onnx"
    if dest.is_file():
        return dest
    try:
        return export_onnx(weights, dest)
    except OSError as exc:
        raise FaceBenchError(f"cannot write the ONNX model to {cache} ({exc.strerror or exc}): make it writable "
                             "or point $XDG_CACHE_HOME elsewhere") from exc
