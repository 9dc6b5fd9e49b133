"""Any embedder by backend and precision: :func:`create_embedder`. PyTorch is imported only for
the ``torch`` backend; ``onnx`` and ``openvino`` run without it once the ONNX export is cached."""
from __future__ import annotations

from face_alignment.runtime import warn_if_on_cpu
from face_alignment.weights import resolve_weights

from .base import DEFAULT_EMBEDDER, BaseEmbedder, check_embedder, embedder_label
from .onnx_embedder import runtime_embedder


def create_embedder(backend: str = "torch", precision: str = "fp32", name: str = DEFAULT_EMBEDDER, path=None,
                    weights_dir=None, device: str = "auto", batch_size: int | None = None, quantized: bool = False,
                    calibration=None, cache_dir=None, tensorrt: bool = False,
                    threads: int | None = None) -> BaseEmbedder:
    """An embedder of ``backend`` (:data:`~backbones.base.BACKENDS`) at ``precision``
    (:data:`~backbones.base.PRECISIONS`).

    ``onnx`` and ``openvino`` run the ONNX export of the checkpoint (cached under ``cache_dir``,
    :func:`~backbones.onnx_export.default_cache_dir` by default); their ``int8`` is the static
    INT8 model of :func:`~backbones.quantize.static_int8_model`, which needs ``calibration``
    (a :class:`~backbones.quantize.Calibration`). ``quantized`` is the torch backend's qint8 option;
    ``tensorrt=True`` lets onnxruntime try TensorRT before CUDA (opt-in: it first builds an engine per input shape).
    ``threads``: the onnx / openvino runtime's threads per call (0: every core; default: half the
    cores for onnx, made for the pipelined runner's two embedding workers, every core for openvino);
    PyTorch's threads are process-wide (``torch.set_num_threads``), so the torch backend ignores it.
    ``batch_size`` None: 256 on a CUDA device, 64 on the CPU.
    Warns (once) where CUDA was asked for and the embedder runs on the CPU.
    """
    check_embedder(backend, precision, "cpu" if quantized else device, quantized)
    if backend == "torch":
        from .torch_embedder import Embedder

        embedder = Embedder.from_weights(name, path, weights_dir, device, batch_size, quantized, precision)
    else:
        embedder = runtime_embedder(backend, precision, resolve_weights(name, path, weights_dir),
                                    embedder_label(name, path), device, batch_size, calibration, cache_dir, tensorrt,
                                    threads)
    warn_if_on_cpu(f"embedder {embedder.name} ({backend})", device, embedder.real_device)
    return embedder
