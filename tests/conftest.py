"""Shared fixtures: the real LFW data and weights in ../shared, and the real embedder."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACEBENCH_SHARED", REPO.parent / "shared"))
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



def interruptible() -> None:
    """``preexec_fn`` for a subprocess that a test interrupts with SIGINT: a shell starts
    background jobs (a CI script among them) with SIGINT ignored, Python then keeps it ignored,
    and Ctrl-C would do nothing."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


if not LFW_IMAGES.is_dir() or not WEIGHTS_DIR.is_dir():
    pytest.exit(f"tests need the shared LFW data and weights at {SHARED} (set FACEBENCH_SHARED)", returncode=2)


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    return WEIGHTS_DIR


@pytest.fixture(scope="session")
def sample_images() -> dict[str, np.ndarray]:
    from face_alignment import load_image

    return {rel: load_image(LFW_IMAGES / rel) for rel in SAMPLE_IMAGES}


@pytest.fixture(scope="session")
def embedder():
    from backbones import Embedder

    return Embedder.from_weights(weights_dir=WEIGHTS_DIR, device="cpu")


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
    from benchmark.lfw import read_pairs, subset_pairs

    return subset_pairs(read_pairs(LFW_DIR / "pairs.txt"), 2)


@pytest.fixture(scope="module")
def yunet():
    from face_alignment import create_detector

    return create_detector("yunet", device="cpu", weights_dir=WEIGHTS_DIR)

