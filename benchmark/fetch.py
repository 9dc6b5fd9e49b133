"""``facebench fetch-lfw``: download LFW (deep-funneled images and the View-2 pairs) and check it.

Each file is downloaded through a temporary file and checked against its published md5 before
it is moved into place; the archive is extracted into a temporary folder that is renamed only
when complete. A failure leaves no partial file or folder behind.
"""
from __future__ import annotations

import logging
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from face_alignment.errors import DatasetError
from face_alignment.weights import download

log = logging.getLogger(__name__)

LFW_BASE_URL = "http://vis-www.cs.umass.edu/lfw/"


@dataclass(frozen=True)
class RemoteFile:
    name: str
    md5: str
    extract_to: str | None = None  # folder the archive holds, extracted beside it


#: published files and their md5 (the same digests torchvision's LFW dataset checks)
LFW_FILES = (
    RemoteFile("pairs.txt", "9f1ba174e4e1c508ff7cdf10ac338a7d"),
    RemoteFile("lfw-deepfunneled.tgz", "68331da3eb755a505a502b5aacb3c201", extract_to="lfw-deepfunneled"),
)


def fetch_lfw(data_dir: str | os.PathLike, base_url: str = LFW_BASE_URL,
              files: tuple[RemoteFile, ...] = LFW_FILES, keep_archive: bool = False) -> Path:
    """Download and check ``files`` from ``base_url`` into ``data_dir``; skip what is there."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    for remote in files:
        target = data_dir / (remote.extract_to or remote.name)
        if target.exists():
            log.info("%s already present, skipped", target)
            continue
        url = base_url.rstrip("/") + "/" + remote.name
        log.info("downloading %s", url)
        try:
            archive = download(url, data_dir / remote.name, remote.md5, algorithm="md5")
        except OSError as exc:  # no network, DNS, refused, cut off: nothing partial is left behind
            raise DatasetError(f"could not download {url}: {exc}. Check the connection (or --base-url), "
                               "or put lfw-deepfunneled/ and pairs.txt in the data folder yourself") from exc
        if remote.extract_to:
            _extract(archive, data_dir, remote.extract_to)
            if not keep_archive:
                archive.unlink()
    log.info("LFW is in %s", data_dir)
    return data_dir


def _extract(archive: Path, data_dir: Path, folder: str) -> None:
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=data_dir))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(staging, filter="data")
        if not (staging / folder).is_dir():
            raise tarfile.ReadError(f"{archive.name} does not hold the folder {folder}/")
        os.replace(staging / folder, data_dir / folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
