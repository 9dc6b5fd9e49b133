"""Weights resolution, checksums and download (against a real HTTP server on 127.0.0.1), the
unverified-weights opt-in, interrupted downloads, and checkpoints that would run code."""
import ast
import csv
import dataclasses
import functools
import http.server
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from benchmark.cli import main
from face_alignment import registry
from face_alignment.errors import ChecksumError, WeightsError
from face_alignment.registry import weight_spec, weight_specs
from face_alignment.weights import resolve_weights, sha256_file, unverified_weights
from tests.conftest import LFW_DIR, REPO, WEIGHTS_DIR, interruptible

YUNET = weight_spec("yunet")


@pytest.fixture
def http_root(tmp_path):
    """Serve ``tmp_path/'srv'`` on 127.0.0.1; yields (folder, base URL)."""
    root = tmp_path / "srv"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.shared
def test_declared_weights_match_shared_files():
    for spec in weight_specs().values():
        assert sha256_file(WEIGHTS_DIR / spec.relpath) == spec.sha256, spec.name


@pytest.mark.shared
def test_resolution_order(tmp_path, monkeypatch):
    assert resolve_weights(YUNET, directory=WEIGHTS_DIR) == WEIGHTS_DIR / "yunet/face_detection_yunet_2023mar.onnx"
    monkeypatch.setenv("FACEBENCH_WEIGHTS", str(WEIGHTS_DIR))
    assert resolve_weights(YUNET).is_file()
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(WEIGHTS_DIR / "yunet/face_detection_yunet_2023mar.onnx", flat)
    assert resolve_weights(YUNET, directory=flat) == flat / "face_detection_yunet_2023mar.onnx"
    explicit = flat / "face_detection_yunet_2023mar.onnx"
    assert resolve_weights(YUNET, path=explicit, directory=tmp_path / "empty") == explicit


@pytest.mark.shared
def test_default_folders_are_checkpoints_then_the_shared_weights(tmp_path, monkeypatch):
    """Without --weights-dir and $FACEBENCH_WEIGHTS: checkpoints/ first, then ../shared/weights
    (where the LFW lookup also looks), so a checkout beside ../shared needs no option."""
    checkout, shared = tmp_path / "repo", tmp_path / "shared" / "weights"
    (checkout / "checkpoints").mkdir(parents=True)
    (shared / "yunet").mkdir(parents=True)
    original = WEIGHTS_DIR / YUNET.relpath
    shutil.copy(original, shared / YUNET.relpath)
    monkeypatch.chdir(checkout)
    monkeypatch.delenv("FACEBENCH_WEIGHTS", raising=False)
    assert resolve_weights(YUNET).resolve() == (shared / YUNET.relpath).resolve()
    assert registry.method_status("yunet").reason == "ready"
    retinaface = registry.method_status("retinaface")  # in neither folder: said to belong in checkpoints/
    assert not retinaface.ready and "checkpoints/retinaface/mobilenet0.25_Final.pth" in retinaface.reason
    shutil.copy(original, checkout / "checkpoints" / YUNET.filename)  # the project's own folder comes first
    assert resolve_weights(YUNET) == Path("checkpoints") / YUNET.filename
    monkeypatch.setenv("FACEBENCH_WEIGHTS", str(tmp_path / "elsewhere"))  # the variable replaces both
    with pytest.raises(WeightsError, match="not found in .*elsewhere"):
        resolve_weights(YUNET, download_missing=False)


def test_wrong_file_in_weights_dir_is_refused(tmp_path):
    (tmp_path / "yunet").mkdir()
    (tmp_path / "yunet/face_detection_yunet_2023mar.onnx").write_bytes(b"not a model")
    with pytest.raises(ChecksumError, match="sha256"):
        resolve_weights(YUNET, directory=tmp_path, download_missing=False)
    assert resolve_weights(YUNET, directory=tmp_path, allow_unverified=True).is_file()


def _spec(url):
    return dataclasses.replace(YUNET, url=url)


@pytest.mark.shared
def test_download_verified(http_root, tmp_path):
    root, base = http_root
    shutil.copy(WEIGHTS_DIR / "yunet/face_detection_yunet_2023mar.onnx", root)
    dest = tmp_path / "weights"
    path = resolve_weights(_spec(f"{base}/face_detection_yunet_2023mar.onnx"), directory=dest)
    assert path == dest / "yunet/face_detection_yunet_2023mar.onnx"
    assert sha256_file(path) == YUNET.sha256


@pytest.mark.shared
def test_download_with_wrong_checksum_leaves_nothing(http_root, tmp_path):
    root, base = http_root
    shutil.copy(WEIGHTS_DIR / "landmarks/pfld.onnx", root / "face_detection_yunet_2023mar.onnx")  # wrong file
    dest = tmp_path / "weights"
    with pytest.raises(ChecksumError, match="nothing was saved"):
        resolve_weights(_spec(f"{base}/face_detection_yunet_2023mar.onnx"), directory=dest)
    assert not any(p.is_file() for p in dest.rglob("*"))


