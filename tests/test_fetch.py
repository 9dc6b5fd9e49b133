"""fetch-lfw against a local HTTP server serving files from ../shared/data/lfw."""
import tarfile

import pytest

from benchmark.cli import main
from benchmark.fetch import RemoteFile, fetch_lfw
from benchmark.lfw import read_pairs
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
