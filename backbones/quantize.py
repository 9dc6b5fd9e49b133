"""Reduced-precision copies of the exported EdgeFace model: static INT8, dynamic INT8 and fp16.

Static INT8 (:func:`static_int8_model`) is a QDQ model: weights per channel, activations per
tensor with MinMax ranges calibrated on aligned face crops (:class:`Calibration`, never the test
pairs' images). Only Conv and MatMul/Gemm inputs are quantized, so LayerNorm, GELU, softmax and
the other element-wise nodes stay fp32, and :func:`sensitive_nodes` keeps these in fp32 too:

- the stem and the head (first and last layer; the embedding is read off the head directly);
- every node of the attention blocks (EdgeNeXt's SDTA blocks, which hold the XCA attention).

Why these, measured on EdgeFace-XS with 512 held-out crops (LFW people outside the test pairs,
not the calibration crops), as the median cosine to the fp32 embedding with one part quantized:
the MLP output layer of the attention blocks of stages 1 and 2 (0-based) 0.974 and 0.966, that of
every other block 0.999 or more; the attention blocks' convolutions together 0.980; the stem
0.9975. The recipe here (48 of the 75 Conv/MatMul/Gemm nodes int8) leaves a median cosine of 0.95 and the LFW
accuracy of fp32 (99.52% on the reference crops); quantizing the attention blocks and the stem
as well costs 0.34 points (99.18%), and a plain static QDQ of the whole graph destroys the
embeddings (median cosine 0.13, 71.9%).

Dynamic INT8 (:func:`dynamic_int8_model`) quantizes weights ahead and activations per batch at
run time (onnxruntime's ``MatMulInteger``/``ConvInteger``): no calibration, but an image's
embedding then depends on its batch-mates, as with the released qint8 PyTorch model.

Where INT8 pays: CPUs with int8 dot-product instructions (AVX-512 VNNI / AVX-VNNI on x86, SDOT
on ARM) for the quantized MatMuls, and TensorRT on a GPU. EdgeNeXt's depthwise 7x7 convolutions,
LayerNorms and GELUs stay float and the Quantize/Dequantize pairs cost time of their own, so on a
model as small as EdgeFace-XS it may not pay at all: ``facebench speed`` measures it.

onnxruntime's quantization tools have pitfalls, handled here: they write a ``-inferred.onnx``
file beside the input model (so each step runs on a copy in a private temporary folder inside
the cache); importing them appends ``onnxruntime/transformers`` to ``sys.path``, which then
shadows this project's ``benchmark`` package (undone after the import); and their keyword
arguments change between versions (only those the installed version takes are passed).
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from face_alignment.atomic import atomic_path

from .onnx_export import INPUT_NAME
from .spec import DEFAULT_INPUT

log = logging.getLogger(__name__)

#: bumped when the quantization recipe changes, so that older cached files are not reused
QUANT_VERSION = 1
QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")
CALIBRATION_BATCH = 32
#: node-name patterns of the TorchScript export (``/model/stem/...``) kept in fp32
_KEEP_FLOAT = (r"^/model/stem/", r"^/model/head/")
_ATTENTION = re.compile(r"^(/model/stages/stages\.\d+/blocks/blocks\.\d+)/xca/")


@dataclass(frozen=True)
class Calibration:
    """Aligned 112x112 RGB crops to calibrate activation ranges on, loaded only when a model
    has to be quantized; ``key`` names them (which images, how aligned) in the model's cache name."""

    key: str
    load: Callable[[], np.ndarray]


class _BelowError(logging.Filter):
    """Drops the INFO/WARNING records onnxruntime's tools log on the root logger itself (one per
    tensor); a filter on a logger does not see records propagated from other loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


@contextlib.contextmanager
def _ort_quantization() -> Iterator:
    """``onnxruntime.quantization``, imported without leaving ``onnxruntime/transformers`` on
    ``sys.path`` (its modules ``benchmark``, ``float16``... would shadow others), with its
    root-logger chatter muted while the block runs."""
    before = list(sys.path)
    try:
        import onnxruntime.quantization as quantization
        from onnxruntime.quantization import shape_inference  # noqa: F401  (quant_pre_process)
        from onnxruntime.transformers import float16  # noqa: F401
    finally:
        sys.path[:] = before
    mute = _BelowError()
    logging.getLogger().addFilter(mute)
    try:
        yield quantization
    finally:
        logging.getLogger().removeFilter(mute)


def _call(func: Callable, *args, **kwargs):
    """``func(*args, **kwargs)`` without the keyword arguments the installed version lacks."""
    accepted = inspect.signature(func).parameters
    dropped = sorted(set(kwargs) - set(accepted))
    if dropped:
        log.debug("%s: this onnxruntime does not take %s", func.__name__, dropped)
    return func(*args, **{k: v for k, v in kwargs.items() if k in accepted})


@contextlib.contextmanager
def _workspace(model_path: Path) -> Iterator[Path]:
    """A private folder beside the cache holding a copy of ``model_path`` (as ``model.onnx``):
    onnxruntime's side files land there and vanish with it."""
    with tempfile.TemporaryDirectory(prefix=".quantize-", dir=model_path.parent) as tmp:
        shutil.copyfile(model_path, Path(tmp) / "model.onnx")
        yield Path(tmp)


