"""What every embedder backend shares, without torch: the precision and default model names,
and :class:`BaseEmbedder` (batching, flip, normalisation) over a model's declared input."""
from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from face_alignment.errors import FaceBenchError, MissingDependencyError
from face_alignment.runtime import device_name, resolve_device
from face_alignment.weights import sha256_file

from .spec import BACKENDS, DEFAULT_INPUT, EmbedderInput, EmbedderSpec

#: the registered embedder a run uses unless told otherwise (:mod:`backbones.builtin`)
DEFAULT_EMBEDDER = "edgeface_xs"
PRECISIONS = ("fp32", "fp16", "int8")
__all__ = ["BACKENDS", "DEFAULT_EMBEDDER", "PRECISIONS", "BaseEmbedder", "check_embedder", "embedder_label"]


def check_embedder(backend: str, precision: str, device: str, quantized: bool = False,
                   spec: EmbedderSpec | None = None) -> None:
    """Raise, before any model is loaded or exported, for a backend, precision and device that
    cannot run together here (or that the embedder ``spec`` does not run on); the message says
    what to use instead. ``auto`` is resolved (which imports torch) only for fp16."""
    if backend not in BACKENDS:
        raise FaceBenchError(f"unknown embedder backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if spec is not None and backend not in spec.backends:
        raise FaceBenchError(f"embedder {spec.name!r} runs on {', '.join(spec.backends)}, not {backend!r}: leave "
                             f"out --embedder (its default is {spec.default_backend}) or choose one of those")
    if backend == "dlib":
        if precision != "fp32" or quantized or device.startswith("cuda"):
            raise FaceBenchError("the dlib backend runs its model as dlib built it: fp32 on the CPU, without "
                                 "--quantized")
        return
    if precision not in PRECISIONS:
        raise FaceBenchError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if quantized and backend != "torch":
        raise FaceBenchError("--quantized keeps the released qint8 PyTorch model: it needs --embedder torch "
                             "(for INT8 on ONNX Runtime or OpenVINO use --precision int8)")
    if backend == "torch" and precision == "int8":
        raise FaceBenchError("the torch embedder runs fp32 or fp16, not int8; int8 runs on --embedder onnx or "
                             "openvino (or --quantized for the released qint8 model)")
    if precision == "fp16" and backend != "openvino" and not resolve_device(device).startswith("cuda"):
        raise FaceBenchError(f"--precision fp16 on --embedder {backend} needs a CUDA device (--device cuda); on the "
                             "CPU use fp32 (or --embedder openvino, whose fp16 runs on the CPU)")
    if backend == "openvino":
        if device.startswith("cuda"):
            raise FaceBenchError(f"the openvino embedder runs on the CPU, not {device!r}: use --embedder onnx or "
                                 "torch on a GPU")
        try:
            importlib.import_module("openvino")
        except ImportError as exc:
            raise MissingDependencyError("--embedder openvino needs OpenVINO: pip install openvino") from exc


def embedder_label(name: str, path, quantized: bool = False) -> str:
    """The report's ``embedder`` value: the registered name, or an explicit file's stem."""
    return f"{name}{'-qint8' if quantized else ''}" if path is None else Path(path).stem


#: the default batch on the CPU (larger batches gain nothing there: ``facebench speed``)
CPU_BATCH = 64
#: the default batch on CUDA: EdgeFace-XS is small, and at 64 a batch is too short to fill a
#: GPU; ``make gpu-check`` measures 64, 256 and 1024 (each fp32 batch of 256 takes about 40 MB)
GPU_BATCH = 256


class BaseEmbedder:
    """Batching, flip test-time augmentation and normalisation, shared by every backend.

    Input: ``(N, S, S, 3)`` uint8 RGB crops of the model's ``model_input`` (its template's size
    ``S``; 112 for EdgeFace). With ``flip=True`` an image's embedding is that of the image plus
    that of its horizontal mirror (insightface's test-time augmentation), normalised after the
    sum. Subclasses implement :meth:`_forward` on one batch. ``batch_size`` None:
    :data:`GPU_BATCH` on a CUDA device, :data:`CPU_BATCH` elsewhere.
    """

    backend = ""

    def __init__(self, device: str, batch_size: int | None, name: str, weights_path: Path | None,
                 precision: str, model_input: EmbedderInput = DEFAULT_INPUT) -> None:
        self.device = device
        self.batch_size = batch_size or (GPU_BATCH if device.startswith("cuda") else CPU_BATCH)
        self.name = name
        self.weights_path = weights_path
        self.precision = precision
        self.model_input = model_input

    @property
    def real_device(self) -> str:
        """Where the model actually runs, ``cpu`` or ``cuda:N`` (the report's ``embedder_device``);
        this default trusts ``device``, a backend that knows better overrides it."""
        return device_name(self.device)

    @property
    def weights_sha256(self) -> str:
        return sha256_file(self.weights_path) if self.weights_path else ""

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        """One batch of uint8 crops -> ``(n, dim)`` float32 raw (not normalised) embeddings."""
        raise NotImplementedError

    def check_crops(self, crops: np.ndarray) -> None:
        """Raise for crops that are not ``(N, S, S, 3)`` of this model's crop size."""
        if crops.ndim != 4 or crops.shape[1:] != self.model_input.crop_shape:
            size = self.model_input.template.size
            raise ValueError(f"{self.name} expects (N, {size}, {size}, 3) uint8 RGB crops, got {crops.shape}")

    def embed(self, crops: np.ndarray, flip: bool = False) -> np.ndarray:
        """``(N, S, S, 3)`` uint8 RGB -> ``(N, dim)`` float32, unit L2 norm."""
        crops = np.asarray(crops)
        self.check_crops(crops)
        out = []
        for start in range(0, len(crops), self.batch_size):
            batch = np.ascontiguousarray(crops[start:start + self.batch_size])
            emb = self._forward(batch)
            if flip:
                emb = emb + self._forward(np.ascontiguousarray(batch[:, :, ::-1]))
            out.append(np.asarray(emb, dtype=np.float32))
        if not out:
            return np.zeros((0, self.model_input.dim), dtype=np.float32)
        emb = self.check_finite(np.concatenate(out))
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)

    def check_finite(self, emb: np.ndarray) -> np.ndarray:
        """``emb``, unless it holds NaN or infinity: then a clear error, not embeddings that would
        score every pair alike (OpenVINO's fp16 overflows in EdgeFace on CPUs with real fp16
        arithmetic, AVX-512 FP16, where it gave NaN for every crop)."""
        if not np.isfinite(emb).all():
            hint = " (half precision overflows in this model here: use fp32)" if self.precision == "fp16" else ""
            raise FaceBenchError(f"embedder {self.name} ({self.backend} {self.precision}) gave non-finite "
                                 f"embeddings{hint}")
        return emb

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.backend}, {self.precision}, device={self.device!r})"
