"""Any registered embedder on any backend it runs on: :func:`create_embedder`. PyTorch is
imported only for the ``torch`` backend; ``onnx`` and ``openvino`` run without it once the ONNX
export is cached."""
from __future__ import annotations

from face_alignment.errors import FaceBenchError
from face_alignment.runtime import resolve_device, warn_if_on_cpu

from .base import DEFAULT_EMBEDDER, BaseEmbedder, check_embedder
from .registry import check_requirements, get_embedder
from .spec import AUTO, EmbedderRequest, EmbedderSpec

#: what ``auto`` tries, in order, per device: on a CPU the runtimes that embed fastest here and
#: give PyTorch's numbers (``facebench speed``: OpenVINO fp32 1.35-1.89x PyTorch's rate on EdgeFace,
#: ONNX Runtime agrees with PyTorch to an MSE of 1e-14); on CUDA PyTorch, whose pipeline overlaps
#: uploads with compute (``make gpu-check`` measures the others there)
AUTO_ORDER = {"cpu": ("openvino", "onnx", "torch"), "cuda": ("torch", "onnx")}

#: the weights-manifest names that earlier versions took for the embedder, and what they are now
LEGACY_NAMES = {"edgeface_xs_q": "edgeface_xs", "edgeface_xxs_q": "edgeface_xxs"}


def embedder_spec(name: str) -> EmbedderSpec:
    """The registered embedder ``name`` (``onnx:PATH`` too; an earlier version's weights name is
    taken for its embedder)."""
    return get_embedder(LEGACY_NAMES.get(name, name))


def resolve_backend(spec: EmbedderSpec, backend: str | None = AUTO, precision: str = "fp32", device: str = "auto",
                    quantized: bool = False) -> str:
    """The backend ``backend`` means for ``spec``: None is the model's own default; ``auto`` the
    first of :data:`AUTO_ORDER` for the device that the model runs on and that can run here at
    ``precision`` (installed, the right device), else the model's default (whose own error then
    says what is missing); ``--quantized`` is PyTorch's. Anything else is itself."""
    if backend is None:
        return spec.default_backend
    if backend != AUTO:
        return backend
    if quantized:
        return "torch"
    order = AUTO_ORDER["cuda" if resolve_device(device).startswith("cuda") else "cpu"]
    for candidate in (b for b in order if b in spec.backends):
        try:
            check_embedder(candidate, precision, device, quantized, spec)
        except FaceBenchError:
            continue
        return candidate
    return spec.default_backend


def create_embedder(backend: str | None = None, precision: str = "fp32", name: str = DEFAULT_EMBEDDER, path=None,
                    weights_dir=None, device: str = "auto", batch_size: int | None = None, quantized: bool = False,
                    calibration=None, cache_dir=None, tensorrt: bool = False,
                    threads: int | None = None) -> BaseEmbedder:
    """The embedder ``name`` (:func:`~backbones.registry.embedder_names`, or ``onnx:PATH``) on
    ``backend`` (None: the embedder's own default; ``auto``: :func:`resolve_backend`) at ``precision``.

    EdgeFace's ``onnx`` and ``openvino`` run the ONNX export of the checkpoint (cached under
    ``cache_dir``, :func:`~backbones.onnx_export.default_cache_dir` by default); their ``int8`` is the static
    INT8 model of :func:`~backbones.quantize.static_int8_model`, which needs ``calibration``
    (a :class:`~backbones.quantize.Calibration`). ``quantized`` is the torch backend's qint8 option;
    ``tensorrt=True`` lets onnxruntime try TensorRT before CUDA (opt-in: it first builds an engine per input shape).
    ``threads``: the onnx / openvino runtime's threads per call (0: every core; default: half the
    cores for onnx, made for the pipelined runner's two embedding workers, every core for openvino);
    PyTorch's threads are process-wide (``torch.set_num_threads``), so the torch backend ignores it.
    ``path``: an explicit weights file of that embedder instead of the registered one.
    ``batch_size`` None: 256 on a CUDA device, 64 on the CPU.
    Warns (once) where CUDA was asked for and the embedder runs on the CPU.
    """
    spec = embedder_spec(name)
    backend = resolve_backend(spec, backend, precision, device, quantized)
    check_embedder(backend, precision, "cpu" if quantized else device, quantized, spec)
    check_requirements(spec)
    request = EmbedderRequest(backend, precision, path, weights_dir, device, batch_size, quantized, calibration,
                              cache_dir, tensorrt, threads)
    embedder = spec.build(spec, request)
    warn_if_on_cpu(f"embedder {embedder.name} ({backend})", device, embedder.real_device)
    return embedder
