"""The PyTorch embedder (:class:`Embedder`): EdgeFace on its device, the reference the ONNX
Runtime and OpenVINO embedders are checked against.

On the CPU each batch goes through :meth:`Embedder._forward` as it always has. On CUDA,
:meth:`Embedder.embed` keeps the GPU busy: each batch is copied into pinned (page-locked) host
memory and uploaded with a non-blocking copy on a copy stream while the previous batch computes
on a compute stream; the embeddings come back the same way, and the host waits once per call, not
once per step (the pipeline embeds a batch per call from two threads, each call on streams of its
own, so one batch's upload also overlaps the other's compute). Without ``batch_size`` the batch is
:data:`~backbones.base.CPU_BATCH` on the CPU and :data:`~backbones.base.GPU_BATCH` on CUDA.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from face_alignment.runtime import device_name, module_device, resolve_device

from .base import BaseEmbedder, check_embedder
from .spec import DEFAULT_INPUT, EmbedderInput


class Embedder(BaseEmbedder):
    """Embeds aligned crops in batches with a PyTorch model (preprocessing on its device);
    ``precision="fp16"`` runs the model in half precision (CUDA only)."""

    backend = "torch"

    def __init__(self, model: torch.nn.Module, device: str = "auto", batch_size: int | None = None,
                 name: str = "edgeface", weights_path: Path | None = None, precision: str = "fp32",
                 model_input: EmbedderInput = DEFAULT_INPUT) -> None:
        device = resolve_device(device)
        check_embedder(self.backend, precision, device)
        super().__init__(device, batch_size, name, weights_path, precision, model_input)
        self.model = model.to(self.device).eval()
        self._mean = torch.tensor(model_input.mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(model_input.std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._dtype = torch.float16 if precision == "fp16" else torch.float32
        self._on_cuda = device.startswith("cuda")
        if precision == "fp16":
            self.model.half()
        if self._on_cuda:  # the weights' upload ran on the default stream; _embed_cuda computes on streams of its own
            torch.cuda.synchronize(self.device)

    @property
    def real_device(self) -> str:
        """Where the model's weights are."""
        return module_device(self.model, device_name(self.device))

    def embed(self, crops: np.ndarray, flip: bool = False) -> np.ndarray:
        """``(N, S, S, 3)`` uint8 RGB -> ``(N, dim)`` float32, unit L2 norm (on CUDA: uploads
        overlapping compute, see the module docstring)."""
        crops = np.asarray(crops)
        if not self._on_cuda or len(crops) == 0 or crops.ndim != 4 or crops.shape[1:] != self.model_input.crop_shape:
            return super().embed(crops, flip)  # the CPU path; the base's answer to no crops or a wrong shape
        return self._embed_cuda(crops, flip)

    @torch.inference_mode()
    def _forward(self, crops: np.ndarray) -> np.ndarray:
        return self.model(self._model_input(torch.from_numpy(crops).to(self.device))).float().cpu().numpy()

    def _model_input(self, crops: torch.Tensor) -> torch.Tensor:
        """``(N, S, S, 3)`` uint8 RGB on the device -> the model's ``(N, 3, S, S)`` input: its channel
        order, ``(x / 255 - mean) / std`` (for EdgeFace, in [-1, 1])."""
        if self.model_input.channels == "BGR":
            crops = crops.flip(3)
        return crops.permute(0, 3, 1, 2).float().div_(255.0).sub_(self._mean).div_(self._std).to(self._dtype)

    @torch.inference_mode()
    def _embed_cuda(self, crops: np.ndarray, flip: bool) -> np.ndarray:
        """Each batch: pinned copy, upload on ``copy`` while the batch before computes on
        ``compute``; raw embeddings (plus the mirror's with ``flip``) normalised on the GPU and
        copied back into pinned memory; one wait at the end."""
        copy, compute = torch.cuda.Stream(self.device), torch.cuda.Stream(self.device)
        out = torch.empty((len(crops), self.model_input.dim), dtype=torch.float32, pin_memory=True)
        for start in range(0, len(crops), self.batch_size):
            host = torch.from_numpy(np.ascontiguousarray(crops[start:start + self.batch_size])).pin_memory()
            with torch.cuda.stream(copy):
                uploaded = host.to(self.device, non_blocking=True)
            compute.wait_stream(copy)
            with torch.cuda.stream(compute):
                uploaded.record_stream(compute)  # made on `copy`, used on `compute`: not reused before it is done
                x = self._model_input(uploaded)
                emb = self.model(x).float()
                if flip:
                    emb = emb + self.model(x.flip(3)).float()
                emb = torch.nn.functional.normalize(emb, dim=1, eps=1e-12)
                out[start:start + len(host)].copy_(emb, non_blocking=True)
        compute.synchronize()
        return self.check_finite(out.numpy().copy())  # the pinned buffer goes back to torch's cache
