"""fetch-lfw against a local HTTP server serving files from ../shared/data/lfw."""
import tarfile

import pytest

from benchmark.cli import main
from benchmark.fetch import RemoteFile, fetch_lfw
from benchmark.protocol.pairs import read_pairs
from face_alignment.errors import ChecksumError
from face_alignment.weights import download
from tests.conftest import LFW_DIR, LFW_IMAGES
from tests.test_weights import http_root  # noqa: F401  (fixture)


def _md5(path):
    import hashlib

    return hashlib.md5(path.read_bytes()).hexdigest()


def _small_archive(root):
    archive = root / "lfw-deepfunneled.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        for person in ("Aaron_Eckhart", "Abel_Pacheco"):
            tar.add(LFW_IMAGES / person, arcname=f"lfw-deepfunneled/{person}")
    return archive


@pytest.mark.shared
def test_fetch_real_pairs_and_archive(http_root, tmp_path):  # noqa: F811
    root, base = http_root
    (root / "pairs.txt").write_bytes((LFW_DIR / "pairs.txt").read_bytes())
    archive = _small_archive(root)
    files = (RemoteFile("pairs.txt", "9f1ba174e4e1c508ff7cdf10ac338a7d"),  # the published md5
             RemoteFile("lfw-deepfunneled.tgz", _md5(archive), extract_to="lfw-deepfunneled"))
    data = fetch_lfw(tmp_path / "lfw", base, files)
    assert len(read_pairs(data / "pairs.txt")) == 6000
    assert (data / "lfw-deepfunneled/Aaron_Eckhart/Aaron_Eckhart_0001.jpg").is_file()
    assert sorted(p.name for p in data.iterdir()) == ["lfw-deepfunneled", "pairs.txt"]


@pytest.mark.shared
def test_fetch_bad_checksum_leaves_no_partial(http_root, tmp_path):  # noqa: F811
    root, base = http_root
    _small_archive(root)
    files = (RemoteFile("lfw-deepfunneled.tgz", "0" * 32, extract_to="lfw-deepfunneled"),)
    with pytest.raises(ChecksumError):
        fetch_lfw(tmp_path / "lfw", base, files)
    assert list((tmp_path / "lfw").iterdir()) == []


def test_interrupted_download_leaves_nothing(http_root, tmp_path):  # noqa: F811
    _, base = http_root
    with pytest.raises(OSError):
        download(f"{base}/absent.tgz", tmp_path / "dl" / "x.tgz", None)
    assert list((tmp_path / "dl").iterdir()) == []


def test_run_without_data_stops_with_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FACEBENCH_LFW", raising=False)
    assert main(["--lfw-dir", str(tmp_path / "missing"), "--quiet"]) == 2
    assert "fetch-lfw" in capsys.readouterr().err


def test_unreachable_server_is_a_clear_error(tmp_path, capsys):
    """Nothing listens on the port: exit 2 with the URL and what to do, no traceback."""
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago, now closed again
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = main(["fetch-lfw", "--data-dir", str(tmp_path / "lfw"), "--base-url", f"http://127.0.0.1:{port}/lfw"])
    err = capsys.readouterr().err
    assert code == 2 and "could not download" in err and f"127.0.0.1:{port}" in err and "Traceback" not in err
    assert not any((tmp_path / "lfw").iterdir())
