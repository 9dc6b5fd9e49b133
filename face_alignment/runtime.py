"""Device selection, and ONNX Runtime sessions: providers (CUDA when present, else CPU) and the
session settings (:class:`OrtSettings`), built here for the detectors and the embedders alike."""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from .errors import FaceBenchError

log = logging.getLogger(__name__)

_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
           "all": "ORT_ENABLE_ALL"}


def check_device(device: str) -> str:
    """``device`` resolved (``auto``: CUDA when torch sees a GPU, else the CPU) once it is known to
    work here; a :class:`FaceBenchError` that says what is missing otherwise, so that a run can
    refuse a device before any work."""
    if device in ("auto", "cpu"):
        return resolve_device(device)
    if not re.fullmatch(r"cuda(:\d+)?", device):
        raise FaceBenchError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")
    try:
        import torch
    except ImportError:
        raise FaceBenchError(f"--device {device} needs PyTorch with CUDA, which is not installed") from None
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise FaceBenchError(f"--device {device}: no usable CUDA GPU here (torch {torch.__version__} is {build}; "
                             "no NVIDIA GPU, or its driver is missing or too old for that CUDA); use --device cpu")
    count = torch.cuda.device_count()
    if int(device.partition(":")[2] or 0) >= count:
        raise FaceBenchError(f"--device {device}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    return device


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` becomes ``"cuda"`` when torch sees a GPU, else ``"cpu"``; others pass through."""
    if device != "auto":
        return device
    try:
        import torch
    except ImportError:
        return "cpu"
    chosen = "cuda" if torch.cuda.is_available() else "cpu"
    _log_once("device", chosen)
    return chosen


def onnx_providers(device: str = "auto", tensorrt: bool = False) -> list[str]:
    """Providers to ask ONNX Runtime for: TensorRT (opt-in), CUDA, then CPU, as installed.

    ``"auto"`` asks torch whether there is a GPU only when this onnxruntime has a GPU provider,
    so a CPU-only onnxruntime never imports torch."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider"] if tensorrt else ["CUDAExecutionProvider"]
    gpu = [p for p in gpu if p in available]
    wanted = gpu if gpu and resolve_device(device).startswith("cuda") else []
    return [p for p in [*wanted, "CPUExecutionProvider"] if p in available]


@dataclass(frozen=True)
class OrtSettings:
    """ONNX Runtime session settings for the CPU. The defaults are the embedder's
    (:class:`~backbones.onnx_embedder.OnnxEmbedder`), the fastest measured on a 2-core AVX-512
    machine by ``python -m benchmark speed``; the detectors run onnxruntime's own (:data:`ORT_DEFAULTS`).

    ``intra_threads`` defaults to half the cores: the pipelined runner embeds two batches at once
    beside the detector thread, and on a busy 2-core machine one thread per run was also the
    fastest alone (``facebench speed``: 296 against 276 images/s for two). ``spinning=False``
    stops idle intra-op threads from busy-waiting: a thread that spins takes a core from the
    detector running beside it.
    """

    optimization: str = "all"  # one of _LEVELS
    intra_threads: int = field(default_factory=lambda: max(1, (os.cpu_count() or 2) // 2))  # 0: one per core
    inter_threads: int = 0
    parallel: bool = False  # ORT_PARALLEL execution mode (branches of the graph at once)
    mem_arena: bool = True
    mem_pattern: bool = True
    spinning: bool = False

    def session_options(self):
        """These settings as an ``onnxruntime.SessionOptions`` (errors only in the log)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[self.optimization])
        options.log_severity_level = 3
        options.intra_op_num_threads = self.intra_threads
        options.inter_op_num_threads = self.inter_threads
        options.execution_mode = ort.ExecutionMode.ORT_PARALLEL if self.parallel else ort.ExecutionMode.ORT_SEQUENTIAL
        options.enable_cpu_mem_arena = self.mem_arena
        options.enable_mem_pattern = self.mem_pattern
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "1" if self.spinning else "0")
        return options


#: onnxruntime's own defaults (one intra-op thread per core, spinning), which the detectors run
ORT_DEFAULTS = OrtSettings(intra_threads=0, spinning=True)


def onnx_session(model_path: str | Path, device: str = "auto", tensorrt: bool = False,
                 settings: OrtSettings = ORT_DEFAULTS, tensorrt_options: dict | None = None):
    """An ONNX Runtime session on the best provider available (:func:`onnx_providers`; TensorRT
    with ``tensorrt_options``) with ``settings``; logs what it actually got."""
    import onnxruntime as ort

    providers = [("TensorrtExecutionProvider", tensorrt_options or {}) if p == "TensorrtExecutionProvider" else p
                 for p in onnx_providers(device, tensorrt)]
    session = ort.InferenceSession(str(model_path), sess_options=settings.session_options(), providers=providers)
    log.info("onnxruntime %s: providers %s", model_path, session.get_providers())
    return session


@cache
def _log_once(what: str, value: str) -> None:
    log.info("%s: %s", what, value)
