"""An output folder that cannot be written (full, read-only) stops the run at once with one line
that names the folder, exit status 2, no traceback: every further method would fail the same way.

The real cases are real file systems: a 400 KB tmpfs (a shard of 256 embeddings is 0.5 MB) and a
read-only one, mounted where this runs as root and may mount (CI does); elsewhere they skip and
the rule is tested on the exceptions themselves."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.run.failures import OutputNotWritable, method_failure, unwritable_output
from tests.conftest import REPO
from tests.shared_runs import cli_args


def _chained(error: OSError) -> Exception:
    """``error`` as it arrives from a save: raised while handling it, another exception on top."""
    try:
        try:
            raise error
        except OSError:
            raise RuntimeError("while saving the shard") from None  # keeps __context__
    except RuntimeError as exc:
        return exc


def test_an_oserror_on_the_output_folder_stops_the_run(tmp_path):
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "cache" / "yunet-0" / "shard.npz"))
    fatal = unwritable_output(_chained(full), tmp_path)
    assert isinstance(fatal, OutputNotWritable)
    assert f"cannot write to {tmp_path}: No space left on device" in str(fatal) and "resume" in str(fatal)
    # a method whose save fails raises it instead of writing an error row
    row = {}
    with pytest.raises(OutputNotWritable), method_failure(row, "yunet", tmp_path):
        raise _chained(full)
    assert "error" not in row


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, "No space left on device", "/elsewhere/model.onnx"),  # not the output folder
    OSError(errno.ENOENT, "No such file or directory", "OUT/cache/x"),  # not a folder that cannot take more
    ValueError("a method's own failure"),
])
def test_other_failures_stay_the_methods_error_row(tmp_path, error):
    if isinstance(error, OSError) and error.filename.startswith("OUT"):
        error.filename = str(tmp_path / error.filename[4:])
    assert unwritable_output(error, tmp_path) is None
    row = {}
    with method_failure(row, "yunet", tmp_path):
        raise error
    assert row["error"]


@pytest.fixture
def mounted(tmp_path):
    """``mount(options)``: a tmpfs at a new folder, unmounted afterwards; skips where it cannot mount."""
    points = []

    def mount(options: str) -> Path:
        point = tmp_path / f"fs{len(points)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True,
                              text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}): needs root")
        points.append(point)
        return point

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    for point in points:
        subprocess.run(["umount", "-l", str(point)], check=False)


def _run(out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmark", *cli_args(), "--methods", "yunet,mediapipe_simple",
                           "--out", str(out), "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.mark.shared
def test_a_full_disk_stops_the_run_with_one_line(mounted):
    out = mounted("size=400k")
    done = _run(out / "run")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("facebench: error:")]
    assert len(errors) == 1 and f"cannot write to {out / 'run'}: No space left on device" in errors[0], done.stderr
    assert "Finished chunks are kept" in errors[0]
    assert "mediapipe_simple" not in done.stderr  # the next method never started


@pytest.mark.shared
def test_a_read_only_folder_stops_the_run_with_one_line(mounted):
    out = mounted("size=1m,ro")
    done = _run(out / "run")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("facebench: error:") == 1 and "Read-only file system" in done.stderr, done.stderr
