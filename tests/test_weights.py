"""Weights resolution, checksums and download, against a real HTTP server on 127.0.0.1."""
import functools
import http.server
import shutil
import threading

import pytest

from face_alignment.errors import ChecksumError, WeightsError
from face_alignment.weights import MANIFEST, WeightSpec, resolve_weights, sha256_file
from tests.conftest import WEIGHTS_DIR


@pytest.fixture
def http_root(tmp_path):
    """Serve ``tmp_path/'srv'`` on 127.0.0.1; yields (folder, base URL)."""
    root = tmp_path / "srv"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_manifest_matches_shared_files():
    for spec in MANIFEST.values():
        assert sha256_file(WEIGHTS_DIR / spec.relpath) == spec.sha256, spec.name


def test_resolution_order(tmp_path, monkeypatch):
    assert resolve_weights("yunet", directory=WEIGHTS_DIR) == WEIGHTS_DIR / "yunet/face_detection_yunet_2023mar.onnx"
    monkeypatch.setenv("FACEBENCH_WEIGHTS", str(WEIGHTS_DIR))
    assert resolve_weights("yunet").is_file()
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(WEIGHTS_DIR / "yunet/face_detection_yunet_2023mar.onnx", flat)
    assert resolve_weights("yunet", directory=flat) == flat / "face_detection_yunet_2023mar.onnx"
    explicit = flat / "face_detection_yunet_2023mar.onnx"
    assert resolve_weights("yunet", path=explicit, directory=tmp_path / "empty") == explicit


def test_wrong_file_in_weights_dir_is_refused(tmp_path):
    (tmp_path / "yunet").mkdir()
    (tmp_path / "yunet/face_detection_yunet_2023mar.onnx").write_bytes(b"not a model")
    with pytest.raises(ChecksumError, match="sha256"):
        resolve_weights("yunet", directory=tmp_path, download_missing=False)
    assert resolve_weights("yunet", directory=tmp_path, allow_unverified=True).is_file()


def _spec(url):
    src = MANIFEST["yunet"]
    return WeightSpec("yunet", "yunet", src.filename, src.sha256, url, src.license, src.source)


def test_download_verified(http_root, tmp_path):
    root, base = http_root
    shutil.copy(WEIGHTS_DIR / "yunet/face_detection_yunet_2023mar.onnx", root)
    dest = tmp_path / "weights"
    path = resolve_weights("yunet", directory=dest, spec=_spec(f"{base}/face_detection_yunet_2023mar.onnx"))
    assert path == dest / "yunet/face_detection_yunet_2023mar.onnx"
    assert sha256_file(path) == MANIFEST["yunet"].sha256


def test_download_with_wrong_checksum_leaves_nothing(http_root, tmp_path):
    root, base = http_root
    shutil.copy(WEIGHTS_DIR / "landmarks/pfld.onnx", root / "face_detection_yunet_2023mar.onnx")  # wrong file
    dest = tmp_path / "weights"
    with pytest.raises(ChecksumError, match="nothing was saved"):
        resolve_weights("yunet", directory=dest, spec=_spec(f"{base}/face_detection_yunet_2023mar.onnx"))
    assert not any(p.is_file() for p in dest.rglob("*"))


def test_offline_error_names_file_and_place(http_root, tmp_path):
    _, base = http_root
    with pytest.raises(WeightsError, match=r"put it at .*yunet/face_detection_yunet_2023mar.onnx"):
        resolve_weights("yunet", directory=tmp_path, spec=_spec(f"{base}/missing.onnx"))
    with pytest.raises(WeightsError, match="retinaface"):
        resolve_weights("retinaface_mnet", directory=tmp_path)  # no official direct URL