def sensitive_nodes(model) -> list[str]:
    """Names of the Conv/MatMul/Gemm nodes of ``model`` (an ``onnx.ModelProto``) kept in fp32:
    the stem, the head, and every node of a block holding XCA attention."""
    attention_blocks = {m.group(1) for n in model.graph.node if (m := _ATTENTION.match(n.name))}
    return [n.name for n in model.graph.node if n.op_type in QUANTIZED_OPS and (
        any(re.match(p, n.name) for p in _KEEP_FLOAT) or any(n.name.startswith(b + "/") for b in attention_blocks))]


def _derived_path(model_path: Path, tag: str) -> Path:
    return model_path.with_name(f"{model_path.stem}-{tag}-q{QUANT_VERSION}.onnx")


def static_int8_model(model_path: str | Path, calibration: Calibration) -> Path:
    """The static INT8 QDQ copy of fp32 ``model_path`` (see module docstring), cached beside it
    under a name carrying ``calibration.key``."""
    model_path = Path(model_path)
    digest = hashlib.sha256(calibration.key.encode()).hexdigest()[:12]
    dest = _derived_path(model_path, f"int8s-{digest}")
    if dest.is_file():
        return dest
    crops = np.asarray(calibration.load())
    if len(crops) == 0:
        raise ValueError("no calibration crops")
    import onnx

    with _ort_quantization() as q, _workspace(model_path) as work:
        q.shape_inference.quant_pre_process(str(work / "model.onnx"), str(work / "pre.onnx"),
                                            skip_symbolic_shape=False)
        model = onnx.load(str(work / "pre.onnx"))
        keep = set(sensitive_nodes(model))
        targets = [n.name for n in model.graph.node if n.op_type in QUANTIZED_OPS and n.name not in keep]
        reader = _crop_reader(crops, q.CalibrationDataReader)
        with atomic_path(dest) as tmp:
            _call(q.quantize_static, str(work / "pre.onnx"), str(work / "int8.onnx"), reader,
                  quant_format=q.QuantFormat.QDQ, per_channel=True, reduce_range=False,
                  activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8,
                  op_types_to_quantize=list(QUANTIZED_OPS), nodes_to_quantize=targets,
                  calibrate_method=q.CalibrationMethod.MinMax, calibration_providers=["CPUExecutionProvider"])
            shutil.move(work / "int8.onnx", tmp)
    log.info("static INT8 model %s: %d layers int8, %d kept fp32, calibrated on %d crops", dest.name,
             len(targets), len(keep), len(crops))
    return dest


def _crop_reader(crops: np.ndarray, base: type):
    """An onnxruntime ``CalibrationDataReader`` over ``crops`` in batches of CALIBRATION_BATCH."""

    class CropReader(base):
        def __init__(self) -> None:
            self._starts = iter(range(0, len(crops), CALIBRATION_BATCH))

        def get_next(self):
            start = next(self._starts, None)
            if start is None:
                return None
            return {INPUT_NAME: DEFAULT_INPUT.preprocess(crops[start:start + CALIBRATION_BATCH])}

    return CropReader()


def dynamic_int8_model(model_path: str | Path) -> Path:
    """The dynamic INT8 copy of fp32 ``model_path`` (per-channel int8 weights), cached beside it."""
    model_path = Path(model_path)
    dest = _derived_path(model_path, "int8d")
    if dest.is_file():
        return dest
    with _ort_quantization() as q, _workspace(model_path) as work, atomic_path(dest) as tmp:
        q.shape_inference.quant_pre_process(str(work / "model.onnx"), str(work / "pre.onnx"), skip_symbolic_shape=False)
        _call(q.quantize_dynamic, str(work / "pre.onnx"), str(work / "int8.onnx"), per_channel=True,
              reduce_range=False, weight_type=q.QuantType.QInt8)
        shutil.move(work / "int8.onnx", tmp)
    log.info("dynamic INT8 model %s", dest.name)
    return dest


def fp16_model(model_path: str | Path) -> Path:
    """A half-precision copy of fp32 ``model_path`` for the GPU, inputs and outputs kept float32
    (so it is a drop-in replacement), cached beside it."""
    import onnx

    model_path = Path(model_path)
    dest = _derived_path(model_path, "fp16")
    if dest.is_file():
        return dest
    with _ort_quantization(), atomic_path(dest) as tmp:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        half = _call(convert_float_to_float16, onnx.load(str(model_path)), keep_io_types=True)
        onnx.save(half, str(tmp))
    log.info("fp16 model %s", dest.name)
    return dest
