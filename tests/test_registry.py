"""The registry: detectors declare their weights beside them, found by name; a taken name is refused."""
from __future__ import annotations

import dataclasses

import pytest

from face_alignment import NameTakenError, registry
from face_alignment.detectors import rtmpose, yunet
from face_alignment.detectors.yunet import YuNetDetector
from face_alignment.errors import WeightsError
from face_alignment.registry import register_detector, weight_spec
from face_alignment.weights import resolve_weights
from tests.conftest import WEIGHTS_DIR


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made in the test are undone afterwards."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


@pytest.mark.shared
def test_weights_are_found_by_name():
    assert weight_spec("yunet") is yunet.WEIGHTS and weight_spec("pfld") is rtmpose.PFLD
    assert registry.get_method("rtmpose").weights == (yunet.WEIGHTS, rtmpose.PFLD)
    assert weight_spec("face_landmarker").filename == "face_landmarker.task"  # declared, not required
    assert resolve_weights("edgeface_xs_q", directory=WEIGHTS_DIR) == WEIGHTS_DIR / "edgeface/edgeface_xs_q.pt"
    with pytest.raises(WeightsError, match="registry.weight_spec"):
        resolve_weights("yunet", directory=WEIGHTS_DIR)  # the manifest has the embedders' only
    with pytest.raises(WeightsError, match="no weights named 'nope'; known: .*yunet"):
        weight_spec("nope")


def test_method_status_checks_the_declared_weights(tmp_path):
    status = registry.method_status("yunet", tmp_path)
    assert status.ready and status.reason == "will download face_detection_yunet_2023mar.onnx"
    status = registry.method_status("retinaface", tmp_path)
    assert not status.ready and status.reason == f"put mobilenet0.25_Final.pth at {tmp_path}/retinaface/" \
                                                 "mobilenet0.25_Final.pth"
    assert registry.method_status("mediapipe", tmp_path).reason == "ready"  # its Tasks model is optional
    # rtmpose needs YuNet (downloadable) and PFLD (not): the file that cannot be downloaded decides
    status = registry.method_status("rtmpose", tmp_path)
    assert not status.ready and status.reason == f"put pfld.onnx at {tmp_path}/landmarks/pfld.onnx"


def test_a_taken_detector_name_is_refused(scratch_registry):
    with pytest.raises(NameTakenError, match=r"'yunet' is already registered by face_alignment\.detectors\.yunet "
                                             r"\(YuNetDetector\), so .*SecondYuNet cannot take it"):
        @register_detector("yunet")
        class SecondYuNet(YuNetDetector):
            pass

    assert registry.get_method("yunet").factory is YuNetDetector


def test_a_weights_name_is_one_file(scratch_registry):
    other = dataclasses.replace(yunet.WEIGHTS, filename="face_detection_yunet_2022mar.onnx")
    with pytest.raises(NameTakenError, match=r"weights name 'yunet' is already declared by "
                                             r"face_alignment\.detectors\.yunet for another file"):
        register_detector("yunet_2022", weights=(other,))(type("YuNet2022", (YuNetDetector,), {}))
    with pytest.raises(NameTakenError, match=r"'edgeface_xs_q' is already declared by face_alignment\.weights"):
        register_detector("edgy", optional_weights=(dataclasses.replace(other, name="edgeface_xs_q"),))(
            type("Edgy", (YuNetDetector,), {}))
    assert "yunet_2022" not in registry.method_names() and weight_spec("yunet") is yunet.WEIGHTS

    # the same file may be declared again: a detector that runs another's weights
    reuse = register_detector("yunet_again", weights=(yunet.WEIGHTS,))(type("YuNetAgain", (YuNetDetector,), {}))
    assert reuse.name == "yunet_again" and registry.get_method("yunet_again").weights == (yunet.WEIGHTS,)
