"""torch is loaded only for the PyTorch model: never by ``import backbones``, nor by the ONNX
Runtime embedder once the ONNX export is cached, checked in fresh interpreters. (Cycles and
layering of the whole project: ``tests/test_architecture.py``.)"""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from backbones import create_embedder
from face_alignment import load_image
from tests.conftest import ALIGNED_DIR, REPO, SAMPLE_IMAGES, WEIGHTS_DIR


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True,
                          check=True, timeout=300)


def test_import_backbones_does_not_import_torch():
    out = _run("""
        import sys
        import backbones
        from backbones import BACKENDS, DEFAULT_EMBEDDER, PRECISIONS, BaseEmbedder, Calibration, OrtSettings
        assert BACKENDS == ("torch", "onnx", "openvino", "dlib") and "int8" in PRECISIONS and DEFAULT_EMBEDDER
        assert {"edgeface_xs", "dlib_resnet"} <= {status.name for status in backbones.list_embedders()}
        print("torch" in sys.modules or "dlib" in sys.modules)
    """)
    assert out.stdout.split() == ["False"], out.stderr


@pytest.mark.shared
def test_onnx_embedder_runs_without_torch_on_a_cached_export(tmp_path):
    """The export is made here (it needs torch); a fresh interpreter then embeds real crops from
    the same cache without ever importing torch, and gets this process's embeddings."""
    cache_dir = tmp_path / "onnx-cache"
    crops = np.stack([load_image(ALIGNED_DIR / p) for p in SAMPLE_IMAGES[:4]])
    here = create_embedder("onnx", "fp32", weights_dir=WEIGHTS_DIR, cache_dir=cache_dir).embed(crops)
    out = _run(f"""
        import json, sys
        import numpy as np
        from backbones import create_embedder
        from face_alignment import load_image
        crops = np.stack([load_image(p) for p in {[str(ALIGNED_DIR / p) for p in SAMPLE_IMAGES[:4]]!r}])
        embedder = create_embedder("onnx", "fp32", weights_dir={str(WEIGHTS_DIR)!r}, cache_dir={str(cache_dir)!r})
        print(json.dumps({{"torch": "torch" in sys.modules, "embeddings": embedder.embed(crops).tolist()}}))
    """)
    child = json.loads(out.stdout.splitlines()[-1])
    assert child["torch"] is False, out.stderr
    assert here.shape == (4, 512)
    np.testing.assert_allclose(np.array(child["embeddings"], dtype=np.float32), here, atol=1e-5, rtol=0)
