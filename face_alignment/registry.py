"""The detector registry: names to factories, with each method's requirements.

Built-in detectors register themselves when :mod:`face_alignment.detectors` is imported;
third-party ones through the ``face_alignment.detectors`` entry-point group, whose entries load
to a module or callable that calls :func:`register_detector`, or to a :class:`FaceDetector`
subclass (registered under the entry point's name).
"""
from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from .errors import MissingDependencyError, UnknownMethodError
from .weights import MANIFEST, find_weights, weights_dir

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "face_alignment.detectors"


@dataclass(frozen=True)
class MethodInfo:
    """What a method is and what it needs: ``requires`` maps import names to pip requirements,
    ``weights`` lists manifest names the default configuration loads."""

    name: str
    factory: type
    description: str = ""
    requires: dict[str, str] = field(default_factory=dict)
    weights: tuple[str, ...] = ()


@dataclass(frozen=True)
class MethodStatus:
    name: str
    ready: bool
    reason: str
    description: str


_REGISTRY: dict[str, MethodInfo] = {}
_plugins_loaded = False


def register_detector(name: str, *, description: str = "", requires: dict[str, str] | None = None,
                      weights: tuple[str, ...] = ()):
    """Class decorator that adds a :class:`FaceDetector` subclass to the registry as ``name``."""

    def decorator(cls):
        cls.name = name
        _REGISTRY[name] = MethodInfo(name, cls, description, dict(requires or {}), tuple(weights))
        return cls

    return decorator


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from . import detectors  # noqa: F401  (built-ins register on import)
    from .detectors.base import FaceDetector

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = ep.load()
        except Exception as exc:  # a broken plugin must not break the suite
            log.warning("detector plugin %r failed to load: %s", ep.name, exc)
            continue
        if isinstance(loaded, type) and issubclass(loaded, FaceDetector) and ep.name not in _REGISTRY:
            register_detector(ep.name, description=(loaded.__doc__ or "").strip().split("\n")[0])(loaded)


def get_method(name: str) -> MethodInfo:
    _load_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownMethodError(
            f"unknown detection method {name!r}; registered methods: {', '.join(sorted(_REGISTRY))}"
        ) from None


def method_names() -> list[str]:
    _load_plugins()
    return sorted(_REGISTRY)


def missing_requirements(info: MethodInfo) -> list[str]:
    """pip requirements of ``info`` whose module cannot be imported."""
    return [pip for module, pip in info.requires.items() if importlib.util.find_spec(module) is None]


def check_requirements(info: MethodInfo) -> None:
    missing = missing_requirements(info)
    if missing:
        raise MissingDependencyError(
            f"method {info.name!r} needs {', '.join(missing)}: pip install {' '.join(missing)}"
        )


def method_status(name: str, weights_directory=None) -> MethodStatus:
    """Whether ``name`` can run here, and if not, why (missing package or weights file)."""
    info = get_method(name)
    missing = missing_requirements(info)
    if missing:
        return MethodStatus(name, False, f"pip install {' '.join(missing)}", info.description)
    root = weights_dir(weights_directory)
    for weight in info.weights:
        spec = MANIFEST[weight]
        if find_weights(weight, weights_directory) is None:
            if spec.url:
                return MethodStatus(name, True, f"will download {spec.filename}", info.description)
            return MethodStatus(name, False, f"put {spec.filename} at {root / spec.relpath}", info.description)
    return MethodStatus(name, True, "ready", info.description)


def list_methods(weights_directory=None) -> list[MethodStatus]:
    """Every registered method with its status."""
    return [method_status(n, weights_directory) for n in method_names()]


def create_detector(name: str, device: str = "auto", weights_dir=None, **options):
    """Build the detector ``name``; raises a clear error if a package or weights file is missing."""
    info = get_method(name)
    check_requirements(info)
    return info.factory(device=device, weights_dir=weights_dir, **options)
