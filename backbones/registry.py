"""The embedder registry: names to :class:`~backbones.spec.EmbedderSpec`, the same shape as the
detectors' (:mod:`face_alignment.registry`).

The built-ins (:mod:`backbones.builtin`) register themselves on the first lookup; third-party
embedders through the ``backbones.embedders`` entry-point group, whose entries load to a module
that calls :func:`register_embedder`. ``onnx:PATH`` is not registered: it names any ONNX
recognition model (:mod:`backbones.onnx_model`). A plugin that fails to load, or whose name is
taken, is logged and skipped.
"""
from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points

from face_alignment.errors import MissingDependencyError, NameTakenError, UnknownMethodError
from face_alignment.registry import missing_packages, readiness
from face_alignment.weights import WeightSpec

from .spec import BACKENDS, DEFAULT_INPUT, EmbedderInput, EmbedderSpec

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "backbones.embedders"
#: the prefix of an ONNX recognition model given by its path: ``onnx:/models/w600k_r50.onnx``
ONNX_PREFIX = "onnx:"

_REGISTRY: dict[str, EmbedderSpec] = {}
_loaded = False


@dataclass(frozen=True)
class EmbedderStatus:
    name: str
    ready: bool
    reason: str
    description: str


def register_embedder(name: str, *, model_input: EmbedderInput = DEFAULT_INPUT, weights: Sequence[WeightSpec] = (),
                      backends: Sequence[str] = ("torch", "onnx", "openvino"), requires: dict[str, str] | None = None,
                      description: str = "") -> Callable:
    """Decorator that registers ``build(spec, request) -> BaseEmbedder`` as the embedder ``name``.

    ``model_input`` declares the crop (template, size), colour order, normalisation, flip and
    output dimension; ``weights`` the files its default configuration loads; ``backends`` where
    it runs (the first is its default); ``requires`` the modules it imports, with their pip
    requirements. A name already registered, or starting with ``onnx:``, raises
    :class:`~face_alignment.errors.NameTakenError`.
    """
    unknown = set(backends) - set(BACKENDS)
    if unknown or not backends:
        raise ValueError(f"embedder {name!r}: backends must be among {', '.join(BACKENDS)}, got {list(backends)}")

    def decorator(build: Callable) -> Callable:
        if name in _REGISTRY or name.startswith(ONNX_PREFIX):
            first = _REGISTRY[name].build if name in _REGISTRY else None
            by = f"{first.__module__}.{first.__qualname__}" if first else "the onnx:PATH syntax"
            raise NameTakenError(f"embedder name {name!r} is already taken by {by}, so "
                                 f"{build.__module__}.{build.__qualname__} cannot have it")
        _REGISTRY[name] = EmbedderSpec(name, build, model_input, tuple(weights), tuple(backends), dict(requires or {}),
                                       description)
        return build

    return decorator


def _load() -> None:
    """Register the built-ins, then the entry points' embedders, once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    importlib.import_module(".builtin", __package__)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:  # a broken plugin must not break the suite
            ep.load()
        except NameTakenError as exc:
            log.warning("embedder plugin %r (%s) is not registered: %s", ep.name, ep.value, exc)
        except Exception as exc:
            log.warning("embedder plugin %r (%s) failed to load: %s", ep.name, ep.value, exc)


def embedder_names() -> list[str]:
    """The registered embedders (``onnx:PATH`` is not listed: it takes any path)."""
    _load()
    return sorted(_REGISTRY)


def get_embedder(name: str) -> EmbedderSpec:
    """The spec of a registered embedder, or of ``onnx:PATH`` (read from the file)."""
    _load()
    if name.startswith(ONNX_PREFIX):
        from .onnx_model import onnx_model_spec

        return onnx_model_spec(name[len(ONNX_PREFIX):])
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownMethodError(f"unknown embedder {name!r}; registered: {', '.join(sorted(_REGISTRY))}, or "
                                 f"{ONNX_PREFIX}PATH for an ONNX recognition model") from None


def check_requirements(spec: EmbedderSpec) -> None:
    missing = missing_packages(spec.requires)
    if missing:
        raise MissingDependencyError(f"embedder {spec.name!r} needs {', '.join(missing)}: pip install "
                                     f"{' '.join(missing)}")


def embedder_status(name: str, weights_directory=None) -> EmbedderStatus:
    """Whether ``name`` can run here, and if not, why (a missing package or weights file)."""
    spec = get_embedder(name)
    return EmbedderStatus(name, *readiness(spec.requires, spec.weights, weights_directory), spec.description)


def list_embedders(weights_directory=None) -> list[EmbedderStatus]:
    """Every registered embedder with its status."""
    return [embedder_status(name, weights_directory) for name in embedder_names()]
