"""Every stage reports the device it really runs on (``real_device``), whatever it was asked for, and
warns once where CUDA was asked for and it runs on the CPU. This machine has no GPU: ONNX Runtime is
the CPU wheel, so a session asked for ``cuda:1`` runs on the CPU and must say so."""
from __future__ import annotations

import logging

import pytest

from face_alignment import create_detector, list_methods, runtime
from face_alignment.runtime import joined_devices, module_device, onnx_session, provider_options, session_device
from tests.conftest import WEIGHTS_DIR, method_params, optional_module

STATUS = {s.name: s for s in list_methods(WEIGHTS_DIR)}
METHODS = method_params(STATUS.values())
#: detectors that build without a GPU when asked for one: their backend never uses torch's CUDA
CPU_BACKENDS = ["yunet", "yolov5_face", "yolov8_face", "rtmpose", "mediapipe", "dlib"]


@pytest.fixture(autouse=True)
def fresh_warnings():
    """Each test sees the once-only warnings anew."""
    runtime._warn_once.cache_clear()
    yield
    runtime._warn_once.cache_clear()


def test_provider_options_put_the_gpu_index_in_device_id():
    providers = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert provider_options(providers, "cuda:1", {"trt_fp16_enable": True}) == [
        ("TensorrtExecutionProvider", {"trt_fp16_enable": True, "device_id": 1}),
        ("CUDAExecutionProvider", {"device_id": 1}),
        ("CPUExecutionProvider", {}),
    ]
    assert provider_options(["CUDAExecutionProvider"], "cuda") == [("CUDAExecutionProvider", {"device_id": 0})]
    assert provider_options(["CPUExecutionProvider"], "cpu") == [("CPUExecutionProvider", {})]


class _Session:
    """What :func:`session_device` reads of an ``InferenceSession`` (ONNX Runtime gives option values as text)."""

    def __init__(self, providers, options):
        self._providers, self._options = providers, options

    def get_providers(self):
        return self._providers

    def get_provider_options(self):
        return self._options


def test_session_device_is_the_granted_provider_and_its_device_id():
    assert session_device(_Session(["CUDAExecutionProvider", "CPUExecutionProvider"],
                                   {"CUDAExecutionProvider": {"device_id": "1"}})) == "cuda:1"
    assert session_device(_Session(["CPUExecutionProvider"], {"CPUExecutionProvider": {}})) == "cpu"


@pytest.mark.shared
def test_an_onnx_session_asked_for_cuda_1_runs_on_the_cpu_here_and_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="face_alignment.runtime"):
        session = onnx_session(WEIGHTS_DIR / "yolov5_face" / "yolov5n-0.5.onnx", "cuda:1")
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert session_device(session) == "cpu"
    assert "onnxruntime has no CUDA provider" in caplog.text and "onnxruntime-gpu" in caplog.text


@pytest.mark.shared
@pytest.mark.parametrize("method", METHODS)
def test_each_detector_built_for_the_cpu_reports_cpu(method, caplog):
    with caplog.at_level(logging.WARNING):
        detector = create_detector(method, device="cpu", weights_dir=WEIGHTS_DIR)
    assert detector.real_device == "cpu"
    assert "was asked to run on" not in caplog.text


@pytest.mark.shared
@pytest.mark.parametrize("method", [m for m in CPU_BACKENDS if STATUS[m].ready])
def test_a_detector_asked_for_cuda_that_runs_on_the_cpu_says_so_once(method, caplog):
    with caplog.at_level(logging.WARNING):
        detector = create_detector(method, device="cuda:1", weights_dir=WEIGHTS_DIR)
        create_detector(method, device="cuda:1", weights_dir=WEIGHTS_DIR)
    assert detector.device == "cuda:1" and detector.real_device == "cpu"
    warnings = [r.getMessage() for r in caplog.records if f"detector {method} was asked" in r.getMessage()]
    assert warnings == [f"detector {method} was asked to run on cuda:1 but runs on cpu: its backend does not use "
                        "CUDA here"]


@pytest.mark.shared
@pytest.mark.parametrize("backend", ["torch", "onnx", "openvino"])
def test_each_embedder_on_the_cpu_reports_cpu(backend):
    from backbones import create_embedder

    if backend == "openvino":
        optional_module("openvino")
    assert create_embedder(backend, weights_dir=WEIGHTS_DIR, device="cpu").real_device == "cpu"


def test_module_device_and_joined_devices():
    torch = optional_module("torch")

    assert module_device(torch.nn.Linear(2, 2)) == "cpu"
    assert module_device(torch.nn.ReLU(), default="cuda:0") == "cuda:0"  # no weights: the default
    assert joined_devices("cpu", "cpu") == "cpu"
    assert joined_devices("cpu", "cuda:0") == "cpu+cuda:0"
