"""Device selection, and ONNX Runtime sessions: providers (CUDA when present, else CPU) and the
session settings (:class:`OrtSettings`), built here for the detectors and the embedders alike; the
device each stage really runs on (:func:`session_device`, :func:`module_device`), a warning when
that is the CPU though CUDA was asked (:func:`warn_if_on_cpu`), and PyTorch's TF32 switches."""
from __future__ import annotations

import logging
import os
import re
import sys
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


def cuda_index(device: str) -> int:
    """The GPU index of a torch-style device: ``cuda:N`` is N, ``cuda`` (and anything else) 0."""
    return int(device.partition(":")[2] or 0) if device.startswith("cuda") else 0


def device_name(device: str) -> str:
    """``device`` as the report writes real devices: ``cpu`` or ``cuda:N`` (``cuda`` is ``cuda:0``)."""
    return f"cuda:{cuda_index(device)}" if device.startswith("cuda") else device


def joined_devices(*devices: str) -> str:
    """The real device of a detector in stages: the one device they share, else each stage's in
    order joined by ``+`` (``cpu+cuda:0``: boxes on the CPU, keypoints on GPU 0)."""
    return "+".join(dict.fromkeys(devices))


def module_device(module, default: str = "cpu") -> str:
    """Where a ``torch.nn.Module``'s first parameter (or buffer) lives, e.g. ``cuda:0``; ``default``
    for a module with neither (a dynamically quantized one keeps its weights packed)."""
    for tensor in (*module.parameters(), *module.buffers()):
        return device_name(str(tensor.device))
    return default


def warn_if_on_cpu(stage: str, asked: str, real: str) -> None:
    """Warn once per stage when a CUDA device was asked for and a part of the stage runs on the CPU."""
    if asked.startswith("cuda") and "cpu" in real.split("+"):
        _warn_once(f"{stage} was asked to run on {asked} but runs on {real}: its backend does not use CUDA here")


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
    machine by ``python -m benchmark speed``; the detectors run onnxruntime's own
    (:data:`ORT_DEFAULTS`; see :func:`limit_detector_threads`).

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
_detector_settings = ORT_DEFAULTS


def limit_detector_threads(threads: int) -> None:
    """Give the detectors' onnxruntime sessions made from now on in this process ``threads``
    intra-op threads, not spinning (a detection replica's share of the cores; see
    :mod:`benchmark.run.replicas`); a session made before keeps its threads."""
    global _detector_settings
    _detector_settings = OrtSettings(intra_threads=max(1, threads), spinning=False)


#: ONNX Runtime's providers that run on a GPU
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def provider_options(providers: list[str], device: str, tensorrt_options: dict | None = None) -> list[tuple[str, dict]]:
    """``providers`` as ``(name, options)`` for ``InferenceSession``: the GPU ones with ``device_id``
    set to ``device``'s index (ONNX Runtime knows nothing of torch's ``cuda:N``: without it every
    session runs on GPU 0), TensorRT also with ``tensorrt_options``."""
    gpu = {"device_id": cuda_index(device)}
    options = {"CUDAExecutionProvider": gpu, "TensorrtExecutionProvider": {**(tensorrt_options or {}), **gpu}}
    return [(p, dict(options.get(p, {}))) for p in providers]


def onnx_session(model_path: str | Path, device: str = "auto", tensorrt: bool = False,
                 settings: OrtSettings | None = None, tensorrt_options: dict | None = None):
    """An ONNX Runtime session on the best provider available (:func:`onnx_providers`; TensorRT
    with ``tensorrt_options``), on ``device``'s GPU, with ``settings`` (default: the detectors',
    :data:`ORT_DEFAULTS` unless :func:`limit_detector_threads` said otherwise); logs what it actually got,
    and warns (once) when CUDA was asked for (``auto`` asks for nothing) and the session runs on the
    CPU, saying why."""
    import onnxruntime as ort

    providers = provider_options(onnx_providers(device, tensorrt), device, tensorrt_options)  # auto: GPU 0
    options = (settings or _detector_settings).session_options()
    session = ort.InferenceSession(str(model_path), sess_options=options, providers=providers)
    log.info("onnxruntime %s: providers %s", model_path, session.get_providers())
    if device.startswith("cuda") and session_device(session) == "cpu":
        if "CUDAExecutionProvider" in ort.get_available_providers():
            _warn_once(f"onnxruntime's CUDA provider did not start for {device}: its sessions run on the CPU "
                       "(onnxruntime's log says why: a CUDA or cuDNN library not found, or a driver too old)")
        else:
            _warn_once("onnxruntime has no CUDA provider here (the CPU wheel `onnxruntime` is installed): its "
                       "sessions run on the CPU; `make setup GPU=1` installs onnxruntime-gpu in its place")
    return session


def session_device(session) -> str:
    """Where an ONNX Runtime session runs: ``cuda:N`` when a GPU provider was granted (``N`` its
    ``device_id``), else ``cpu``."""
    provider = session.get_providers()[0]
    if provider not in GPU_PROVIDERS:
        return "cpu"
    return f"cuda:{session.get_provider_options().get(provider, {}).get('device_id', 0)}"


def set_tf32(enabled: bool) -> None:
    """Turn TF32 on or off for PyTorch's fp32 CUDA matmuls and cuDNN convolutions. PyTorch's
    defaults differ (matmul off, cuDNN on): a run sets both, so that what it ran is known."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def tf32_enabled() -> bool:
    """Whether PyTorch may use TF32 for fp32 CUDA matmuls or cuDNN convolutions now; False where
    torch has not been imported (nothing of it runs)."""
    torch = sys.modules.get("torch")
    return torch is not None and bool(torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32)


@cache
def _log_once(what: str, value: str) -> None:
    log.info("%s: %s", what, value)


@cache
def _warn_once(message: str) -> None:
    log.warning("%s", message)
