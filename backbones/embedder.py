"""Batched face embedding: aligned 112x112 RGB crops in, L2-normalised 512-d vectors out.

Three backends compute the same float model: PyTorch (:class:`Embedder`, the reference), ONNX
Runtime and OpenVINO (:mod:`backbones.onnx_embedder`, on the model of
:mod:`backbones.onnx_export`). :func:`create_embedder` builds any of them by backend and
precision; all share :meth:`BaseEmbedder.embed`.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from face_alignment.errors import FaceBenchError
from face_alignment.runtime import resolve_device
from face_alignment.weights import resolve_weights, sha256_file

from .edgeface import load_edgeface

log = logging.getLogger(__name__)

DEFAULT_EMBEDDER = "edgeface_xs_q"
BACKENDS = ("torch", "onnx", "openvino")
PRECISIONS = ("fp32", "fp16", "int8")
CROP_SHAPE = (112, 112, 3)


def preprocess(crops: np.ndarray) -> np.ndarray:
    """``(N, 112, 112, 3)`` uint8 RGB -> ``(N, 3, 112, 112)`` float32 ``(x / 255 - 0.5) / 0.5``,
    the same operations in the same order as the PyTorch path, so that the inputs are identical."""
    x = crops.transpose(0, 3, 1, 2).astype(np.float32)
    x /= 255.0
    x -= 0.5
    x /= 0.5
    return x


class BaseEmbedder:
    """Batching, flip test-time augmentation and normalisation, shared by every backend.

    Input: ``(N, 112, 112, 3)`` uint8 RGB. With ``flip=True`` an image's embedding is that of
    the image plus that of its horizontal mirror (insightface's test-time augmentation),
    normalised after the sum. Subclasses implement :meth:`_forward` on one batch.
    """

    backend = ""

    def __init__(self, device: str, batch_size: int, name: str, weights_path: Path | None, precision: str) -> None:
        self.device = device
        self.batch_size = batch_size
        self.name = name
        self.weights_path = weights_path
        self.precision = precision

    @property
    def weights_sha256(self) -> str:
        return sha256_file(self.weights_path) if self.weights_path else ""

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        """One batch of uint8 crops -> ``(n, 512)`` float32 raw (not normalised) embeddings."""
        raise NotImplementedError

    def embed(self, crops: np.ndarray, flip: bool = False) -> np.ndarray:
        """``(N, 112, 112, 3)`` uint8 RGB -> ``(N, 512)`` float32, unit L2 norm."""
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != CROP_SHAPE:
            raise ValueError(f"expected (N, 112, 112, 3) uint8 RGB crops, got {crops.shape}")
        out = []
        for start in range(0, len(crops), self.batch_size):
            batch = np.ascontiguousarray(crops[start:start + self.batch_size])
            emb = self._forward(batch)
            if flip:
                emb = emb + self._forward(np.ascontiguousarray(batch[:, :, ::-1]))
            out.append(np.asarray(emb, dtype=np.float32))
        if not out:
            return np.zeros((0, 512), dtype=np.float32)
        emb = np.concatenate(out)
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.backend}, {self.precision}, device={self.device!r})"


class Embedder(BaseEmbedder):
    """Embeds aligned crops in batches with a PyTorch model (preprocessing on its device);
    ``precision="fp16"`` runs the model in half precision (CUDA only)."""

    backend = "torch"

    def __init__(self, model: torch.nn.Module, device: str = "auto", batch_size: int = 64,
                 name: str = "edgeface", weights_path: Path | None = None, precision: str = "fp32") -> None:
        device = resolve_device(device)
        if precision not in ("fp32", "fp16"):
            raise FaceBenchError(f"the torch embedder runs fp32 or fp16, not {precision!r}; int8 runs on "
                                 "--embedder onnx or openvino (or --quantized for the released qint8 model)")
        if precision == "fp16" and not device.startswith("cuda"):
            raise FaceBenchError("fp16 needs a CUDA device (--device cuda); on the CPU use fp32")
        super().__init__(device, batch_size, name, weights_path, precision)
        self.model = model.to(self.device).eval()
        self._dtype = torch.float16 if precision == "fp16" else torch.float32
        if precision == "fp16":
            self.model.half()

    @classmethod
    def from_weights(cls, name: str = DEFAULT_EMBEDDER, path=None, weights_dir=None, device: str = "auto",
                     batch_size: int = 64, quantized: bool = False, precision: str = "fp32") -> Embedder:
        """An EdgeFace embedder from a manifest name (``edgeface_xs_q``, ``edgeface_xxs_q``) or
        an explicit checkpoint ``path``; ``quantized=True`` keeps qint8 (CPU, batch-dependent)."""
        weights = resolve_weights(name, path, weights_dir)
        device = "cpu" if quantized else device
        model = load_edgeface(weights, quantized=quantized)
        return cls(model, device, batch_size, embedder_label(name, path, quantized), weights, precision)

    @torch.inference_mode()
    def _forward(self, crops: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).float().div_(255.0).sub_(0.5).div_(0.5)
        return self.model(x.to(self._dtype)).float().cpu().numpy()


def embedder_label(name: str, path, quantized: bool = False) -> str:
    """The report's ``embedder`` value: the manifest name, or an explicit file's stem."""
    return f"{name}{'-qint8' if quantized else ''}" if path is None else Path(path).stem


def create_embedder(backend: str = "torch", precision: str = "fp32", name: str = DEFAULT_EMBEDDER, path=None,
                    weights_dir=None, device: str = "auto", batch_size: int = 64, quantized: bool = False,
                    calibration=None, cache_dir=None, tensorrt: bool = False,
                    threads: int | None = None) -> BaseEmbedder:
    """An embedder of ``backend`` (:data:`BACKENDS`) at ``precision`` (:data:`PRECISIONS`).

    ``onnx`` and ``openvino`` run the ONNX export of the checkpoint (cached under ``cache_dir``,
    :func:`~backbones.onnx_export.default_cache_dir` by default); their ``int8`` is the static
    INT8 model of :func:`~backbones.quantize.static_int8_model`, which needs ``calibration``
    (a :class:`~backbones.quantize.Calibration`). ``quantized`` is the torch backend's qint8 option;
    ``tensorrt=True`` lets onnxruntime try TensorRT before CUDA (opt-in: it first builds an engine per input shape).
    ``threads``: the onnx / openvino runtime's threads per call (0: every core; default: half the
    cores for onnx, made for the pipelined runner's two embedding workers, every core for openvino);
    PyTorch's threads are process-wide (``torch.set_num_threads``), so the torch backend ignores it.
    """
    if backend not in BACKENDS:
        raise FaceBenchError(f"unknown embedder backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise FaceBenchError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if backend == "torch":
        return Embedder.from_weights(name, path, weights_dir, device, batch_size, quantized, precision)
    if quantized:
        raise FaceBenchError("--quantized keeps the released qint8 PyTorch model: it needs --embedder torch "
                             "(for INT8 on ONNX Runtime or OpenVINO use --precision int8)")
    from .onnx_embedder import runtime_embedder

    return runtime_embedder(backend, precision, resolve_weights(name, path, weights_dir), embedder_label(name, path),
                            device, batch_size, calibration, cache_dir, tensorrt, threads)
