"""Process isolation: a detector that segfaults, aborts or raises fails only its own method.

The broken detectors are a real plugin package (tests/crash_plugin) pip-installed into a
temporary folder and found through the ``face_alignment.detectors`` entry points, in the child
processes too; the crashes are real (a null-pointer read, ``os.abort()``)."""
from __future__ import annotations

import csv
import ctypes
import sys
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.run.isolation import run_in_child
from tests.conftest import LFW_DIR, WEIGHTS_DIR, pip_install_plugin, use_plugins_from

pytestmark = pytest.mark.shared

PLUGIN = Path(__file__).parent / "crash_plugin"
#: --max-pairs 40: 2 pairs of each kind per fold, 40 pairs over 68 unique images
SUBSET = ["--lfw-dir", str(LFW_DIR), "--weights-dir", str(WEIGHTS_DIR), "--max-pairs", "40", "--device", "cpu",
          "--quiet"]


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """tests/crash_plugin pip-installed into a temporary folder."""
    return pip_install_plugin(PLUGIN, tmp_path_factory.mktemp("crash_plugin"))


@pytest.fixture
def crash_plugin(plugin_site, monkeypatch):
    """The plugin on ``sys.path`` (spawned children inherit it) and the registry made to look
    for plugins again; undone afterwards."""
    use_plugins_from(plugin_site, monkeypatch)
    yield
    sys.modules.pop("facebench_crash_plugin", None)


def _report(out: Path) -> dict[str, dict]:
    with open(out / "report.csv", newline="") as fh:
        return {row["method"]: row for row in csv.DictReader(fh)}


def test_crashing_detectors_fail_only_their_own_method(crash_plugin, tmp_path, capfd):
    out = tmp_path / "run"
    code = main(["--methods", "crash_segv,crash_abort,raise_always,yunet", "--out", str(out), *SUBSET])
    err = capfd.readouterr().err
    assert code == 1  # a method failed
    rows = _report(out)
    assert list(rows) == ["crash_segv", "crash_abort", "raise_always", "yunet"]
    assert rows["crash_segv"]["error"] == "crashed (SIGSEGV) after 0/68 images; rerun to resume"
    assert rows["crash_abort"]["error"] == "crashed (SIGABRT) after 0/68 images; rerun to resume"
    assert rows["raise_always"]["error"] == ("the detector raised on all 68 images it was given, e.g. "
                                             "detector error: RuntimeError: backend exploded")
    for failed in ("crash_segv", "crash_abort", "raise_always"):  # no number that hides a failure
        assert rows[failed]["accuracy"] == rows[failed]["success_rate"] == "", failed
        assert not (out / "images" / f"{failed}.csv").exists()
    yunet = rows["yunet"]  # the method after them finished as it does alone
    assert yunet["error"] == "" and yunet["n_pairs"] == "40" and float(yunet["success_rate"]) == 1.0
    assert (out / "images/yunet.csv").is_file() and (out / "scores/yunet.npz").is_file()
    assert "Traceback" not in err
    # a crash after saved chunks, and the rerun that resumes: tests/test_resume.py (the child killed)


def _segfault_after_progress(progress):
    progress(5, 10)
    ctypes.string_at(0)


def _exit_quietly(progress):
    import os

    os._exit(3)


def test_death_is_described_from_the_last_progress():
    assert run_in_child(_segfault_after_progress, (), "unit").error == \
        "crashed (SIGSEGV) after 5/10 images; rerun to resume"
    assert run_in_child(_exit_quietly, (), "unit").error == \
        "exited with status 3 without a result while starting (loading the detector or the embedder)"


#: a process that is interrupted while a weakref callback runs, where Python ignores exceptions
SWALLOWED_INTERRUPT = """
import os, signal, sys, time, weakref
from benchmark.run.isolation import stop_on_sigterm
stop_on_sigterm()

class Held:
    pass

def callback(ref):
    os.kill(os.getpid(), signal.SIGTERM)  # the handler raises here, inside the callback
    time.sleep(0.01)

held = Held()
ref = weakref.ref(held, callback)
try:
    del held
    time.sleep(5)
except KeyboardInterrupt:
    print("interrupted")
    sys.exit(130)
print("the interrupt was lost")
"""


def test_an_interrupt_that_lands_in_a_callback_is_not_lost():
    """SIGTERM (or Ctrl-C) raised while a weakref callback or a finaliser runs is swallowed by
    Python, which prints "Exception ignored" and goes on: the run would not stop. It is delivered
    again, and nothing is printed."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", SWALLOWED_INTERRUPT], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).parents[1])
    assert (done.returncode, done.stdout.strip()) == (130, "interrupted"), done.stderr
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr, done.stderr
