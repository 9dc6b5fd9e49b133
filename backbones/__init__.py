"""Face embedding backbones (EdgeFace) and batched embedding."""
from .edgeface import ARCHITECTURES, EdgeFace, LowRankLinear, load_edgeface, read_checkpoint
from .embedder import DEFAULT_EMBEDDER, Embedder

__all__ = ["ARCHITECTURES", "DEFAULT_EMBEDDER", "EdgeFace", "Embedder", "LowRankLinear",
           "load_edgeface", "read_checkpoint"]
