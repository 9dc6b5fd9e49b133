"""Face embedding backbones (EdgeFace), batched embedding on PyTorch, ONNX Runtime or OpenVINO,
and the model's ONNX export and reduced-precision copies."""
from .edgeface import ARCHITECTURES, EdgeFace, LowRankLinear, load_edgeface, read_checkpoint
from .embedder import BACKENDS, DEFAULT_EMBEDDER, PRECISIONS, BaseEmbedder, Embedder, create_embedder

__all__ = ["ARCHITECTURES", "BACKENDS", "DEFAULT_EMBEDDER", "PRECISIONS", "BaseEmbedder", "EdgeFace", "Embedder",
           "LowRankLinear", "create_embedder", "load_edgeface", "read_checkpoint"]
