"""The embedder seam: the registry (built-ins, names, errors, status), ``onnx:PATH`` on the real
ONNX export of EdgeFace-XS against the PyTorch embedder, and the input a model declares."""
import json
import shutil

import numpy as np
import pytest

from backbones import (
    AUTO,
    create_embedder,
    embedder_names,
    embedder_spec,
    get_embedder,
    list_embedders,
    register_embedder,
    resolve_backend,
)
from backbones.onnx_export import onnx_model_path
from backbones.onnx_model import onnx_model_spec
from backbones.spec import DEFAULT_INPUT, EmbedderInput
from benchmark.cli import main
from benchmark.protocol.pairs import read_pairs
from face_alignment import ARCFACE, load_image
from face_alignment.errors import FaceBenchError, NameTakenError, UnknownMethodError
from tests.conftest import ALIGNED_DIR, LFW_DIR, WEIGHTS_DIR


def test_builtins_are_registered_with_their_inputs():
    assert {"edgeface_xs", "edgeface_xxs"} <= set(embedder_names())
    xs = get_embedder("edgeface_xs")
    assert xs.model_input == DEFAULT_INPUT and xs.model_input.template == ARCFACE and xs.model_input.dim == 512
    assert xs.default_backend == "torch" and xs.weights[0].filename == "edgeface_xs_q.pt"
    assert embedder_spec("edgeface_xs_q") is xs  # an earlier version's weights name still means the model


def test_a_taken_or_reserved_name_is_refused_and_an_unknown_one_lists_the_registered():
    with pytest.raises(NameTakenError, match="'edgeface_xs' is already taken by backbones.builtin"):
        register_embedder("edgeface_xs")(lambda spec, request: None)
    with pytest.raises(NameTakenError, match="onnx:PATH"):
        register_embedder("onnx:mine")(lambda spec, request: None)
    with pytest.raises(UnknownMethodError, match=r"unknown embedder 'arcface'; registered: .*edgeface_xs.*onnx:PATH"):
        get_embedder("arcface")


def test_a_backend_the_model_does_not_run_on_is_refused_before_loading():
    with pytest.raises(FaceBenchError, match="runs on torch, onnx, openvino, not 'dlib'"):
        create_embedder("dlib", name="edgeface_xs", weights_dir=WEIGHTS_DIR)


def test_preprocess_is_edgefaces_operations_and_honours_channels_and_normalisation():
    crops = np.random.default_rng(0).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    x = crops.transpose(0, 3, 1, 2).astype(np.float32)
    x /= 255.0
    x -= 0.5
    x /= 0.5
    assert np.array_equal(DEFAULT_INPUT.preprocess(crops), x)  # bit for bit: every EdgeFace number unchanged
    bgr = EmbedderInput(channels="BGR", mean=(0.0, 0.0, 0.0), std=(1 / 255,) * 3)
    np.testing.assert_allclose(bgr.preprocess(crops), crops[..., ::-1].transpose(0, 3, 1, 2), atol=1e-4)


@pytest.mark.shared
def test_list_embedders_says_ready_and_the_command_prints_them(capsys):
    statuses = {s.name: s for s in list_embedders(WEIGHTS_DIR)}
    assert statuses["edgeface_xs"].ready and statuses["edgeface_xs"].reason == "ready"
    assert main(["embedders", "--weights-dir", str(WEIGHTS_DIR)]) == 0
    out = capsys.readouterr().out
    assert "edgeface_xs" in out and "112x112 -> 512-d on torch/onnx/openvino" in out and "onnx:PATH" in out


@pytest.fixture(scope="module")
def edgeface_onnx(tmp_path_factory):
    """The real ONNX export of EdgeFace-XS, in a folder of its own (a JSON may be put beside it)."""
    exported = onnx_model_path(WEIGHTS_DIR / "edgeface" / "edgeface_xs_q.pt",
                               tmp_path_factory.getbasetemp() / "onnx-cache")
    folder = tmp_path_factory.mktemp("user-model")
    return shutil.copy(exported, folder / "edgeface_xs.onnx")


