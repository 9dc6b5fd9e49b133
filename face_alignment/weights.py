"""Weights manifest and resolver.

A file is looked for, in order: an explicit path; the weights directory (argument,
``FACEBENCH_WEIGHTS``, default ``checkpoints/``), both as ``<dir>/<subdir>/<file>`` and
``<dir>/<file>``; then it is downloaded from its official URL into the weights directory with its
sha256 checked. Offline, a missing file is a :class:`WeightsError` that names the file and where to
put it. A file whose sha256 differs from the manifest is refused, except inside
:func:`unverified_weights` (the CLI's ``--allow-unverified-weights``), which records what it let through.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from .atomic import atomic_path
from .errors import ChecksumError, WeightsError

log = logging.getLogger(__name__)

WEIGHTS_ENV = "FACEBENCH_WEIGHTS"
DEFAULT_WEIGHTS_DIR = Path("checkpoints")


@dataclass(frozen=True)
class WeightSpec:
    """One pretrained file: where it lives under the weights directory and how to verify it."""

    name: str
    subdir: str
    filename: str
    sha256: str
    url: str | None
    license: str
    source: str

    @property
    def relpath(self) -> str:
        return f"{self.subdir}/{self.filename}"


_IDIAP = "https://gitlab.idiap.ch/bob/bob.paper.tbiom2023_edgeface/-/raw/master/checkpoints/"

MANIFEST: dict[str, WeightSpec] = {
    spec.name: spec
    for spec in (
        WeightSpec(
            "yunet", "yunet", "face_detection_yunet_2023mar.onnx",
            "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
            "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
            "face_detection_yunet_2023mar.onnx",
            "MIT", "opencv/opencv_zoo",
        ),
        WeightSpec(
            "retinaface_mnet", "retinaface", "mobilenet0.25_Final.pth",
            "2979b33ffafda5d74b6948cd7a5b9a7a62f62b949cef24e95fd15d2883a65220",
            None, "MIT", "biubug6/Pytorch_Retinaface (release files linked from its README)",
        ),
        WeightSpec(
            "yolov5_face", "yolov5_face", "yolov5n-0.5.onnx",
            "67a107113568398d3d57325ff0b1cda1887a13f8e96a95c0fd15b7058ed1589f",
            None, "GPL-3.0", "deepcam-cn/yolov5-face (export of yolov5n-0.5)",
        ),
        WeightSpec(
            "yolov8_face", "yolov8_face", "yolov8-lite-t.onnx",
            "caa9eb121eee8fbf25a5985d3cee4e314df5a08feb4bb8c224fecdeb4afd9b86",
            None, "GPL-3.0", "derronqi/yolov8-face (export of yolov8-lite-t)",
        ),
        WeightSpec(
            "pfld", "landmarks", "pfld.onnx",
            "7d7bbd5c6a1d9272e58d9773898284a1905d872eba9a662df9b5f20f1ba6f83e",
            None, "none stated (test use only)", "cunjian/pytorch_face_landmark",
        ),
        WeightSpec(
            "face_landmarker", "mediapipe", "face_landmarker.task",
            "af23fc7c1ff21d034deaa2b7fc1d56bb670ce69a4cbdc9579b6f1afd680835f4",
            None, "Apache-2.0", "Google MediaPipe (2023 bundle, no blendshapes)",
        ),
        WeightSpec(
            "edgeface_xs_q", "edgeface", "edgeface_xs_q.pt",
            "a31314377876ab9fa2a75e5638bc528efe79fd17d5c9c0a228fb7f846d7581a6",
            _IDIAP + "edgeface_xs_q.pt", "CC BY-NC-SA 4.0", "otroshi/edgeface (Idiap)",
        ),
        WeightSpec(
            "edgeface_xxs_q", "edgeface", "edgeface_xxs_q.pt",
            "46be7cc7e8d6e23501c0627fe5fbef101922ee9b85ccbef476987ab1a320b053",
            _IDIAP + "edgeface_xxs_q.pt", "CC BY-NC-SA 4.0", "otroshi/edgeface (Idiap)",
        ),
    )
}


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def weights_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The weights directory: the argument, else ``$FACEBENCH_WEIGHTS``, else ``checkpoints/``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(WEIGHTS_ENV)
    return Path(env) if env else DEFAULT_WEIGHTS_DIR


#: the files used unverified in the current :func:`unverified_weights` block; None outside one
_UNVERIFIED: ContextVar[list[Path] | None] = ContextVar("facebench_unverified_weights", default=None)


@contextmanager
def unverified_weights(allow: bool = True) -> Iterator[list[Path]]:
    """Within the block (when ``allow``), a weights file whose sha256 differs from the manifest
    is used with a warning instead of refused. Yields the list of the files so used, for the
    report: a number obtained with another file than the manifest's must say so."""
    used: list[Path] = []
    token = _UNVERIFIED.set(used if allow else None)
    try:
        yield used
    finally:
        _UNVERIFIED.reset(token)


