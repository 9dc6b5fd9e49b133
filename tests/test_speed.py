"""``facebench speed --quick``: every section runs on the real models and data and prints its
numbers (a smoke test of the command; the measurement itself is ``make bench-speed``)."""
import re

import pytest

from benchmark.cli import main
from tests.conftest import LFW_DIR, WEIGHTS_DIR


def test_quick_speed_run_prints_every_section(tmp_path_factory, capsys):
    cache = tmp_path_factory.getbasetemp() / "onnx-cache"  # the export shared with test_onnx_embedder
    code = main(["speed", "--quick", "--quiet", "--lfw-dir", str(LFW_DIR), "--weights-dir", str(WEIGHTS_DIR),
                 "--device", "cpu", "--cache-dir", str(cache)])
    out = capsys.readouterr().out
    assert code == 0, out
    # 40 pairs end to end, both passes per default backend, and the same accuracy (an image's result
    # does not depend on the pass)
    assert "40 pairs" in out and out.count("accuracy equal") == 2
    for backend in ("torch", "onnx"):
        for name in ("pipelined runner", "sequential loop"):
            assert re.search(rf"{backend} +{name} +wall +[\d.]+ s \([\d.]+\.\.[\d.]+\) +CPU +[\d.]+ s \( *[\d.]+ "
                             r"cores\) +peak RSS +\d+ MB +accuracy 0\.\d{4}  ", out), (backend, name)
        assert re.search(rf"{backend} +pipelined / sequential wall time [\d.]+x \(medians of 1\); accuracy equal",
                         out), backend
    for stage in ("decode (1 thread)", "align", "detect yunet", "torch fp32", "onnx fp32", "openvino fp32"):
        assert re.search(re.escape(stage) + r" +[\d.]+ +\([\d.]+\.\.[\d.]+\)", out), stage
    assert re.search(r"torch fp32 +[\d.]+ +\([\d.]+\.\.[\d.]+\) +1\.00", out)  # the baseline of the ratios


def test_speed_rejects_an_unknown_backend(capsys):
    code = main(["speed", "--quick", "--embedder", "torch,tensorflow", "--sections", "1", "--lfw-dir", str(LFW_DIR),
                 "--weights-dir", str(WEIGHTS_DIR)])
    assert code == 2 and "unknown backend tensorflow" in capsys.readouterr().err


def test_speed_help_describes_the_sections(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["speed", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--quick" in out and "pipelined runner" in out and "sequential loop" in out
