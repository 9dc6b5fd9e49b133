"""``--embedder auto`` (the default): the fastest backend installed for the device that gives
PyTorch's numbers, recorded in the report, and the same LFW figures as PyTorch."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import benchmark
from backbones import AUTO, embedder_spec, resolve_backend
from tests.conftest import LFW_DIR, WEIGHTS_DIR
from tests.shared_runs import METRICS

HAVE_OPENVINO = importlib.util.find_spec("openvino") is not None


def test_auto_picks_per_model_device_and_precision():
    edgeface, dlib_resnet = embedder_spec("edgeface_xs"), embedder_spec("dlib_resnet")
    fastest_cpu = "openvino" if HAVE_OPENVINO else "onnx"
    assert resolve_backend(edgeface, AUTO, "fp32", "cpu") == fastest_cpu
    assert resolve_backend(edgeface, AUTO, "int8", "cpu") == fastest_cpu  # torch has no int8
    assert resolve_backend(edgeface, AUTO, "fp32", "cpu", quantized=True) == "torch"  # the qint8 checkpoint
    assert resolve_backend(edgeface, AUTO, "fp32", "cuda") == "torch"
    assert resolve_backend(dlib_resnet, AUTO, "fp32", "cpu") == "torch"  # it runs on torch or dlib only
    assert resolve_backend(edgeface, None) == "torch" and resolve_backend(edgeface, "onnx") == "onnx"


@pytest.mark.shared
def test_auto_gives_torchs_lfw_figures(tmp_path):
    """YuNet on 400 LFW pairs (598 images), once with the default backend and once with torch:
    every figure of the report equal, the distances to 1e-5, and the report names the backend."""
    runs = {}
    for backend in (AUTO, "torch"):
        out = tmp_path / backend
        report = benchmark.run_lfw(["yunet"], LFW_DIR, WEIGHTS_DIR, out, device="cpu", max_pairs=400,
                                   embedder_backend=backend, progress=False, isolate=False)
        runs[backend] = (report.iloc[0], benchmark.load_run(out).scores("yunet"))
    (auto, auto_scores), (torch, torch_scores) = runs[AUTO], runs["torch"]
    assert (auto["embedder_backend"], torch["embedder_backend"]) == ("openvino" if HAVE_OPENVINO else "onnx", "torch")
    assert {m: auto[m] for m in METRICS} == {m: torch[m] for m in METRICS}
    assert auto["accuracy"] > 0.98
    np.testing.assert_allclose(auto_scores.distances, torch_scores.distances, atol=1e-5)