def verify(path: Path, expected_sha256: str, allow_unverified: bool = False) -> None:
    """Raise :class:`ChecksumError` unless ``path`` has the expected sha256 (or unverified files
    are allowed, by the argument or an enclosing :func:`unverified_weights`)."""
    actual = sha256_file(path)
    if actual == expected_sha256:
        return
    message = (
        f"{path} has sha256 {actual}, but the manifest expects {expected_sha256}. "
        "The file is corrupt, truncated or a different model: delete it and fetch it again"
    )
    used = _UNVERIFIED.get()
    if allow_unverified or used is not None:
        log.warning("%s (used anyway: unverified weights allowed)", message)
        if used is not None:
            used.append(path)
        return
    raise ChecksumError(message + ", or allow unverified weights (--allow-unverified-weights, "
                        "or unverified_weights() in Python) to use it anyway.")


def download(url: str, dest: Path, expected: str | None, algorithm: str = "sha256",
             timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` through a temporary file in the same directory, checking the
    ``algorithm`` digest before the file is moved into place, so that a failed, interrupted or
    wrong download leaves nothing behind. A process killed outright (SIGKILL) cannot clean up:
    its hidden ``.part`` file, never taken for the weights, is removed by the next download."""
    for leftover in dest.parent.glob(f".{dest.name}.*.part"):
        leftover.unlink(missing_ok=True)
    with atomic_path(dest, suffix=".part") as tmp:
        digest, received = hashlib.new(algorithm), 0
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            announced = response.length  # Content-Length, None when the server sends none
            while block := response.read1(1 << 20):  # what has arrived, so that the .part file grows
                digest.update(block)
                out.write(block)
                received += len(block)
        if announced is not None and received != announced:  # http.client ends a cut-off body quietly
            raise ConnectionError(f"the connection closed after {received} of {announced} bytes of {url}")
        if expected and digest.hexdigest() != expected:
            raise ChecksumError(
                f"download of {url} has {algorithm} {digest.hexdigest()}, expected {expected}; "
                "nothing was saved"
            )
    return dest


def resolve_weights(
    name: str,
    path: str | os.PathLike | None = None,
    directory: str | os.PathLike | None = None,
    download_missing: bool = True,
    allow_unverified: bool = False,
    spec: WeightSpec | None = None,
) -> Path:
    """Return a verified local path to the weights ``name`` of the manifest.

    An explicit ``path`` is used as given (a user's own export need not match the manifest's
    sha256: it is logged, not refused). Files found in the weights directory, and downloads, are
    checked against the manifest.
    """
    spec = spec or MANIFEST.get(name)
    if path is not None:
        explicit = Path(path)
        if not explicit.is_file():
            raise WeightsError(f"weights file {explicit} does not exist")
        if spec is not None and sha256_file(explicit) != spec.sha256:
            log.info("%s: using %s, which is not the manifest's file", name, explicit)
        return explicit
    if spec is None:
        raise WeightsError(f"no weights named {name!r}; known: {', '.join(sorted(MANIFEST))}")
    root = weights_dir(directory)
    for candidate in (root / spec.relpath, root / spec.filename):
        if candidate.is_file():
            verify(candidate, spec.sha256, allow_unverified)
            return candidate
    target = root / spec.relpath
    if spec.url and download_missing:
        log.info("downloading %s from %s", spec.filename, spec.url)
        try:
            return download(spec.url, target, spec.sha256)
        except (OSError, http.client.HTTPException) as exc:  # HTTPException: e.g. the connection dropped
            raise WeightsError(_missing_message(spec, root, f"download failed ({exc})")) from exc
    raise WeightsError(_missing_message(spec, root, "no download URL" if not spec.url else "download disabled"))


def _missing_message(spec: WeightSpec, root: Path, why: str) -> str:
    where = f"from {spec.url}" if spec.url else f"from {spec.source}"
    return (
        f"weights {spec.filename!r} for {spec.name!r} not found in {root} ({why}). "
        f"Get it {where} and put it at {root / spec.relpath} "
        f"(sha256 {spec.sha256}), or point --weights-dir / ${WEIGHTS_ENV} at a folder that has it."
    )


def find_weights(name: str, directory: str | os.PathLike | None = None) -> Path | None:
    """The local file for ``name`` if present (unverified), else None. Used for status listings."""
    spec = MANIFEST[name]
    root = weights_dir(directory)
    for candidate in (root / spec.relpath, root / spec.filename):
        if candidate.is_file():
            return candidate
    return None
