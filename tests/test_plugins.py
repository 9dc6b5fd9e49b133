"""Third-party registration end to end: real packages (tests/plugin_pkg, and one written here)
installed with pip into a temporary folder, found through their ``face_alignment.detectors``
entry points, and run."""
from __future__ import annotations

import logging
import sys
import textwrap
from pathlib import Path

import pytest

from face_alignment import UnifiedFaceDetector, registry
from face_alignment.detectors.yunet import WEIGHTS, YuNetDetector
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
    assert registry.get_method("yunet_strict").weights == (WEIGHTS,)

    det = UnifiedFaceDetector("yunet_strict", device="cpu", weights_dir=WEIGHTS_DIR)
    assert det.available, det.error
    assert isinstance(det.detector, YuNetDetector) and det.detector.name == "yunet_strict"
    faces = det.detect([sample_images[SAMPLE_IMAGES[0]]])[0]
    assert faces and all(f.score >= 0.9 for f in faces)


def test_without_the_plugin_the_name_is_unknown():
    assert "yunet_strict" not in registry.method_names()


#: a plugin package with two entry points whose names are taken (a class, and a module that
#: registers a taken name) and one whose name is free
TAKEN = {
    "pyproject.toml": """
        [project]
        name = "facebench-taken"
        version = "0.1.0"

        [project.entry-points."face_alignment.detectors"]
        yunet = "facebench_taken:Impostor"
        second = "facebench_taken.second"
        yunet_free = "facebench_taken:Free"

        [tool.setuptools]
        packages = ["facebench_taken"]
    """,
    "facebench_taken/__init__.py": """
        from face_alignment.detectors.yunet import YuNetDetector

        class Impostor(YuNetDetector):
            \"\"\"YuNet under a taken name.\"\"\"

        class Free(YuNetDetector):
            \"\"\"YuNet under a free name.\"\"\"
    """,
    "facebench_taken/second.py": """
        from face_alignment.detectors.yunet import YuNetDetector
        from face_alignment.registry import register_detector

        @register_detector("mtcnn")
        class NotMTCNN(YuNetDetector):
            pass
    """,
}


@pytest.fixture
def taken_plugin(tmp_path, monkeypatch):
    source = tmp_path / "taken"
    for rel, text in TAKEN.items():
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_text(textwrap.dedent(text))
    use_plugins_from(pip_install_plugin(source, tmp_path), monkeypatch)
    yield
    for module in ("facebench_taken", "facebench_taken.second"):
        sys.modules.pop(module, None)


def test_a_plugin_with_a_taken_name_is_skipped_with_a_warning(taken_plugin, caplog):
    builtins = {name: registry.get_method(name).factory for name in ("yunet", "mtcnn")}
    with caplog.at_level(logging.WARNING, logger="face_alignment.registry"):
        names = registry.method_names()
    assert "yunet_free" in names  # the suite goes on
    assert {name: registry.get_method(name).factory for name in builtins} == builtins
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert any("'yunet' (facebench_taken:Impostor) is not registered" in w
               and "already registered by face_alignment.detectors.yunet" in w for w in warnings), warnings
    assert any("'second' (facebench_taken.second) is not registered" in w
               and "'mtcnn' is already registered by face_alignment.detectors.mtcnn" in w
               and "facebench_taken.second.NotMTCNN cannot take it" in w for w in warnings), warnings
