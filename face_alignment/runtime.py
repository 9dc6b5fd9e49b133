"""Device and ONNX Runtime provider selection (CUDA when present, else CPU)."""
from __future__ import annotations

import logging
from functools import cache

log = logging.getLogger(__name__)


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
    """Providers to ask ONNX Runtime for: TensorRT (opt-in), CUDA, then CPU, as installed."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    wanted: list[str] = []
    if resolve_device(device).startswith("cuda"):
        if tensorrt:
            wanted.append("TensorrtExecutionProvider")
        wanted.append("CUDAExecutionProvider")
    wanted.append("CPUExecutionProvider")
    return [p for p in wanted if p in available]


def onnx_session(model_path: str, device: str = "auto", tensorrt: bool = False, threads: int = 0):
    """An ONNX Runtime session on the best provider available; logs what it actually got."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(model_path, sess_options=options, providers=onnx_providers(device, tensorrt))
    log.info("onnxruntime %s: providers %s", model_path, session.get_providers())
    return session


@cache
def _log_once(what: str, value: str) -> None:
    log.info("%s: %s", what, value)
