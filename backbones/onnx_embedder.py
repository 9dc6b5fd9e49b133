"""Embedders on the exported ONNX model: ONNX Runtime (:class:`OnnxEmbedder`) and OpenVINO
(:class:`OpenVinoEmbedder`), with the interface of :class:`~backbones.base.BaseEmbedder`; neither
imports torch (only exporting the model does, :mod:`backbones.onnx_export`).

ONNX Runtime asks for TensorRT (opt-in), then CUDA, then the CPU (:mod:`face_alignment.runtime`)
and logs what it got; ``fp16`` runs a half-precision copy of the model on CUDA (TensorRT builds
its own fp16 engine). On the CPU the session settings are :class:`~face_alignment.runtime.OrtSettings`.
OpenVINO reads the same ONNX file and runs on the CPU; it is told the precision explicitly, because
on CPUs with bf16 instructions its default is bf16, not fp32.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from face_alignment.errors import FaceBenchError
from face_alignment.runtime import OrtSettings, onnx_session, resolve_device, session_device

from . import quantize
from .base import BaseEmbedder, check_embedder
from .onnx_export import default_cache_dir, onnx_model_path
from .spec import DEFAULT_INPUT, EmbedderInput

log = logging.getLogger(__name__)


class OnnxEmbedder(BaseEmbedder):
    """Runs an ONNX recognition model (EdgeFace's export at any of its precisions, or a user's
    model of any :class:`~backbones.spec.EmbedderInput`) with ONNX Runtime.

    ``device`` is where it actually runs: ``cuda`` only when the CUDA or TensorRT provider was
    granted (the ``onnxruntime`` CPU wheel has neither: install ``onnxruntime-gpu`` for them).
    ``settings`` are the CPU session's (default ``OrtSettings()``).
    """

    backend = "onnx"

    def __init__(self, model_path: str | Path, device: str = "auto", batch_size: int | None = None,
                 name: str = "edgeface",
                 weights_path: Path | None = None, precision: str = "fp32", tensorrt: bool = False,
                 settings: OrtSettings | None = None, trt_cache_dir: str | Path | None = None,
                 model_input: EmbedderInput = DEFAULT_INPUT) -> None:
        self.session = onnx_session(model_path, device, tensorrt, settings or OrtSettings(),
                                    _tensorrt_options(precision, trt_cache_dir))
        granted = self.session.get_providers()
        on_gpu = granted[0] in ("TensorrtExecutionProvider", "CUDAExecutionProvider")
        if precision == "fp16" and not on_gpu:
            log.warning("onnxruntime runs the fp16 model on %s: fp16 is meant for CUDA (the CPU build of "
                        "onnxruntime has no CUDA provider: install onnxruntime-gpu)", granted)
        super().__init__(resolve_device(device) if on_gpu else "cpu", batch_size, name, weights_path, precision,
                         model_input)
        self.model_path = Path(model_path)
        self.providers = granted
        self._input_name = self.session.get_inputs()[0].name

    @property
    def real_device(self) -> str:
        """The provider ONNX Runtime granted: ``cuda:N`` (its ``device_id``) or ``cpu``."""
        return session_device(self.session)

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self._input_name: self.model_input.preprocess(crops)})[0]


def _tensorrt_options(precision: str, cache_dir) -> dict:
    """TensorRT engines are built on the first batch of each shape: cache them on disk. An INT8
    model carries its scales (QDQ), which TensorRT uses as they are: no calibration table."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir() / "tensorrt"
    return {"trt_fp16_enable": precision == "fp16", "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache)}


#: OpenVINO inference precision per requested precision. fp16 is OpenVINO's half precision:
#: f16 where the CPU has it, else what the plugin picks (bf16 on AVX-512-BF16 CPUs)
_OV_PRECISION = {"fp32": "f32", "fp16": "f16", "int8": "f32"}


class OpenVinoEmbedder(BaseEmbedder):
    """Runs an ONNX recognition model with OpenVINO on the CPU (an INT8 QDQ model runs its
    quantized layers in int8, the rest at f32).

    ``streams`` requests run at once, each on its share of the ``threads`` (0: every core). One
    stream (the default) gives one caller every core; the pipeline's two embedding threads then
    take turns. Two streams let them run at once: on this 2-core machine, idle, two threads
    embedding 64-crop batches ran 356-371 crops/s against 311-336 on one stream, but one caller
    173 against 305, and the whole `facebench --methods yunet` command was no faster (48.8-52.5 s
    against 40.9-50.6 s, two rounds): not a default to change on this evidence (``facebench
    speed`` section 3 times both). The embeddings are the same to the bit."""

    backend = "openvino"

    def __init__(self, model_path: str | Path, device: str = "auto", batch_size: int | None = None,
                 name: str = "edgeface",
                 weights_path: Path | None = None, precision: str = "fp32", streams: int = 1,
                 threads: int = 0, model_input: EmbedderInput = DEFAULT_INPUT) -> None:
        check_embedder(self.backend, precision, device)
        import openvino as ov

        config = {"INFERENCE_PRECISION_HINT": _OV_PRECISION[precision],
                  "PERFORMANCE_HINT": "LATENCY" if streams == 1 else "THROUGHPUT", "NUM_STREAMS": streams}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        compiled = ov.Core().compile_model(str(model_path), "CPU", config)
        self.inference_precision = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        log.debug("openvino embedder %s (%s): CPU, inference precision %s", Path(model_path).name, precision,
                 self.inference_precision)
        super().__init__("cpu", batch_size, name, weights_path, precision, model_input)
        self.model_path = Path(model_path)
        self._compiled = compiled
        self._requests = threading.local()  # an infer request is not thread-safe: one per thread
        # One inference here, in one thread, before the pipeline's two embedding threads: OpenVINO's
        # Python binding sets up NumPy's C API on the first result it converts, under a C++ static
        # guard and pybind11's GIL-releasing call_once; two threads' first results at once
        # deadlocked there (2 runs in 8 hung forever with two threads' first embed at once)
        self._forward(np.zeros((1, *model_input.crop_shape), np.uint8))

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self._compiled.create_infer_request()
        return request.infer({0: self.model_input.preprocess(crops)})[0].copy()


def runtime_embedder(backend: str, precision: str, weights: Path, label: str, device: str = "auto",
                     batch_size: int | None = None, calibration=None, cache_dir=None, tensorrt: bool = False,
                     threads: int | None = None) -> BaseEmbedder:
    """The ``onnx`` or ``openvino`` embedder of EdgeFace checkpoint ``weights`` at ``precision``: its
    ONNX export, the fp16 copy (onnx on CUDA) or the static INT8 model (needs ``calibration``)."""
    check_embedder(backend, precision, device)
    model = onnx_model_path(weights, cache_dir)
    if precision == "int8":
        if calibration is None:
            raise FaceBenchError("int8 needs calibration crops (backbones.quantize.Calibration)")
        model = quantize.static_int8_model(model, calibration)
    elif precision == "fp16" and backend == "onnx":
        model = quantize.fp16_model(model)
    return onnx_file_embedder(backend, model, label, weights, precision, device, batch_size, tensorrt, threads)


def onnx_file_embedder(backend: str, model: Path, label: str, weights: Path, precision: str = "fp32",
                       device: str = "auto", batch_size: int | None = None, tensorrt: bool = False,
                       threads: int | None = None, model_input: EmbedderInput = DEFAULT_INPUT) -> BaseEmbedder:
    """An ONNX Runtime (``onnx``) or OpenVINO embedder of the ONNX file ``model``. ``threads``:
    the runtime's threads per call (None: half the cores for onnx, every core for openvino)."""
    if backend == "onnx":
        settings = OrtSettings() if threads is None else OrtSettings(intra_threads=threads)
        return OnnxEmbedder(model, device, batch_size, label, weights, precision, tensorrt, settings,
                            model_input=model_input)
    return OpenVinoEmbedder(model, device, batch_size, label, weights, precision, threads=threads or 0,
                            model_input=model_input)
