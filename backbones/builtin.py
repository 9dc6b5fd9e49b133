"""The built-in embedders, registered on the registry's first lookup: EdgeFace-XS (the default)
and EdgeFace-XXS on PyTorch, ONNX Runtime or OpenVINO, and dlib's ResNet on PyTorch or dlib. Building
one imports its libraries; registering imports none."""
from __future__ import annotations

from face_alignment.weights import MANIFEST, resolve_weights

from .base import BaseEmbedder, embedder_label
from .dlib_resnet import DLIB_RESNET_INPUT, build_dlib_resnet
from .registry import register_embedder
from .spec import EmbedderRequest, EmbedderSpec

_EDGEFACE = "EdgeFace-{} (Idiap), dequantized from the released qint8 checkpoint; ArcFace 112x112 template, 512-d"


def _edgeface(spec: EmbedderSpec, request: EmbedderRequest) -> BaseEmbedder:
    """EdgeFace from its registered checkpoint (or ``request.path``) on the requested backend."""
    weights = resolve_weights(spec.weights[0], request.path, request.weights_dir)
    label = embedder_label(spec.name, request.path, request.quantized)
    if request.backend == "torch":
        from .edgeface import load_edgeface
        from .torch_embedder import Embedder

        device = "cpu" if request.quantized else request.device
        model = load_edgeface(weights, quantized=request.quantized)
        return Embedder(model, device, request.batch_size, label, weights, request.precision, spec.model_input)
    from .onnx_embedder import runtime_embedder

    return runtime_embedder(request.backend, request.precision, weights, label, request.device, request.batch_size,
                            request.calibration, request.cache_dir, request.tensorrt, request.threads)


register_embedder("edgeface_xs", weights=(MANIFEST["edgeface_xs_q"],), requires={"timm": "timm"},
                  description=_EDGEFACE.format("XS"))(_edgeface)
register_embedder("edgeface_xxs", weights=(MANIFEST["edgeface_xxs_q"],), requires={"timm": "timm"},
                  description=_EDGEFACE.format("XXS"))(_edgeface)

register_embedder("dlib_resnet", model_input=DLIB_RESNET_INPUT, backends=("torch", "dlib"),
                  requires={"dlib": "dlib-bin", "face_recognition_models": "face-recognition-models"},
                  description="dlib ResNet (face_recognition_resnet_model_v1), dlib's 150x150 face chip "
                              "as five points, 128-d; torch (rebuilt from the model file) or dlib's own runner",
                  )(build_dlib_resnet)
