"""``facebench speed --quick``: every section runs on the real models and data and returns its
measurements (a check of the command; the measurement itself is ``make bench-speed``)."""
import pytest

from benchmark.cli import main
from benchmark.speed import SpeedOptions, run
from tests.conftest import LFW_DIR, WEIGHTS_DIR

pytestmark = pytest.mark.shared


def test_quick_speed_run_measures_every_section(tmp_path_factory, capsys):
    cache = tmp_path_factory.getbasetemp() / "onnx-cache"  # the export shared with test_onnx_embedder
    report = run(SpeedOptions(lfw_dir=str(LFW_DIR), weights_dir=str(WEIGHTS_DIR), device="cpu",
                              cache_dir=str(cache), quick=True))
    # 1. both passes per default backend, one round each, and the same accuracy: an image's result
    # does not depend on the pass
    assert [(p.backend, p.name) for p in report.passes] == [
        ("torch", "pipelined runner"), ("torch", "sequential loop"), ("onnx", "pipelined runner"),
        ("onnx", "sequential loop")]
    for timing in report.passes:
        assert len(timing.walls) == len(timing.cpus) == 1 and timing.walls[0] > 0 and timing.cpus[0] > 0
        assert timing.peak_rss_mb > 100 and timing.device == "cpu"
        assert 0.8 < timing.accuracies[0] <= 1.0
    assert len({p.accuracies[0] for p in report.passes}) == 1
    # 2. decode, align and YuNet (the --quick detector), two rounds each, and where YuNet ran
    assert [r.name for r in report.stages] == ["decode (1 thread)", "align", "detect yunet"]
    assert all(len(r.per_round) == 2 and min(r.per_round) > 0 for r in report.stages)
    assert (report.stages[2].asked, report.stages[2].device) == ("cpu", "cpu")
    # 3. the fp32 embedder of each backend, against torch fp32 (ratio 1 for itself)
    assert [e.rates.name for e in report.embedders] == ["torch fp32", "onnx fp32", "openvino fp32"]
    assert report.embedders[0].ratio == 1.0 and all(e.ratio > 0 for e in report.embedders)
    assert report.embedders[1].model_mb == pytest.approx(8.73, abs=0.05)  # the EdgeFace-XS export
    assert not report.embedders_not_run and not report.detectors_not_run
    # 4. YuNet (the --quick detector) with 1 and 2 detection workers: every image's result the same,
    # and so section 1's accuracy
    assert [(r.method, r.detect_workers) for r in report.replicas] == [("yunet", 1), ("yunet", 2)]
    assert all(r.same_as_first and r.wall > 0 and r.cpus[0] > 0 for r in report.replicas)
    assert {r.accuracy for r in report.replicas} == {report.passes[0].accuracies[0]}
    # 5. the whole command in a fresh process and the plain loop in one: the same accuracy as the
    # passes of section 1 (the same 40 pairs), a round each
    assert [c.name for c in report.commands] == ["facebench (this checkout)", "plain loop (torch)"]
    assert all(len(c.walls) == 1 and c.wall > 1 for c in report.commands)
    assert {round(c.accuracy, 4) for c in report.commands} == {round(report.passes[0].accuracies[0], 4)}
    out = capsys.readouterr().out
    assert all(f"\n{n}. " in out for n in (1, 2, 3, 4, 5))  # and each section was printed


def test_speed_command_passes_its_options(capsys):
    code = main(["speed", "--sections", "2", "--methods", "yunet", "--repeats", "1", "--quick", "--quiet",
                 "--lfw-dir", str(LFW_DIR), "--weights-dir", str(WEIGHTS_DIR), "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0 and "\n2. stages" in out and "detect yunet" in out
    assert "\n1. " not in out and "\n3. " not in out and "over 1 rounds" in out


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


def test_replica_section_runs_the_methods_and_workers_asked(capsys):
    report = run(SpeedOptions(lfw_dir=str(LFW_DIR), weights_dir=str(WEIGHTS_DIR), device="cpu", backends=("onnx",),
                              sections=("4",), quick=True, replica_methods=("mediapipe_simple",),
                              detect_workers=(2, 1)))
    assert [(r.method, r.detect_workers) for r in report.replicas] == [("mediapipe_simple", 2),
                                                                      ("mediapipe_simple", 1)]
    assert all(r.same_as_first for r in report.replicas) and not report.passes and not report.stages
    out = capsys.readouterr().out
    assert "\n4. detection replicas" in out and "onnx embedder" in out and "results identical to 2 worker(s)" in out
