"""Third-party registration end to end: a real package (tests/plugin_pkg) installed with pip into
a temporary folder, found through its ``face_alignment.detectors`` entry point, and run."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from face_alignment import UnifiedFaceDetector, registry
from face_alignment.detectors.yunet import YuNetDetector
from tests.conftest import SAMPLE_IMAGES, WEIGHTS_DIR, pip_install_plugin, use_plugins_from

PLUGIN = Path(__file__).parent / "plugin_pkg"


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """The example plugin pip-installed into ``tmp_path`` and found through its entry point;
    all undone afterwards."""
    use_plugins_from(pip_install_plugin(PLUGIN, tmp_path), monkeypatch)
    yield
    sys.modules.pop("facebench_plugin_example", None)


def test_plugin_is_listed_and_runs(installed_plugin, sample_images):
    assert "yunet_strict" in registry.method_names()
    status = {s.name: s for s in UnifiedFaceDetector.list_methods(WEIGHTS_DIR)}["yunet_strict"]
    assert status.ready and "0.9 score threshold" in status.description

    det = UnifiedFaceDetector("yunet_strict", device="cpu", weights_dir=WEIGHTS_DIR)
    assert det.available, det.error
    assert isinstance(det.detector, YuNetDetector) and det.detector.name == "yunet_strict"
    faces = det.detect([sample_images[SAMPLE_IMAGES[0]]])[0]
    assert faces and all(f.score >= 0.9 for f in faces)


def test_without_the_plugin_the_name_is_unknown():
    assert "yunet_strict" not in registry.method_names()
