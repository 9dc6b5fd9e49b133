"""What a user sees on stderr: a real ``facebench`` run in a subprocess prints nothing there under
--quiet, and only its own INFO lines and progress bars without it. No library noise: torch's
UserWarnings from loading the qint8 EdgeFace checkpoint, OpenCV's ``[ WARN:...]
setPreferableTarget`` from building YuNet, MediaPipe's TFLite and absl start-up lines."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings

import pytest

from tests.conftest import LFW_DIR, REPO, WEIGHTS_DIR

RUN = [sys.executable, "-m", "benchmark", "--methods", "yunet,mediapipe", "--lfw-dir", str(LFW_DIR),
       "--weights-dir", str(WEIGHTS_DIR), "--max-pairs", "20", "--device", "cpu"]
#: lines that a library, not facebench, prints: Python warnings, OpenCV's log, absl / glog
#: (``W0000 00:00:...``), TFLite's minimal logger (``INFO: Created ...``)
NOISE = re.compile(r"Warning|WARN|absl|^[IWEF]\d{4} |^(INFO|WARNING|ERROR): ", re.MULTILINE)


def _facebench(*args: str, tmp_path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONWARNINGS", "OPENCV_LOG", "GLOG_"))}
    done = subprocess.run([*RUN, "--out", str(tmp_path / "run"), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^yunet .*\n^mediapipe ", done.stdout, re.MULTILINE), done.stdout
    return done


@pytest.mark.shared
def test_quiet_run_prints_nothing_on_stderr(tmp_path):
    assert _facebench("--quiet", tmp_path=tmp_path).stderr == ""


@pytest.mark.shared
def test_a_run_prints_its_own_lines_only(tmp_path):
    err = _facebench(tmp_path=tmp_path).stderr
    lines = [line.strip() for line in re.split(r"[\r\n]+", err) if line.strip()]  # tqdm redraws after \r
    assert not NOISE.findall("\n".join(lines)), err
    assert any(line.startswith("INFO benchmark.run.runner: report written to") for line in lines), err
    for line in lines:  # a progress bar (tqdm, one method's), or the program's log (a progress bar may end in one)
        assert re.match(r"(yunet|mediapipe): |INFO benchmark\.", line), line


@pytest.mark.shared
def test_verbose_says_where_the_seconds_went(tmp_path):
    """``--verbose``: a line per method (from its own process) and one for the run, their stages
    in order, each a number of seconds."""
    err = _facebench("--verbose", tmp_path=tmp_path).stderr
    for label, names in (("yunet", ["process start", "embedder", "detector", "images", "scores"]),
                         ("mediapipe", ["process start", "embedder", "detector", "images", "scores"]),
                         ("run", ["start-up", "prepare", "yunet", "mediapipe", "charts and summary"])):
        (line,) = re.findall(rf"INFO benchmark\.run\.stagetimes: {label}: seconds: (.*)", err)
        stages = [stage.rsplit(" ", 1) for stage in line.split(", ")]
        assert [name for name, _ in stages] == names, line
        assert all(float(seconds) >= 0 for _, seconds in stages), line


@pytest.mark.shared
def test_loading_the_released_qint8_checkpoint_warns_nothing():
    from backbones.edgeface import load_edgeface

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_edgeface(WEIGHTS_DIR / "edgeface" / "edgeface_xs_q.pt")
    assert [str(w.message) for w in caught] == []


def test_the_mediapipe_filter_drops_its_startup_lines_only(capfd):
    """What MediaPipe printed in a real run is dropped, and anything else is written out after."""
    from face_alignment.detectors.mediapipe import _startup_noise_filtered

    noise = (
        b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        b"W0000 00:00:1796224066.619067   11331 inference_feedback_manager.cc:114] Feedback manager requires a "
        b"model with a single signature inference. Disabling support for feedback tensors.\n"
        b"W0000 00:00:1796224066.664718   11330 landmark_projection_calculator.cc:186] Using NORM_RECT without "
        b"IMAGE_DIMENSIONS is only supported for the square ROI. Provide IMAGE_DIMENSIONS or use PROJECTION_MATRIX.\n"
        b"I0000 00:00:1796224153.558826   12087 task_runner.cc:85] GPU suport is not available: INTERNAL: ; "
        b"RET_CHECK failure (mediapipe/gpu/gl_context_egl.cc:84) egl_initializedUnable to initialize EGL\n"
    )
    real = b"E0000 00:00:1796224066.7   11331 calculator_graph.cc:887] INTERNAL: a real error\n"
    first = noise.index(b"\n") + 1
    with _startup_noise_filtered():
        os.write(2, noise[:first] + real + noise[first:])  # a real line among the noise
        os.write(2, b"no newline at the end")
    assert capfd.readouterr().err == real.decode() + "no newline at the end"
    os.write(2, noise)  # outside the block nothing is filtered
    assert capfd.readouterr().err == noise.decode()