def test_offline_error_names_file_and_place(http_root, tmp_path):
    _, base = http_root
    with pytest.raises(WeightsError, match=r"put it at .*yunet/face_detection_yunet_2023mar.onnx"):
        resolve_weights(_spec(f"{base}/missing.onnx"), directory=tmp_path)
    with pytest.raises(WeightsError, match="retinaface"):
        resolve_weights(weight_spec("retinaface_mnet"), directory=tmp_path)  # no official direct URL


# --- a wrong file is refused unless unverified weights are allowed, and then it is reported ---

@pytest.mark.shared
def test_unverified_weights_are_allowed_only_inside_the_block_and_recorded(tmp_path):
    (tmp_path / "yunet").mkdir()
    wrong = tmp_path / "yunet/face_detection_yunet_2023mar.onnx"
    shutil.copy(WEIGHTS_DIR / "landmarks/pfld.onnx", wrong)  # a real model, but not the manifest's yunet file
    with unverified_weights() as used:
        assert resolve_weights(YUNET, directory=tmp_path) == wrong
    assert used == [wrong]
    with unverified_weights(allow=False), pytest.raises(ChecksumError, match="--allow-unverified-weights"):
        resolve_weights(YUNET, directory=tmp_path)
    with pytest.raises(ChecksumError, match=f"expects {YUNET.sha256}"):
        resolve_weights(YUNET, directory=tmp_path)  # the block is over: refused again


def _weights_dir(tmp_path: Path, **replacements: Path) -> Path:
    """A weights folder of links to the shared files, with ``replacements`` (weights name ->
    file) put under those names instead."""
    root = tmp_path / "weights"
    for spec in weight_specs().values():
        (root / spec.subdir).mkdir(parents=True, exist_ok=True)
        source = replacements.get(spec.name, WEIGHTS_DIR / spec.relpath)
        (root / spec.relpath).symlink_to(source.resolve())
    return root


@pytest.mark.shared
def test_cli_refuses_a_wrong_file_and_reports_an_allowed_one(tmp_path, capfd):
    # EdgeFace-XXS under EdgeFace-XS's name: a working model, but not the file the manifest names
    weights = _weights_dir(tmp_path, edgeface_xs_q=WEIGHTS_DIR / "edgeface/edgeface_xxs_q.pt")
    args = ["--methods", "yunet", "--lfw-dir", str(LFW_DIR), "--weights-dir", str(weights), "--max-pairs", "40",
            "--device", "cpu", "--quiet", "--out", str(tmp_path / "out")]
    assert main(args) == 2
    err = capfd.readouterr().err
    assert "edgeface_xs_q.pt has sha256 46be7cc7" in err and "--allow-unverified-weights" in err
    assert "Traceback" not in err and not (tmp_path / "out" / "report.csv").exists()

    assert main([*args, "--allow-unverified-weights"]) == 0
    with open(tmp_path / "out" / "report.csv", newline="") as fh:
        row = next(csv.DictReader(fh))
    assert row["unverified_weights"] == str(weights / "edgeface/edgeface_xs_q.pt")
    assert row["embedder_sha256"] == weight_spec("edgeface_xxs_q").sha256 and row["error"] == ""


# --- an interrupted download leaves no partial file ---

@pytest.fixture
def half_server(tmp_path):
    """A server that announces the whole yunet file, sends half of it, then stalls until the
    test ends (``drop=True`` in the URL's query: closes the connection instead)."""
    data = (WEIGHTS_DIR / "yunet/face_detection_yunet_2023mar.onnx").read_bytes()
    release = threading.Event()

    class Half(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the http.server interface)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            if "drop" not in self.path:
                release.wait(60)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Half)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/face_detection_yunet_2023mar.onnx"
    release.set()
    server.shutdown()


@pytest.mark.shared
def test_dropped_connection_leaves_nothing(half_server, tmp_path):
    dest = tmp_path / "weights"
    with pytest.raises(WeightsError, match="download failed"):  # not a traceback: http.client's IncompleteRead
        resolve_weights(_spec(f"{half_server}?drop"), directory=dest)
    assert [p for p in dest.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=lambda sig: sig.name)
