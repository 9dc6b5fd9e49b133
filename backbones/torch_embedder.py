"""The PyTorch embedder (:class:`Embedder`): EdgeFace on its device, the reference the ONNX
Runtime and OpenVINO embedders are checked against."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from face_alignment.runtime import device_name, module_device, resolve_device
from face_alignment.weights import resolve_weights

from .base import DEFAULT_EMBEDDER, BaseEmbedder, check_embedder, embedder_label
from .edgeface import load_edgeface


class Embedder(BaseEmbedder):
    """Embeds aligned crops in batches with a PyTorch model (preprocessing on its device);
    ``precision="fp16"`` runs the model in half precision (CUDA only)."""

    backend = "torch"

    def __init__(self, model: torch.nn.Module, device: str = "auto", batch_size: int = 64,
                 name: str = "edgeface", weights_path: Path | None = None, precision: str = "fp32") -> None:
        device = resolve_device(device)
        check_embedder(self.backend, precision, device)
        super().__init__(device, batch_size, name, weights_path, precision)
        self.model = model.to(self.device).eval()
        self._dtype = torch.float16 if precision == "fp16" else torch.float32
        if precision == "fp16":
            self.model.half()

    @property
    def real_device(self) -> str:
        """Where the model's weights are."""
        return module_device(self.model, device_name(self.device))

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
