"""dlib's ResNet face recognition model (``dlib_face_recognition_resnet_model_v1.dat``, shipped in
the ``face_recognition_models`` package): 150x150 RGB chips as ``dlib.get_face_chip(img, shape,
size=150, padding=0.25)`` cuts them, 128-d descriptors; dlib states 99.13% on LFW without jitter.

dlib cuts its chips with a similarity fitted from 33 of the 68 iBUG points onto its mean face;
this suite aligns five points. :data:`DLIB_TEMPLATE` is dlib's chip template expressed in those
five points (:func:`dlib_chip_template`), so that any detector's landmarks give the crop the
network was trained on (within the difference of a five-point and a 33-point fit: about 2 px of
150 on LFW). The network runs on PyTorch by default (:mod:`backbones.dlib_net`, the same
descriptors about ten times faster on a CPU) or on dlib's own runner (backend ``dlib``); dlib is
imported only when that backend is built.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from face_alignment.alignment import CropTemplate
from face_alignment.detectors.dlib import model_file
from face_alignment.errors import FaceBenchError
from face_alignment.landmark_maps import IBUG_68

from .base import BaseEmbedder, embedder_label
from .spec import EmbedderInput, EmbedderRequest, EmbedderSpec

MODEL_FILENAME = "dlib_face_recognition_resnet_model_v1.dat"
#: the chip's side and padding that dlib's face recognition example and ``get_face_chip`` use
CHIP_SIZE, CHIP_PADDING = 150, 0.25

#: dlib's mean face: points 17..67 of the iBUG 68-point scheme in [0, 1] units of the unpadded
#: chip (the ``mean_face_shape_x`` / ``mean_face_shape_y`` arrays of ``get_face_chip_details``,
#: dlib/image_transforms/interpolation.h, github.com/davisking/dlib)
MEAN_FACE_FIRST = 17
MEAN_FACE_X = (
    0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124, 0.904991, 0.98004,
    0.490127, 0.490127, 0.490127, 0.490127, 0.36688, 0.426036, 0.490127, 0.554217, 0.613373, 0.121737,
    0.187122, 0.265825, 0.334606, 0.260918, 0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751,
    0.719335, 0.254149, 0.340985, 0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721,
    0.490127, 0.423532, 0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874, 0.553364, 0.490127,
    0.42689,
)
MEAN_FACE_Y = (
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891, 0.0187482, 0.038915, 0.106454,
    0.203352, 0.307009, 0.409805, 0.515625, 0.587326, 0.609345, 0.628106, 0.609345, 0.587326, 0.216423,
    0.178758, 0.179852, 0.231733, 0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423, 0.244077,
    0.245099, 0.780233, 0.745405, 0.727388, 0.742578, 0.727388, 0.745405, 0.780233, 0.864805, 0.902192,
    0.909281, 0.902192, 0.864805, 0.784792, 0.778746, 0.785343, 0.778746, 0.784792, 0.824182, 0.831803,
    0.824182,
)

#: the model's input layer (``input_rgb_image_sized<150>``, as stored in the .dat file) feeds the
#: network ``(x - avg) / 256`` per channel, RGB, with these averages
INPUT_AVERAGE_RGB = (122.782, 117.001, 104.298)
INPUT_SCALE = 256.0


def dlib_chip_template(size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> CropTemplate:
    """dlib's face chip (``get_face_chip_details(shape, size, padding)``) as a five-point
    :class:`~face_alignment.alignment.CropTemplate`.

    dlib maps a mean-face point ``m`` (in [0, 1]) to the chip coordinate ``(m + padding) / (1 + 2
    padding) * size``. The five points are taken from the mean face the way this suite takes them
    from 68 iBUG points (:data:`~face_alignment.landmark_maps.IBUG_68`): each eye's centre the mean
    of its six points (36-41 image-left, 42-47 image-right), the nose tip 30, the mouth corners
    48 and 54.

    Pixel convention: that coordinate frame is the square ``[0, size]`` (centre ``size / 2``);
    ``extract_image_chip`` puts the corners of its image rectangle on the centres of the chip's
    first and last pixels, so the centre lands on pixel ``(size - 1) / 2``. A template here is in
    pixels (``cv2.warpAffine``'s convention, as insightface's), so every point moves by -0.5:
    exact where the chip has the image's scale, and elsewhere the spacing differs by under 1%
    (a fraction of a pixel on the face)."""
    mean = np.full((68, 2), np.nan)
    mean[MEAN_FACE_FIRST:, 0] = MEAN_FACE_X
    mean[MEAN_FACE_FIRST:, 1] = MEAN_FACE_Y
    five = np.stack([mean[list(slot)].mean(axis=0) for slot in IBUG_68])
    chip = (five + padding) / (1.0 + 2.0 * padding) * size
    return CropTemplate(size, chip - 0.5)


#: dlib's 150x150 chip in the suite's five points (:func:`dlib_chip_template`)
DLIB_TEMPLATE = dlib_chip_template()

#: What the model takes: uint8 RGB chips on :data:`DLIB_TEMPLATE`, 128-d out. ``mean`` and ``std``
#: are what the network's own input layer does to them (``(x - avg) / 256``): the PyTorch backend
#: preprocesses with them; the ``dlib`` backend hands the uint8 chips to dlib as they are. Flip
#: test-time augmentation is meaningful (dlib's own ``num_jitters`` is random crops, mirrored at
#: random, and is not used).
DLIB_RESNET_INPUT = EmbedderInput(
    DLIB_TEMPLATE, dim=128, channels="RGB",
    mean=tuple(a / 255.0 for a in INPUT_AVERAGE_RGB), std=(INPUT_SCALE / 255.0,) * 3, flip=True,
)


class DlibResnetEmbedder(BaseEmbedder):
    """dlib's ResNet on dlib's own network runner: one ``compute_face_descriptor`` call per batch
    (the list-of-chips overload, no jitter). fp32; on the CPU unless dlib was built with CUDA."""

    backend = "dlib"

    def __init__(self, weights_path: str | Path, name: str = "dlib_resnet", batch_size: int | None = None,
                 model_input: EmbedderInput = DLIB_RESNET_INPUT) -> None:
        import dlib

        weights_path = Path(weights_path)
        super().__init__("cpu", batch_size, name, weights_path, "fp32", model_input)
        self._dlib = dlib
        self._model = dlib.face_recognition_model_v1(str(weights_path))

    @property
    def real_device(self) -> str:
        """dlib's DNN runs on its current GPU where dlib was built with CUDA, else on the CPU."""
        if getattr(self._dlib, "DLIB_USE_CUDA", False):
            return f"cuda:{self._dlib.cuda.get_device()}"
        return "cpu"

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        if crops.dtype != np.uint8:
            raise ValueError(f"{self.name} takes uint8 RGB chips, got {crops.dtype}")
        chips = [np.ascontiguousarray(chip) for chip in crops]
        descriptors = self._model.compute_face_descriptor(chips)
        return np.asarray([np.asarray(d) for d in descriptors], dtype=np.float32).reshape(len(chips), -1)


def build_dlib_resnet(spec: EmbedderSpec, request: EmbedderRequest) -> BaseEmbedder:
    """The registered ``dlib_resnet``: the model file of ``face_recognition_models`` (or
    ``request.path``), on PyTorch (:mod:`backbones.dlib_net`, every core or a GPU; the default)
    or on dlib's own runner (``dlib``: one core). ``weights_dir`` and the runtime options do not
    apply to it."""
    path = Path(request.path) if request.path is not None else model_file(MODEL_FILENAME)
    if not path.is_file():
        raise FaceBenchError(f"{spec.name}: no model file at {path}")
    if request.quantized:
        raise FaceBenchError(f"{spec.name} has no quantized model: leave out --quantized")
    label = embedder_label(spec.name, request.path)
    if request.backend == "dlib":
        return DlibResnetEmbedder(path, label, request.batch_size, spec.model_input)
    from .dlib_net import DlibResNet
    from .torch_embedder import Embedder

    return Embedder(DlibResNet.from_file(path), request.device, request.batch_size, label, path, request.precision,
                    spec.model_input)
