"""The plug-in of docs/ADD_A_DETECTOR.md (tests/plugin_minimal): the guide quotes its files
exactly, and the package, pip-installed into a temporary folder, is listed ready, finds what the
built-in YuNet finds (it runs the same model through its own code) and runs a benchmark."""
from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from face_alignment import create_detector, registry
from tests.conftest import LFW_DIR, REPO, SAMPLE_IMAGES, WEIGHTS_DIR, pip_install_plugin, use_plugins_from

PLUGIN = Path(__file__).parent / "plugin_minimal"
GUIDE = REPO / "docs" / "ADD_A_DETECTOR.md"
#: a file the guide quotes: its name in bold code, then its fenced block
QUOTED = re.compile(r"^\*\*`(?P<name>[^`]+)`\*\*\n\n```\w*\n(?P<text>.*?)^```$", re.MULTILINE | re.DOTALL)


def _package_files() -> dict[str, str]:
    """The plug-in's source files (not what a build or Python leaves beside them)."""
    return {p.relative_to(PLUGIN).as_posix(): p.read_text() for p in sorted(PLUGIN.rglob("*"))
            if p.is_file() and not {"__pycache__", "build"} & set(p.parts)
            and not any(part.endswith(".egg-info") for part in p.parts)}


def test_the_guide_quotes_the_package_exactly():
    quoted = {m["name"]: m["text"] for m in QUOTED.finditer(GUIDE.read_text())}
    assert quoted.keys() == _package_files().keys()
    for name, text in _package_files().items():
        assert quoted[name] == text, f"docs/ADD_A_DETECTOR.md quotes {name} differently from tests/plugin_minimal"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    return pip_install_plugin(PLUGIN, tmp_path_factory.mktemp("plugin_minimal"))


@pytest.fixture
def installed(plugin_site, monkeypatch):
    """The plug-in on ``sys.path`` (spawned children inherit it), found through its entry point."""
    use_plugins_from(plugin_site, monkeypatch)
    yield
    sys.modules.pop("facebench_my_yunet", None)


@pytest.mark.shared
def test_it_is_listed_ready_with_its_weights(installed):
    status = {s.name: s for s in registry.list_methods(WEIGHTS_DIR)}["my_yunet"]
    assert status.ready and status.reason == "ready", status
    assert status.description == "YuNet 2023mar through cv2.FaceDetectorYN (plug-in example)"
    from facebench_my_yunet import WEIGHTS, MyYuNet

    info = registry.get_method("my_yunet")
    assert info.factory is MyYuNet and info.weights == (WEIGHTS,)
    assert registry.weight_spec("my_yunet") == WEIGHTS


@pytest.mark.shared
def test_it_finds_what_the_builtin_yunet_finds(installed, yunet, sample_images):
    mine = create_detector("my_yunet", device="cpu", weights_dir=WEIGHTS_DIR)
    assert mine.name == "my_yunet" and [p.name for p in mine.weight_paths] == ["face_detection_yunet_2023mar.onnx"]
    images = [sample_images[rel] for rel in SAMPLE_IMAGES]
    for rel, ours, theirs in zip(SAMPLE_IMAGES, mine.detect(images), yunet.detect(images)):
        assert ours and len(ours) == len(theirs), rel
        for a, b in zip(ours, theirs):
            assert np.abs(a.landmarks - b.landmarks).max() <= 1.0, rel
            assert np.abs(a.bbox - b.bbox).max() <= 1.0 and abs(a.score - b.score) < 1e-3, rel


@pytest.mark.shared
def test_facebench_methods_and_a_run(installed, tmp_path, capsys):
    from benchmark.cli import main

    assert main(["methods", "--weights-dir", str(WEIGHTS_DIR)]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("my_yunet "))
    assert line.split()[1] == "ready", line

    out = tmp_path / "run"
    code = main(["--methods", "my_yunet", "--lfw-dir", str(LFW_DIR), "--weights-dir", str(WEIGHTS_DIR),
                 "--max-pairs", "20", "--device", "cpu", "--quiet", "--out", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    assert re.search(r"^my_yunet +\d\.\d{4} ", table, re.MULTILINE), table
    with open(out / "report.csv", newline="") as fh:
        rows = {row["method"]: row for row in csv.DictReader(fh)}
    row = rows["my_yunet"]
    assert row["error"] == "" and row["n_pairs"] == "20", row
    assert float(row["accuracy"]) >= 0.8 and float(row["success_rate"]) == 1.0, row
    assert row["detector_model"] == "my_yunet (face_detection_yunet_2023mar.onnx)", row
