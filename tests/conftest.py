"""Shared fixtures: the real LFW data and weights in ../shared, and the real embedder.

Tests that need ../shared say so with ``@pytest.mark.shared`` (a module: ``pytestmark``) or by
using one of :data:`SHARED_FIXTURES`; without it they are skipped, and the rest still run."""
from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACEBENCH_SHARED", REPO.parent / "shared")).resolve()  # tests may change folder
WEIGHTS_DIR = SHARED / "weights"
LFW_DIR = SHARED / "data" / "lfw"
LFW_IMAGES = LFW_DIR / "lfw-deepfunneled"
ALIGNED_DIR = LFW_DIR / "aligned-112"

#: LFW images used across detector tests (all in pairs.txt, so aligned-112 has their reference crop)
SAMPLE_IMAGES = [
    "Aaron_Eckhart/Aaron_Eckhart_0001.jpg",
    "Abel_Pacheco/Abel_Pacheco_0001.jpg",
    "Akhmed_Zakayev/Akhmed_Zakayev_0001.jpg",
    "Amber_Tamblyn/Amber_Tamblyn_0001.jpg",
    "Anders_Fogh_Rasmussen/Anders_Fogh_Rasmussen_0001.jpg",
    "Angela_Bassett/Angela_Bassett_0005.jpg",
    "Ann_Veneman/Ann_Veneman_0003.jpg",
    "Barbara_Walters/Barbara_Walters_0001.jpg",
    "Ben_Affleck/Ben_Affleck_0002.jpg",
    "Bill_Gates/Bill_Gates_0003.jpg",
]



def command_line(process) -> str:
    """A ``psutil.Process``'s command line, or "" for one that ended as it was read (a run's
    short-lived children, such as a git call, turn into zombies for a moment)."""
    import psutil

    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def interruptible() -> None:
    """``preexec_fn`` for a subprocess that a test interrupts with SIGINT: a shell starts
    background jobs (a CI script among them) with SIGINT ignored, Python then keeps it ignored,
    and Ctrl-C would do nothing."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


#: CI installs the whole lock, so an optional package missing there is a broken install (or one
#: that left the lock): its tests fail in CI instead of skipping and leaving CI green
IN_CI = os.environ.get("CI") == "true"


def optional_module(module: str, pip: str | None = None):
    """``module`` imported; where it is missing, the test (or module) is skipped, except in CI."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if IN_CI:
            raise
        pytest.skip(f"needs {pip or module} (pip install {pip or module}): {exc}", allow_module_level=True)


def method_params(statuses) -> list:
    """A ``pytest.param`` per method status (``list_methods``), skipped where the method cannot run
    here (its weights absent, its package missing), except for a missing package in CI: there the
    test runs and fails with the method's own error."""
    def skipped(status) -> bool:
        return not status.ready and not (IN_CI and status.reason.startswith("pip install"))

    return [pytest.param(s.name, marks=pytest.mark.skipif(skipped(s), reason=s.reason)) for s in statuses]


#: whether the real data and weights are here; tests that need them are skipped otherwise
HAVE_SHARED = LFW_IMAGES.is_dir() and WEIGHTS_DIR.is_dir()
#: fixtures that read ../shared: a test using one needs it
SHARED_FIXTURES = {"weights_dir", "sample_images", "embedder", "reference_embeddings", "small_pairs", "yunet"}


def pytest_collection_modifyitems(config, items) -> None:
    """Without ../shared, skip the tests marked ``shared`` or using a fixture that reads it; the
    data-free tests (metrics, decoders, parsers, the architecture) still run."""
    if HAVE_SHARED:
        return
    skip = pytest.mark.skip(reason=f"needs the shared LFW data and weights at {SHARED} (set FACEBENCH_SHARED)")
    for item in items:
        if item.get_closest_marker("shared") or SHARED_FIXTURES & set(item.fixturenames):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    return WEIGHTS_DIR


@pytest.fixture(scope="session")
def sample_images() -> dict[str, np.ndarray]:
    from face_alignment import load_image

    return {rel: load_image(LFW_IMAGES / rel) for rel in SAMPLE_IMAGES}


@pytest.fixture(scope="session")
def embedder():
    from backbones import create_embedder

    return create_embedder("torch", weights_dir=WEIGHTS_DIR, device="cpu")


@pytest.fixture(scope="session")
def reference_embeddings(embedder) -> dict[str, np.ndarray]:
    """EdgeFace embeddings of the reference-aligned crops (insightface's lfw.bin) of SAMPLE_IMAGES."""
    from face_alignment import load_image

    crops = np.stack([load_image(ALIGNED_DIR / rel) for rel in SAMPLE_IMAGES])
    return dict(zip(SAMPLE_IMAGES, embedder.embed(crops)))


def pip_install_plugin(source: Path, root: Path) -> Path:
    """The plugin package at ``source`` pip-installed into ``root / "site"`` (the venv is
    untouched; the build writes egg-info next to the sources, so they are copied first)."""
    import shutil
    import subprocess
    import sys

    shutil.copytree(source, root / "src")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(root / "site"), str(root / "src")], check=True)
    return root / "site"


def use_plugins_from(site: Path, monkeypatch) -> None:
    """Put ``site`` on ``sys.path`` and make the registry look for plugins again; the
    monkeypatch undoes both (the built-ins are registered first, so the restored registry keeps them)."""
    import importlib

    from face_alignment import registry

    registry.method_names()
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_plugins_loaded", False)


@pytest.fixture(scope="module")
def small_pairs():
    """40 View-2 pairs spread over the 10 folds (68 images)."""
    from benchmark.protocol.pairs import read_pairs, subset_pairs

    return subset_pairs(read_pairs(LFW_DIR / "pairs.txt"), 2)


@pytest.fixture(scope="module")
def yunet():
    from face_alignment import create_detector

    return create_detector("yunet", device="cpu", weights_dir=WEIGHTS_DIR)

