"""What an embedding model declares, without torch: its input (:class:`EmbedderInput`: the crop
template, colour order, normalisation, flip, output dimension) and, registered, how it is built
(:class:`EmbedderSpec`). The alignment takes the input's template, so one set of detections can
serve every embedder."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from face_alignment.alignment import ARCFACE, CropTemplate
from face_alignment.weights import WeightSpec

#: every backend an embedder may run on: PyTorch, ONNX Runtime and OpenVINO (on an ONNX file), and
#: dlib's own network runner (dlib's models only)
#: the backend that picks the fastest one installed for the device (``backbones.factory.resolve_backend``)
AUTO = "auto"
BACKENDS = ("torch", "onnx", "openvino", "dlib")


@dataclass(frozen=True)
class EmbedderInput:
    """What a model takes and gives. The crop is ``template.size`` square, uint8, with the five
    points at ``template.points``; the model's input is ``(x / 255 - mean) / std`` per channel, in
    ``channels`` order (``RGB`` or ``BGR``), NCHW float32; the output is ``dim`` wide. ``flip``:
    whether flip test-time augmentation means anything for it. The defaults are insightface's
    conventions (ArcFace template, RGB, ``(x - 127.5) / 127.5``), which EdgeFace shares."""

    template: CropTemplate = ARCFACE
    dim: int = 512
    channels: str = "RGB"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    flip: bool = True

    def __post_init__(self) -> None:
        if self.channels not in ("RGB", "BGR"):
            raise ValueError(f"channels must be RGB or BGR, got {self.channels!r}")
        for name in ("mean", "std"):
            values = tuple(float(v) for v in np.broadcast_to(getattr(self, name), 3))
            object.__setattr__(self, name, values)
        if min(self.std) <= 0 or int(self.dim) < 1:
            raise ValueError(f"std must be positive and dim at least 1, got std {self.std}, dim {self.dim}")

    @property
    def crop_shape(self) -> tuple[int, int, int]:
        return (self.template.size, self.template.size, 3)

    def preprocess(self, crops: np.ndarray) -> np.ndarray:
        """``(N, S, S, 3)`` uint8 RGB crops -> the model's ``(N, 3, S, S)`` float32 input. For
        EdgeFace the same operations in the same order as its PyTorch path (``x / 255``, ``- 0.5``,
        ``/ 0.5``), so that the inputs are identical."""
        if self.channels == "BGR":
            crops = crops[..., ::-1]
        x = crops.transpose(0, 3, 1, 2).astype(np.float32)
        x /= 255.0
        x -= np.array(self.mean, np.float32)[:, None, None]
        x /= np.array(self.std, np.float32)[:, None, None]
        return x

    def key(self) -> dict:
        """This input as plain values (a cache key's part, a report's description)."""
        return {"size": self.template.size, "points": self.template.points, "dim": self.dim,
                "channels": self.channels, "mean": self.mean, "std": self.std, "flip": self.flip}


@dataclass(frozen=True)
class EmbedderRequest:
    """How a caller wants a registered embedder built: the arguments of
    :func:`~backbones.factory.create_embedder`, passed to the embedder's builder."""

    backend: str
    precision: str = "fp32"
    path: object = None  # an explicit weights file instead of the registered one
    weights_dir: object = None
    device: str = "auto"
    batch_size: int | None = None
    quantized: bool = False
    calibration: object = None
    cache_dir: object = None
    tensorrt: bool = False
    threads: int | None = None


@dataclass(frozen=True)
class EmbedderSpec:
    """A registered embedding model: its ``name``, its :class:`EmbedderInput`, the weights files
    its default configuration loads, the ``backends`` it runs on (the first is its default), the
    modules it needs (``requires``: import name -> pip requirement), a one-line ``description``
    and ``build(spec, request)``, which returns a :class:`~backbones.base.BaseEmbedder`."""

    name: str
    build: Callable = field(compare=False)
    model_input: EmbedderInput = field(default_factory=EmbedderInput)
    weights: tuple[WeightSpec, ...] = ()
    backends: tuple[str, ...] = ("torch", "onnx", "openvino")
    requires: dict[str, str] = field(default_factory=dict, compare=False)
    description: str = ""

    @property
    def default_backend(self) -> str:
        return self.backends[0]


#: insightface's conventions, which EdgeFace shares: the input of a model that declares nothing else
DEFAULT_INPUT = EmbedderInput()
