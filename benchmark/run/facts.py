"""What a method's caches are keyed by and its row says about the embedder it runs, without the
embedder itself: the Ray driver works from these facts (its actors build the models; a task on
the cluster describes them once, :func:`~.ray_engine.describe_on_cluster`), the local engine from
the embedder it holds."""
from __future__ import annotations

from dataclasses import dataclass

from backbones import BaseEmbedder, EmbedderInput

from .cropping import code_version


@dataclass(frozen=True)
class EmbedderFacts:
    """An embedder's name, the device it was asked for and the one it really runs on, what it
    takes and gives, and a sha256 over its class's code (part of the cache key)."""

    name: str
    device: str
    real_device: str
    model_input: EmbedderInput
    code: str

    @classmethod
    def of(cls, embedder: BaseEmbedder | EmbedderFacts) -> EmbedderFacts:
        if isinstance(embedder, EmbedderFacts):
            return embedder
        return cls(embedder.name, embedder.device, embedder.real_device, embedder.model_input,
                   code_version(type(embedder)))
