"""Weights files: their specs, and the resolver.

A :class:`WeightSpec` names one file and its sha256. A detector declares its specs beside it, by
passing them to :func:`~face_alignment.registry.register_detector`; :data:`MANIFEST` holds the
others (the embedders').

A file is looked for, in order: an explicit path; the weights directory (argument, else
``$FACEBENCH_WEIGHTS``, else ``checkpoints/`` and then ``../shared/weights``, the shared folder
beside a checkout that the data's LFW lookup also uses), each as ``<dir>/<subdir>/<file>`` and
``<dir>/<file>``; then it is downloaded from its official URL into the first of those folders with
its sha256 checked. Offline, a missing file is a :class:`WeightsError` that names the file and where to
put it. A file whose sha256 differs from its spec is refused, except inside
:func:`unverified_weights` (the CLI's ``--allow-unverified-weights``), which records what it let through.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from .atomic import atomic_path
from .errors import ChecksumError, WeightsError

log = logging.getLogger(__name__)

WEIGHTS_ENV = "FACEBENCH_WEIGHTS"
#: the folders searched when none is given and $FACEBENCH_WEIGHTS is unset, in order; downloads go
#: to the first
DEFAULT_WEIGHTS_DIRS = (Path("checkpoints"), Path("../shared/weights"))


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

#: the weights that no detector declares: the EdgeFace embedders of :mod:`backbones`. A detector's
#: weights are declared beside it, with :func:`~face_alignment.registry.register_detector`, and
#: looked up by name with :func:`~face_alignment.registry.weight_spec`.
MANIFEST: dict[str, WeightSpec] = {
    spec.name: spec
    for spec in (
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


def weights_dirs(explicit: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for weights: the argument, else ``$FACEBENCH_WEIGHTS``, else
    :data:`DEFAULT_WEIGHTS_DIRS`."""
    if explicit:
        return [Path(explicit)]
    env = os.environ.get(WEIGHTS_ENV)
    return [Path(env)] if env else list(DEFAULT_WEIGHTS_DIRS)


def weights_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Where a missing file is downloaded to, and where it is said to belong: the first searched folder."""
    return weights_dirs(explicit)[0]


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


def note_unverified(paths: Sequence[Path]) -> None:
    """Count ``paths`` as used unverified in the enclosing :func:`unverified_weights` block (files
    another process loaded on this one's behalf, such as a task on a Ray cluster)."""
    used = _UNVERIFIED.get()
    if used is not None:
        used.extend(paths)


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
    spec: WeightSpec | str,
    path: str | os.PathLike | None = None,
    directory: str | os.PathLike | None = None,
    download_missing: bool = True,
    allow_unverified: bool = False,
) -> Path:
    """Return a verified local path to the weights of ``spec`` (or of a name of :data:`MANIFEST`).

    An explicit ``path`` is used as given (a user's own export need not match the spec's
    sha256: it is logged, not refused). Files found in the weights directory, and downloads, are
    checked against the spec.
    """
    name, spec = (spec.name, spec) if isinstance(spec, WeightSpec) else (spec, MANIFEST.get(spec))
    if path is not None:
        explicit = Path(path)
        if not explicit.is_file():
            raise WeightsError(f"weights file {explicit} does not exist")
        if spec is not None and sha256_file(explicit) != spec.sha256:
            log.info("%s: using %s, which is not the manifest's file", name, explicit)
        return explicit
    if spec is None:
        raise WeightsError(f"no weights named {name!r} in the manifest (known: {', '.join(sorted(MANIFEST))}); "
                           "a detector's weights are found with face_alignment.registry.weight_spec")
    found = find_weights(spec, directory)
    if found is not None:
        verify(found, spec.sha256, allow_unverified)
        return found
    target = weights_dir(directory) / spec.relpath
    if spec.url and download_missing:
        log.info("downloading %s from %s", spec.filename, spec.url)
        try:
            return download(spec.url, target, spec.sha256)
        except (OSError, http.client.HTTPException) as exc:  # HTTPException: e.g. the connection dropped
            raise WeightsError(_missing_message(spec, directory, f"download failed ({exc})")) from exc
    raise WeightsError(_missing_message(spec, directory, "no download URL" if not spec.url else "download disabled"))


def _missing_message(spec: WeightSpec, directory: str | os.PathLike | None, why: str) -> str:
    where = f"from {spec.url}" if spec.url else f"from {spec.source}"
    searched = " or ".join(str(root) for root in weights_dirs(directory))
    return (
        f"weights {spec.filename!r} for {spec.name!r} not found in {searched} ({why}). "
        f"Get it {where} and put it at {weights_dir(directory) / spec.relpath} "
        f"(sha256 {spec.sha256}), or point --weights-dir / ${WEIGHTS_ENV} at a folder that has it."
    )


def find_weights(spec: WeightSpec, directory: str | os.PathLike | None = None) -> Path | None:
    """The local file of ``spec`` in the first searched folder that has it (:func:`weights_dirs`),
    as ``<subdir>/<file>`` or ``<file>`` (unverified), else None."""
    for root in weights_dirs(directory):
        for candidate in (root / spec.relpath, root / spec.filename):
            if candidate.is_file():
                return candidate
    return None
