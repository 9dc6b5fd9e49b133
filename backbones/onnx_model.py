"""``onnx:PATH``: any ONNX face recognition model, without code.

Its input is read from the graph: the crop size from the input's height (``N x 3 x H x W``,
square), the output dimension from the output's width (or from one run of a blank crop where
the graph leaves it open). The rest follows insightface's conventions for its recognition models
(``model_zoo/arcface_onnx.py``): RGB, ``(x - 127.5) / 127.5``, the ArcFace five-point template
scaled to the crop; as insightface does, a graph whose first nodes are ``Sub`` or ``Mul``
normalises its input itself and gets the raw pixels, ``(x - 0) / 1``. A JSON file beside the model
(``PATH.json`` or the same name with ``.json`` for ``.onnx``) overrides any of: ``input_mean``
and ``input_std`` (pixel units, insightface's names; one number or one per channel),
``channels`` (``RGB`` or ``BGR``), ``template`` (five ``[x, y]`` in crop pixels), ``size`` (for a
graph of open height), ``flip`` (true/false). The same keys can be given to :func:`onnx_model_spec`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from face_alignment.alignment import ARCFACE, CropTemplate
from face_alignment.errors import FaceBenchError, WeightsError

from .base import BaseEmbedder
from .spec import EmbedderInput, EmbedderRequest, EmbedderSpec

#: the keys a model's JSON (or :func:`onnx_model_spec`'s overrides) may hold
OPTION_KEYS = ("input_mean", "input_std", "channels", "template", "size", "flip")
#: how many of the graph's first nodes are looked at for a normalisation of its own (insightface: 8)
_FIRST_NODES = 8


def sidecar(path: Path) -> Path | None:
    """The model's JSON of overrides, where there is one."""
    for candidate in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if candidate.is_file():
            return candidate
    return None


def read_options(path: Path) -> dict:
    """The overrides in the model's JSON (none without one); unknown keys are refused."""
    found = sidecar(path)
    if found is None:
        return {}
    try:
        options = json.loads(found.read_text())
    except (OSError, ValueError) as exc:
        raise FaceBenchError(f"cannot read the embedder options {found}: {exc}") from exc
    if not isinstance(options, dict) or set(options) - set(OPTION_KEYS):
        raise FaceBenchError(f"{found} must be a JSON object with keys among {', '.join(OPTION_KEYS)}")
    return options


def onnx_model_spec(path: str | Path, **overrides) -> EmbedderSpec:
    """The spec of the ONNX recognition model at ``path`` (see the module docstring); ``overrides``
    take precedence over the JSON beside the file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"onnx:{path}: no such file (give the path of an ONNX recognition model)")
    unknown = set(overrides) - set(OPTION_KEYS)
    if unknown:
        raise FaceBenchError(f"unknown ONNX embedder options {sorted(unknown)}; known: {', '.join(OPTION_KEYS)}")
    options = {**read_options(path), **overrides}
    graph = _read_graph(path)
    size = int(options.get("size") or graph["size"] or 0)
    if size < 1:
        raise FaceBenchError(f"{path}: the graph's input height is open; give its crop size as \"size\" in "
                             f"{path.name}.json")
    self_normalising = graph["normalises"]
    mean = np.asarray(options.get("input_mean", 0.0 if self_normalising else 127.5), np.float64) / 255.0
    std = np.asarray(options.get("input_std", 1.0 if self_normalising else 127.5), np.float64) / 255.0
    template = CropTemplate(size, options["template"]) if "template" in options else ARCFACE.scaled(size)
    model_input = EmbedderInput(template, graph["dim"] or _probe_dim(path, size), options.get("channels", "RGB"),
                                tuple(np.broadcast_to(mean, 3)), tuple(np.broadcast_to(std, 3)),
                                bool(options.get("flip", True)))
    return EmbedderSpec(f"onnx:{path}", _build, model_input, (), ("onnx", "openvino"),
                        {"onnxruntime": "onnxruntime"}, f"ONNX model {path.name}")


def _read_graph(path: Path) -> dict:
    """The input's height, the output's width (0 where open) and whether the graph normalises."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # a protobuf DecodeError, a truncated file ...
        raise WeightsError(f"{path} is not a readable ONNX model: {exc}") from exc
    inputs = [i for i in model.graph.input if i.name not in {init.name for init in model.graph.initializer}]
    in_dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    out_dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    if len(in_dims) != 4 or (in_dims[1] and in_dims[1] != 3):
        raise FaceBenchError(f"{path}: expected an N x 3 x H x W image input, the graph has {in_dims}")
    if in_dims[2] and in_dims[3] and in_dims[2] != in_dims[3]:
        raise FaceBenchError(f"{path}: the input is {in_dims[2]} x {in_dims[3]}; only square crops are supported")
    first_ops = {node.op_type for node in model.graph.node[:_FIRST_NODES]}
    return {"size": in_dims[2], "dim": out_dims[1] if len(out_dims) == 2 else 0,
            "normalises": bool(first_ops & {"Sub", "Mul"})}


def _probe_dim(path: Path, size: int) -> int:
    """The output width of one run of a blank crop, for a graph that leaves it open."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    blank = np.zeros((1, 3, size, size), np.float32)
    return int(np.asarray(session.run(None, {session.get_inputs()[0].name: blank})[0]).reshape(1, -1).shape[1])


def _build(spec: EmbedderSpec, request: EmbedderRequest) -> BaseEmbedder:
    from .onnx_embedder import onnx_file_embedder

    if request.precision != "fp32":
        raise FaceBenchError(f"{spec.name} runs at fp32 (as the file is); reduced precisions are EdgeFace's")
    path = Path(spec.name[len("onnx:"):])
    return onnx_file_embedder(request.backend, path, path.stem, path, "fp32", request.device, request.batch_size,
                              request.tensorrt, request.threads, spec.model_input)
