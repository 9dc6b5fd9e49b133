"""A configuration that cannot work is refused before any work: exit 2, one line that says what to
do, no traceback, nothing written (the README's promise for a device, precision or embedder
backend this machine cannot run)."""
import subprocess
import sys

import pytest

from tests.conftest import LFW_DIR, REPO, WEIGHTS_DIR

pytestmark = pytest.mark.shared


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _run(tmp_path, *options: str, prelude: str = "", quiet: bool = True) -> subprocess.CompletedProcess:
    """The CLI in a fresh interpreter (``prelude`` runs first: it can hide an installed package)."""
    argv = ["--methods", "yunet", "--lfw-dir", str(LFW_DIR), "--weights-dir", str(WEIGHTS_DIR), "--max-pairs", "20",
            "--out", str(tmp_path / "out"), *options, *(["--quiet"] if quiet else [])]
    code = f"{prelude}\nimport sys\nfrom benchmark.cli import main\nsys.exit(main({argv!r}))"
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)


CASES = [
    pytest.param(["--device", "gpu"], "", "unknown device 'gpu': use auto, cpu, cuda or cuda:N", id="unknown-device"),
    pytest.param(["--device", "cuda:99"], "", "--device cuda:99: ", id="no-such-gpu"),
    pytest.param(["--device", "cuda"], "", "--device cuda: no usable CUDA GPU here", id="cuda-without-gpu",
                 marks=pytest.mark.skipif("_has_cuda()", reason="this machine has a GPU")),
    pytest.param(["--embedder", "torch", "--precision", "fp16"], "",
                 "--precision fp16 on --embedder torch needs a CUDA device",
                 id="fp16-on-cpu", marks=pytest.mark.skipif("_has_cuda()", reason="this machine has a GPU")),
    pytest.param(["--embedder", "torch", "--precision", "int8"], "", "the torch embedder runs fp32 or fp16, not int8",
                 id="torch-int8"),
    pytest.param(["--embedder", "openvino"], "import sys; sys.modules['openvino'] = None  # as if not installed",
                 "--embedder openvino needs OpenVINO: pip install openvino", id="backend-not-installed"),
]


@pytest.mark.parametrize("options, prelude, message", CASES)
def test_an_impossible_configuration_is_one_line_before_any_work(tmp_path, options, prelude, message):
    result = _run(tmp_path, *options, prelude=prelude)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr  # one line
    assert result.stderr.startswith(f"facebench: error: {message}"), result.stderr
    assert not (tmp_path / "out").exists()  # refused before the output folder, let alone a method


def test_without_quiet_the_error_is_still_the_last_line_and_no_traceback(tmp_path):
    result = _run(tmp_path, "--device", "gpu", quiet=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("facebench: error: unknown device 'gpu'")
