"""``make setup GPU=1``'s steps (tools/gpu_setup.py): the NVIDIA driver check, fed by a stub
``nvidia-smi`` on PATH (no GPU here), and the GPU requirement list, which pip must resolve on the index."""
from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tools" / "gpu_setup.py"
LOCK = REPO / "requirements" / "lock.txt"


def _check_driver(tmp_path: Path, smi: str | None) -> subprocess.CompletedProcess:
    """``gpu_setup.py check-driver`` with PATH holding only a stub ``nvidia-smi`` running the shell
    lines ``smi`` (None: no nvidia-smi at all)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if smi is not None:
        stub = bin_dir / "nvidia-smi"
        stub.write_text(f"#!/bin/sh\n{smi}\n")
        stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    return subprocess.run([sys.executable, str(SCRIPT), "check-driver"], capture_output=True, text=True,
                          env={"PATH": str(bin_dir)}, timeout=60)


def test_a_new_enough_driver_passes(tmp_path):
    result = _check_driver(tmp_path, 'echo "580.95.05"\necho "580.95.05"')
    assert result.returncode == 0, result.stderr
    assert "580.95.05" in result.stdout and "CUDA 13.0" in result.stdout


@pytest.mark.parametrize("versions", ["575.57.08", "580.65.06\\n570.86.10", "470.57.02"])
def test_a_driver_older_than_cuda_13_needs_stops_the_setup(tmp_path, versions):
    result = _check_driver(tmp_path, f'printf "{versions}\\n"')
    assert result.returncode == 1
    oldest = min(versions.split("\\n"), key=lambda v: tuple(map(int, v.split("."))))
    assert f"driver here is {oldest}, too old" in result.stderr and ">= 580.65.06" in result.stderr, result.stderr


def test_the_minimum_itself_passes(tmp_path):
    assert _check_driver(tmp_path, 'echo "580.65.06"').returncode == 0


def test_no_nvidia_smi_stops_the_setup(tmp_path):
    result = _check_driver(tmp_path, None)
    assert result.returncode == 1
    assert "nvidia-smi not found" in result.stderr and ">= 580.65.06" in result.stderr, result.stderr


def test_a_driver_that_does_not_answer_stops_the_setup(tmp_path):
    failed = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
    result = _check_driver(tmp_path, f'echo "{failed}"\nexit 9')
    assert result.returncode == 1
    assert "exit 9" in result.stderr and failed in result.stderr, result.stderr


def test_an_answer_without_a_version_stops_the_setup(tmp_path):
    result = _check_driver(tmp_path, 'echo "[N/A]"')
    assert result.returncode == 1 and "no driver version" in result.stderr, result.stderr


def _gpu_requirements(tmp_path: Path) -> list[str]:
    out = tmp_path / "requirements-gpu.txt"
    subprocess.run([sys.executable, str(SCRIPT), "requirements", str(out)], check=True, timeout=60)
    return [line for line in out.read_text().splitlines() if line and not line.startswith("#")]


def test_the_gpu_list_is_the_lock_with_onnxruntime_swapped(tmp_path):
    lock = [line for line in LOCK.read_text().splitlines() if line.strip() and not line.startswith("#")]
    gpu = _gpu_requirements(tmp_path)
    assert "onnxruntime-gpu==1.31.1" in gpu and "nvidia-ml-py==13.615.71" in gpu
    assert not [line for line in gpu if line.startswith("onnxruntime==")]
    assert set(gpu) - {"onnxruntime-gpu==1.31.1", "nvidia-ml-py==13.615.71"} == {
        line for line in lock if not line.startswith("onnxruntime==")}


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _pypi_reachable(), reason="needs the network (PyPI)")
def test_pip_resolves_every_pin_of_the_gpu_list(tmp_path):
    """Each pin exists on the index for this platform (``--ignore-installed``: the venv's copies do
    not count); pip downloads only the wheels' metadata."""
    requirements = tmp_path / "requirements-gpu.txt"
    requirements.write_text("\n".join(_gpu_requirements(tmp_path)) + "\n")
    report = tmp_path / "report.json"
    subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed",
                    "--quiet", "--report", str(report), "-r", str(requirements)], check=True, timeout=900)
    chosen = {item["metadata"]["name"].lower(): item["metadata"]["version"]
              for item in json.loads(report.read_text())["install"]}
    assert chosen["onnxruntime-gpu"] == "1.31.1" and chosen["nvidia-ml-py"] == "13.615.71"
    assert "onnxruntime" not in chosen
    assert len(chosen) == len(_gpu_requirements(tmp_path))
