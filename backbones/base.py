"""What every embedder backend shares, without torch: the backend, precision and default model
names, the crops' preprocessing, and :class:`BaseEmbedder` (batching, flip, normalisation)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from face_alignment.weights import sha256_file

DEFAULT_EMBEDDER = "edgeface_xs_q"
BACKENDS = ("torch", "onnx", "openvino")
PRECISIONS = ("fp32", "fp16", "int8")
CROP_SHAPE = (112, 112, 3)


def embedder_label(name: str, path, quantized: bool = False) -> str:
    """The report's ``embedder`` value: the manifest name, or an explicit file's stem."""
    return f"{name}{'-qint8' if quantized else ''}" if path is None else Path(path).stem


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