@pytest.fixture(scope="module")
def reference_crops():
    images = read_pairs(LFW_DIR / "pairs.txt").images[:48]
    return np.stack([load_image(ALIGNED_DIR / p) for p in images])


@pytest.mark.shared
def test_onnx_path_reads_the_graph_and_takes_insightfaces_conventions(edgeface_onnx):
    spec = get_embedder(f"onnx:{edgeface_onnx}")
    assert spec.model_input.template == ARCFACE and spec.model_input.dim == 512  # input 112 and output 512: the graph's
    assert spec.model_input.mean == (0.5,) * 3 and spec.model_input.std == (0.5,) * 3  # (x - 127.5) / 127.5
    assert spec.model_input.channels == "RGB" and spec.default_backend == "onnx"


@pytest.mark.shared
def test_onnx_path_embeds_as_the_torch_embedder(edgeface_onnx, reference_crops, embedder):
    """``onnx:PATH`` on EdgeFace-XS's export is the torch embedder to float precision (the ONNX
    Runtime embedder agrees with torch to an MSE of 1e-14: tests/test_onnx_embedder.py)."""
    onnx = create_embedder(name=f"onnx:{edgeface_onnx}", device="cpu")
    assert onnx.backend == "onnx" and onnx.name == "edgeface_xs"
    for flip in (False, True):
        a, b = onnx.embed(reference_crops, flip=flip), embedder.embed(reference_crops, flip=flip)
        assert np.max(1.0 - np.sum(a * b, axis=1)) < 1e-5


@pytest.mark.shared
def test_a_json_beside_the_model_overrides_its_input(edgeface_onnx):
    sidecar = edgeface_onnx.with_suffix(".json")
    points = (ARCFACE.array + 1.0).tolist()
    sidecar.write_text(json.dumps({"input_mean": 0, "input_std": 255, "channels": "BGR", "template": points,
                                   "flip": False}))
    try:
        model_input = get_embedder(f"onnx:{edgeface_onnx}").model_input
        assert (model_input.mean, model_input.std, model_input.channels) == ((0.0,) * 3, (1.0,) * 3, "BGR")
        assert np.allclose(model_input.template.array, ARCFACE.array + 1.0) and model_input.flip is False
        assert onnx_model_spec(edgeface_onnx, channels="RGB").model_input.channels == "RGB"  # an option wins
        sidecar.write_text(json.dumps({"mean": 0}))
        with pytest.raises(FaceBenchError, match="keys among input_mean"):
            get_embedder(f"onnx:{edgeface_onnx}")
    finally:
        sidecar.unlink()


def test_onnx_path_of_a_missing_file_says_so(tmp_path):
    with pytest.raises(FaceBenchError, match="no such file"):
        get_embedder(f"onnx:{tmp_path / 'absent.onnx'}")


@pytest.mark.shared
def test_a_run_with_onnx_path_gives_the_torch_rows_numbers(edgeface_onnx, tmp_path):
    """The whole benchmark with ``--embedder-model onnx:PATH --embedder onnx`` (EdgeFace-XS's export)
    against the shared run of the registered model on its default backend: the same accuracy columns."""
    from tests.shared_runs import METRICS, RUN_ARGS, report_row, uninterrupted_run

    assert main([*RUN_ARGS, "--embedder-model", f"onnx:{edgeface_onnx}", "--embedder", "onnx", "--out", str(tmp_path),
                 "--quiet"]) == 0
    registered_row, onnx_row = report_row(uninterrupted_run()), report_row(tmp_path)
    assert (onnx_row["embedder"], onnx_row["embedder_backend"]) == ("edgeface_xs", "onnx")
    assert registered_row["embedder"] == "edgeface_xs"
    assert registered_row["embedder_backend"] == resolve_backend(embedder_spec("edgeface_xs"), AUTO, "fp32", "cpu")
    for metric in METRICS:
        assert float(onnx_row[metric]) == pytest.approx(float(registered_row[metric]), abs=1e-6), metric
