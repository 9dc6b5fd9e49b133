"""``make gpu-check``'s script (benchmark.gpu_check) in its reduced ``--device cpu`` run on the
real models and data: every section prints and is written to JSON and Markdown, the CUDA-only
parts say why they were skipped, and ``--device cuda`` without a GPU stops before any work."""
import json

import pytest
import torch

from benchmark import gpu_check
from tests.conftest import LFW_DIR, WEIGHTS_DIR

pytestmark = pytest.mark.shared

DATA = ["--lfw-dir", str(LFW_DIR), "--weights-dir", str(WEIGHTS_DIR)]


def test_reduced_cpu_run_prints_and_writes_every_section(tmp_path, capsys):
    code = gpu_check.main(["--device", "cpu", "--methods", "yunet", "--out", str(tmp_path), *DATA])
    out = capsys.readouterr().out
    assert code == 0, out
    for header in ("\n1. detectors", "\n2. embedder", "\n3. LFW pass", "\n4. detection replicas' scaling"):
        assert header in out
    assert out.count("skipped (CUDA only") == 2  # tf32/fp16/batch 1024, and the pass on the GPU
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["device"] == "cpu" and not report["failed"] and len(report["skipped"]) == 2
    sections = report["sections"]
    detectors = {row["stage"]: row for row in sections["1. detectors"]}
    assert detectors["detect yunet"]["asked"] == detectors["detect yunet"]["ran_on"] == "cpu"
    assert all(row["images_per_s"] > 0 for row in detectors.values())
    embedder = sections["2. embedder"]
    assert [(row["precision"], row["batch"]) for row in embedder] == [("fp32", 64), ("fp32", 256)]
    assert all(row["max_cosine_distance"] < 1e-5 for row in embedder)  # the CPU fp32 reference itself
    [cpu_pass] = sections["3. LFW pass"]
    assert cpu_pass["detect_workers"] == 2 and cpu_pass["embedder_device"] == "cpu"
    assert 0.9 < cpu_pass["accuracy"] <= 1.0 and cpu_pass["nvml_peak_mb"].startswith("n/a: ")
    scaling = sections["4. replicas scaling"]
    assert [row["detect_workers"] for row in scaling] == [1, 2]
    assert all(row["same_as_one_worker"] for row in scaling) and scaling[0]["speedup"] == 1.0
    markdown = (tmp_path / "gpu_check.md").read_text()
    assert "## 4. replicas scaling" in markdown and "| detect_workers |" in markdown and "## Skipped" in markdown


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_stops_before_any_work(tmp_path, capsys):
    assert gpu_check.main(["--device", "cuda", "--out", str(tmp_path), *DATA]) == 2
    assert "no usable CUDA GPU" in capsys.readouterr().err and not any(tmp_path.iterdir())
