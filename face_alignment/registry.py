"""The detector registry: names to factories, with each method's requirements and weights.

The built-in detectors register themselves when :mod:`face_alignment` is imported (it imports
:mod:`face_alignment.detectors`); third-party ones through the ``face_alignment.detectors``
entry-point group, loaded on the first lookup, whose entries load to a module that calls
:func:`register_detector`, or to a :class:`~face_alignment.detectors.base.FaceDetector` subclass
(registered under the entry point's name, without weights). A plugin that fails to load, or
whose name is taken, is logged and skipped.
"""
from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from .errors import MissingDependencyError, NameTakenError, UnknownMethodError, WeightsError
from .runtime import warn_if_on_cpu
from .weights import MANIFEST, WeightSpec, find_weights, weights_dir

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "face_alignment.detectors"


@dataclass(frozen=True)
class MethodInfo:
    """What a method is and what it needs: ``requires`` maps import names to pip requirements,
    ``weights`` lists the files the default configuration loads, ``optional_weights`` those that
    only some configurations load."""

    name: str
    factory: type
    description: str = ""
    requires: dict[str, str] = field(default_factory=dict)
    weights: tuple[WeightSpec, ...] = ()
    optional_weights: tuple[WeightSpec, ...] = ()


@dataclass(frozen=True)
class MethodStatus:
    name: str
    ready: bool
    reason: str
    description: str


_REGISTRY: dict[str, MethodInfo] = {}
_plugins_loaded = False


def register_detector(name: str, *, description: str = "", requires: dict[str, str] | None = None,
                      weights: Sequence[WeightSpec] = (), optional_weights: Sequence[WeightSpec] = ()):
    """Class decorator that registers a detector class as ``name`` and sets its ``name`` attribute.

    The class keeps the plugin contract of :mod:`face_alignment.detectors.base` (which has an
    example). ``description`` is the line ``facebench methods`` shows; ``requires`` maps the
    modules the detector imports (in its constructor) to their pip requirements; ``weights`` are
    the :class:`~face_alignment.weights.WeightSpec` of the files its default configuration loads,
    declared in the detector's module (or another detector's, reused as is), and
    ``optional_weights`` those of files only some configurations load (an option, a package
    version). Registered, both are found by name with :func:`weight_spec`; :func:`method_status`
    says whether the ``weights`` are here.

    A method name already registered, or a weights name already declared for another file,
    raises :class:`~face_alignment.errors.NameTakenError` naming the module that has it.
    """
    weights, optional_weights = tuple(weights), tuple(optional_weights)

    def decorator(cls):
        if name in _REGISTRY:
            first = _REGISTRY[name].factory
            raise NameTakenError(f"detector name {name!r} is already registered by {first.__module__} "
                                 f"({first.__qualname__}), so {cls.__module__}.{cls.__qualname__} cannot take it")
        declared = _declared_weights()
        for spec in weights + optional_weights:
            if spec.name in declared and declared[spec.name][0] != spec:
                raise NameTakenError(f"weights name {spec.name!r} is already declared by {declared[spec.name][1]} "
                                     f"for another file, so {name!r} cannot declare {spec.filename!r} under it")
        cls.name = name
        _REGISTRY[name] = MethodInfo(name, cls, description, dict(requires or {}), weights, optional_weights)
        return cls

    return decorator


def _declared_weights() -> dict[str, tuple[WeightSpec, str]]:
    """Every declared weights spec by name, with the module that declared it first."""
    declared = {spec_name: (spec, "face_alignment.weights") for spec_name, spec in MANIFEST.items()}
    for info in _REGISTRY.values():
        for spec in info.weights + info.optional_weights:
            declared.setdefault(spec.name, (spec, info.factory.__module__))
    return declared


def _load_plugins() -> None:
    """Register the entry points' detectors, once; one that fails to load or whose name is taken
    is logged and skipped."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from .detectors.base import FaceDetector

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:  # a broken plugin must not break the suite
            loaded = ep.load()
            if isinstance(loaded, type) and issubclass(loaded, FaceDetector):
                register_detector(ep.name, description=(loaded.__doc__ or "").strip().split("\n")[0])(loaded)
        except NameTakenError as exc:
            log.warning("detector plugin %r (%s) is not registered: %s", ep.name, ep.value, exc)
        except Exception as exc:
            log.warning("detector plugin %r (%s) failed to load: %s", ep.name, ep.value, exc)


def weight_spec(name: str) -> WeightSpec:
    """The weights spec ``name``, declared by a registered detector (plugins included) or in the manifest."""
    specs = weight_specs()
    if name not in specs:
        raise WeightsError(f"no weights named {name!r}; known: {', '.join(sorted(specs))}")
    return specs[name]


def weight_specs() -> dict[str, WeightSpec]:
    """Every declared weights spec by name: the registered detectors' (plugins included) and the manifest's."""
    _load_plugins()
    return {name: spec for name, (spec, _) in _declared_weights().items()}


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


def missing_packages(requires: dict[str, str]) -> list[str]:
    """The pip requirements of ``requires`` (import name -> requirement) whose module cannot be imported."""
    return [pip for module, pip in requires.items() if importlib.util.find_spec(module) is None]


def missing_requirements(info: MethodInfo) -> list[str]:
    """pip requirements of ``info`` whose module cannot be imported."""
    return missing_packages(info.requires)


def check_requirements(info: MethodInfo) -> None:
    missing = missing_requirements(info)
    if missing:
        raise MissingDependencyError(
            f"method {info.name!r} needs {', '.join(missing)}: pip install {' '.join(missing)}"
        )


def readiness(requires: dict[str, str], weights: Sequence[WeightSpec], weights_directory=None) -> tuple[bool, str]:
    """Whether what needs the packages ``requires`` and the files ``weights`` can run here, and the
    reason: ``ready``, what to install, where to put which file, or which file will be downloaded."""
    missing = missing_packages(requires)
    if missing:
        return False, f"pip install {' '.join(missing)}"
    absent = [spec for spec in weights if find_weights(spec, weights_directory) is None]
    unobtainable = [spec for spec in absent if not spec.url]  # no official URL: only the user can put it there
    if unobtainable:
        root = weights_dir(weights_directory)
        return False, f"put {', '.join(f'{spec.filename} at {root / spec.relpath}' for spec in unobtainable)}"
    if absent:
        return True, f"will download {', '.join(s.filename for s in absent)}"
    return True, "ready"


def method_status(name: str, weights_directory=None) -> MethodStatus:
    """Whether ``name`` can run here, and if not, why (missing package or weights file)."""
    info = get_method(name)
    return MethodStatus(name, *readiness(info.requires, info.weights, weights_directory), info.description)


def list_methods(weights_directory=None) -> list[MethodStatus]:
    """Every registered method with its status."""
    return [method_status(n, weights_directory) for n in method_names()]


def create_detector(name: str, device: str = "auto", weights_dir=None, **options):
    """Build the detector ``name``; raises a clear error if a package or weights file is missing.
    Warns (once) where CUDA was asked for and the detector, or a stage of it, runs on the CPU."""
    info = get_method(name)
    check_requirements(info)
    detector = info.factory(device=device, weights_dir=weights_dir, **options)
    warn_if_on_cpu(f"detector {name}", detector.device, detector.real_device)
    return detector
