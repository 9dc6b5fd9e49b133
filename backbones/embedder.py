"""Batched face embedding: aligned 112x112 RGB crops in, L2-normalised 512-d vectors out."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from face_alignment.runtime import resolve_device
from face_alignment.weights import resolve_weights, sha256_file

from .edgeface import load_edgeface

log = logging.getLogger(__name__)

DEFAULT_EMBEDDER = "edgeface_xs_q"


class Embedder:
    """Embeds aligned crops in batches with a PyTorch model.

    Input: ``(N, 112, 112, 3)`` uint8 RGB. Preprocessing: ``(x / 255 - 0.5) / 0.5``.
    With ``flip=True`` an image's embedding is that of the image plus that of its horizontal
    mirror (insightface's test-time augmentation), normalised after the sum.
    """

    def __init__(self, model: torch.nn.Module, device: str = "auto", batch_size: int = 64,
                 name: str = "edgeface", weights_path: Path | None = None) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.batch_size = batch_size
        self.name = name
        self.weights_path = weights_path

    @classmethod
    def from_weights(cls, name: str = DEFAULT_EMBEDDER, path=None, weights_dir=None, device: str = "auto",
                     batch_size: int = 64, quantized: bool = False) -> Embedder:
        """An EdgeFace embedder from a manifest name (``edgeface_xs_q``, ``edgeface_xxs_q``) or
        an explicit checkpoint ``path``; ``quantized=True`` keeps qint8 (CPU, batch-dependent)."""
        weights = resolve_weights(name, path, weights_dir)
        device = "cpu" if quantized else device
        model = load_edgeface(weights, quantized=quantized)
        label = f"{name}{'-qint8' if quantized else ''}" if path is None else Path(path).stem
        return cls(model, device, batch_size, label, weights)

    @property
    def weights_sha256(self) -> str:
        return sha256_file(self.weights_path) if self.weights_path else ""

    @torch.inference_mode()
    def embed(self, crops: np.ndarray, flip: bool = False) -> np.ndarray:
        """``(N, 112, 112, 3)`` uint8 RGB -> ``(N, 512)`` float32, unit L2 norm."""
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (112, 112, 3):
            raise ValueError(f"expected (N, 112, 112, 3) uint8 RGB crops, got {crops.shape}")
        out = []
        for start in range(0, len(crops), self.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(crops[start:start + self.batch_size]))
            x = batch.to(self.device).permute(0, 3, 1, 2).float().div_(255.0).sub_(0.5).div_(0.5)
            emb = self.model(x)
            if flip:
                emb = emb + self.model(torch.flip(x, dims=[3]))
            out.append(torch.nn.functional.normalize(emb.float(), dim=1).cpu().numpy())
        if not out:
            return np.zeros((0, 512), dtype=np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)
