"""Face embedding models behind one registry (EdgeFace-XS, the default, EdgeFace-XXS, dlib's
ResNet, any ONNX recognition model as ``onnx:PATH``, plugins), each declaring its input (crop
template, colour order, normalisation, output dimension); batched embedding on PyTorch, ONNX
Runtime, OpenVINO or dlib; EdgeFace's ONNX export and reduced-precision copies.

The names are imported on first use, so that ``import backbones`` (and reading ``BACKENDS``,
``PRECISIONS`` or ``DEFAULT_EMBEDDER``) does not import torch: only the PyTorch model
(:mod:`backbones.edgeface`, :mod:`backbones.torch_embedder`) and the ONNX export need it.
"""
from importlib import import_module

_EXPORTS = {
    "ARCHITECTURES": ".edgeface", "EdgeFace": ".edgeface", "LowRankLinear": ".edgeface",
    "load_edgeface": ".edgeface", "read_checkpoint": ".edgeface",
    "AUTO": ".spec", "BACKENDS": ".spec", "resolve_backend": ".factory",
    "DEFAULT_EMBEDDER": ".base", "PRECISIONS": ".base", "BaseEmbedder": ".base",
    "check_embedder": ".base",
    "Embedder": ".torch_embedder", "create_embedder": ".factory",
    "OnnxEmbedder": ".onnx_embedder", "OpenVinoEmbedder": ".onnx_embedder", "onnx_model_path": ".onnx_export",
    "EmbedderInput": ".spec", "EmbedderSpec": ".spec", "EmbedderRequest": ".spec",
    "register_embedder": ".registry", "list_embedders": ".registry", "embedder_names": ".registry",
    "get_embedder": ".registry", "embedder_spec": ".factory",
    "Calibration": ".quantize", "dynamic_int8_model": ".quantize", "OrtSettings": "face_alignment.runtime",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'backbones' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name], __name__), name)