@pytest.mark.shared
def test_killed_download_leaves_no_partial_weights(half_server, http_root, tmp_path, sig):
    dest = tmp_path / "weights" / "yunet" / "face_detection_yunet_2023mar.onnx"
    code = (f"from pathlib import Path; from face_alignment.weights import download; "
            f"download({half_server!r}, Path({str(dest)!r}), {YUNET.sha256!r})")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stderr=subprocess.PIPE, text=True,
                            preexec_fn=interruptible)
    deadline = time.monotonic() + 30
    while not any(p.stat().st_size for p in dest.parent.glob(".*.part")):  # half the file is arriving
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    proc.send_signal(sig)
    proc.wait(30)
    assert not dest.exists()
    partial = list(dest.parent.glob(".*.part"))
    # Ctrl-C cleans up; a process killed outright cannot, and leaves its hidden .part file ...
    assert len(partial) == (1 if sig == signal.SIGKILL else 0)
    root, base = http_root
    shutil.copy(WEIGHTS_DIR / "yunet/face_detection_yunet_2023mar.onnx", root)
    path = resolve_weights(_spec(f"{base}/{dest.name}"), directory=dest.parent.parent)
    assert path == dest and sha256_file(dest) == YUNET.sha256
    assert list(dest.parent.iterdir()) == [dest]  # ... which the next download removes


# --- weights never run code ---

PACKAGES = ("face_alignment", "backbones", "benchmark")


def _dotted(node: ast.AST) -> str:
    """``torch.jit.load`` for the function of a call written so; ``""`` for other forms."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        owner = _dotted(node.value)
        return f"{owner}.{node.attr}" if owner else ""
    return ""


def test_every_torch_load_in_the_code_is_weights_only():
    """Every ``torch.load`` call passes ``weights_only=True``; nothing unpickles otherwise."""
    calls = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.Call):
                    continue
                name, where = _dotted(node.func), f"{path.relative_to(REPO)}:{node.lineno}"
                keywords = {k.arg: getattr(k.value, "value", None) for k in node.keywords}
                assert name not in ("pickle.load", "pickle.loads", "torch.jit.load"), where
                if name in ("np.load", "numpy.load"):
                    assert keywords.get("allow_pickle") is not True, where
                if name == "torch.load":
                    assert keywords.get("weights_only") is True, where
                    calls.append(where)
    assert len(calls) >= 2, calls  # EdgeFace's and RetinaFace's loaders at least


@pytest.mark.shared
def test_every_shipped_checkpoint_loads_weights_only():
    """The shared .pt/.pth files and the MTCNN files in the facenet-pytorch wheel (which it reads
    with torch.load's default, weights_only=True since torch 2.6)."""
    import facenet_pytorch
    import torch

    files = sorted(WEIGHTS_DIR.rglob("*.pt")) + sorted(WEIGHTS_DIR.rglob("*.pth"))
    files += sorted((Path(facenet_pytorch.__file__).parent / "data").glob("*.pt"))
    assert len(files) == 6  # edgeface_xs_q, edgeface_xxs_q, mobilenet0.25_Final, pnet, rnet, onet
    for path in files:
        assert isinstance(torch.load(path, map_location="cpu", weights_only=True), dict), path


class _RunsCode:
    """Unpickled, creates ``marker``: what a malicious checkpoint would do with worse commands."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


@pytest.fixture
def evil_checkpoint(tmp_path):
    """Writes a checkpoint holding a code-running object under ``relpath``; returns its marker."""
    import torch

    def write(path: Path) -> Path:
        marker = tmp_path / f"ran-{path.stem}"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"model.stem.0.weight": _RunsCode(marker)}, path)
        return marker

    return write


def test_the_code_running_pickle_is_real(evil_checkpoint, tmp_path):
    """The control: read the unsafe way, the file does run its command."""
    import torch

    marker = evil_checkpoint(tmp_path / "control.pt")
    torch.load(tmp_path / "control.pt", weights_only=False)
    assert marker.exists()


def test_checkpoint_that_would_run_code_is_refused(evil_checkpoint, tmp_path):
    from backbones import create_embedder
    from face_alignment import create_detector

    root = tmp_path / "weights"
    markers = [evil_checkpoint(root / weight_spec(name).relpath) for name in ("edgeface_xs_q", "retinaface_mnet")]
    with unverified_weights():  # the checksum gate would refuse them first: let them through to the loader
        with pytest.raises(WeightsError, match="not a loadable weights-only PyTorch checkpoint"):
            create_embedder("torch", weights_dir=root, device="cpu")
        with pytest.raises(WeightsError, match="not a loadable RetinaFace checkpoint"):
            create_detector("retinaface", device="cpu", weights_dir=root)
    assert not any(m.exists() for m in markers)


@pytest.mark.shared
def test_cli_refuses_code_running_weights(evil_checkpoint, tmp_path, capfd):
    weights = _weights_dir(tmp_path)
    (weights / weight_spec("edgeface_xs_q").relpath).unlink()
    marker = evil_checkpoint(weights / weight_spec("edgeface_xs_q").relpath)
    code = main(["--methods", "yunet", "--lfw-dir", str(LFW_DIR), "--weights-dir", str(weights), "--max-pairs", "40",
                 "--device", "cpu", "--quiet", "--allow-unverified-weights", "--out", str(tmp_path / "out")])
    err = capfd.readouterr().err
    assert code == 2 and "not a loadable weights-only PyTorch checkpoint" in err and "Traceback" not in err, err
    assert not marker.exists()
