"""EdgeFace loading and batched embedding, on the real checkpoints and real aligned LFW crops."""
import numpy as np
import pytest
import torch

from backbones import ARCHITECTURES, EdgeFace, Embedder, create_embedder, load_edgeface
from backbones.edgeface import dequantize_state, read_checkpoint
from benchmark import RunConfig, run_benchmark
from face_alignment import load_image
from tests.conftest import ALIGNED_DIR, LFW_DIR, SAMPLE_IMAGES, WEIGHTS_DIR

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def crops64():
    from benchmark.protocol.pairs import read_pairs

    images = read_pairs(LFW_DIR / "pairs.txt").images[:64]
    return np.stack([load_image(ALIGNED_DIR / p) for p in images])


def test_float_embedding_does_not_depend_on_batch(embedder, crops64):
    batch = embedder.embed(crops64)
    alone = np.concatenate([embedder.embed(c[None]) for c in crops64])
    assert batch.shape == (64, 512) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    assert np.abs(batch - alone).max() <= 1e-5


def test_qint8_option_is_batch_dependent(crops64, embedder):
    """Documents why float is the default: dynamic quantization scales over the whole batch."""
    q = create_embedder("torch", weights_dir=WEIGHTS_DIR, quantized=True)
    batch = q.embed(crops64)
    alone = np.concatenate([q.embed(c[None]) for c in crops64])
    assert np.median(np.sum(batch * alone, axis=1)) < 0.99
    assert np.median(np.sum(batch * embedder.embed(crops64), axis=1)) > 0.9  # same model, other numerics


@pytest.mark.parametrize("name, variant", [("edgeface_xs_q", "xs"), ("edgeface_xxs_q", "xxs")])
def test_quantized_checkpoints_load_strictly_as_float(name, variant):
    model = load_edgeface(WEIGHTS_DIR / "edgeface" / f"{name}.pt")
    assert model.variant == variant
    assert all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.parametrize("variant", sorted(ARCHITECTURES))
def test_variants_embed_512(variant):
    out = EdgeFace(variant).eval()(torch.zeros(2, 3, 112, 112))
    assert out.shape == (2, 512)


def test_low_rank_gamma_checkpoint_round_trip(tmp_path):
    """A gamma-style checkpoint (Linear layers as linear1/linear2 pairs) loads with ranks read
    from the file: here a real dequantized XS model factorised exactly at full rank."""
    base = load_edgeface(WEIGHTS_DIR / "edgeface/edgeface_xs_q.pt")
    state = {}
    for key, value in base.state_dict().items():
        module = key.rsplit(".", 1)[0]
        if key.endswith(".weight") and ".mlp.fc" in key:
            out_f, in_f = value.shape
            state[f"{module}.linear1.weight"] = torch.eye(in_f)
            state[f"{module}.linear2.weight"] = value
        elif key.endswith(".bias") and ".mlp.fc" in key:
            state[f"{module}.linear2.bias"] = value
        else:
            state[key] = value
    torch.save(state, tmp_path / "edgeface_xs_gamma_test.pt")
    low = load_edgeface(tmp_path / "edgeface_xs_gamma_test.pt")
    x = torch.randn(2, 3, 112, 112)
    torch.testing.assert_close(low(x), base(x), atol=1e-4, rtol=1e-4)


def test_checkpoint_keys_dequantize():
    state = dequantize_state(read_checkpoint(WEIGHTS_DIR / "edgeface/edgeface_xs_q.pt"))
    assert "model.head.fc.weight" in state and not any("packed" in k for k in state)


def test_embedder_rejects_wrong_shape(embedder):
    with pytest.raises(ValueError, match="112, 112, 3"):
        embedder.embed(np.zeros((1, 100, 100, 3), np.uint8))


@pytest.mark.slow
@pytest.mark.parametrize("flip, expected", [(False, 0.9952), (True, 0.9955)])
def test_reference_crops_reproduce_published_accuracy(tmp_path, flip, expected):
    """EdgeFace-XS dequantized on aligned-112, insightface protocol: 99.52% / 99.55% with flip
    (../shared/data/lfw/README.md), within 0.05 points."""
    rows = run_benchmark(RunConfig(methods=[], lfw_dir=LFW_DIR, weights_dir=WEIGHTS_DIR, aligned_dir=ALIGNED_DIR,
                                   out=tmp_path, device="cpu", flip=flip, progress=False))
    assert rows[0]["method"] == "reference" and rows[0]["n_pairs"] == 6000
    assert abs(rows[0]["accuracy"] - expected) <= 0.0005, rows[0]["accuracy"]
    assert rows[0]["success_rate"] == 1.0 and rows[0]["roc_auc"] > 0.998


def test_sample_reference_crops_exist():
    assert all((ALIGNED_DIR / p).is_file() for p in SAMPLE_IMAGES)


def test_cpu_path_is_the_plain_forward_and_keeps_batch_64(embedder, crops64):
    """On the CPU nothing of the CUDA path runs: the default batch is 64 and each embedding is the
    model's output on the preprocessed crop, L2-normalised, exactly; with flip, plus the mirror's."""
    from backbones.base import CPU_BATCH
    from backbones.spec import EmbedderInput

    preprocess = EmbedderInput().preprocess

    assert embedder.batch_size == CPU_BATCH == 64
    assert Embedder(embedder.model, "cpu", batch_size=16).batch_size == 16  # a batch that was asked for is kept
    with torch.inference_mode():
        raw = embedder.model(torch.from_numpy(preprocess(crops64))).numpy()
        mirrored = embedder.model(torch.from_numpy(preprocess(crops64[:, :, ::-1].copy()))).numpy()
    for flip, expected in ((False, raw), (True, raw + mirrored)):
        expected = expected / np.linalg.norm(expected, axis=1, keepdims=True)
        np.testing.assert_allclose(embedder.embed(crops64, flip=flip), expected, atol=1e-6)


def test_an_unset_batch_follows_the_device_for_every_backend():
    """The benchmark leaves the batch unset unless --batch-size is given; then every backend (they
    all size batches in BaseEmbedder) takes 256 on a CUDA device and 64 elsewhere."""
    from backbones.base import BaseEmbedder
    from benchmark.cli import build_parser

    assert build_parser().parse_args(["--methods", "yunet"]).batch_size is None
    for device, expected in (("cuda:0", 256), ("cuda:1", 256), ("cpu", 64)):
        assert BaseEmbedder(device, None, "edgeface", None, "fp32").batch_size == expected
        assert BaseEmbedder(device, 16, "edgeface", None, "fp32").batch_size == 16


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("flip", [False, True])
def test_cuda_path_matches_the_cpu(embedder, crops64, flip):
    """Pinned uploads on a copy stream, compute on another, one wait: the CPU's embeddings (TF32
    off), with the GPU's default batch and with batches that split the crops unevenly."""
    from backbones.base import GPU_BATCH
    from face_alignment.runtime import set_tf32

    set_tf32(False)
    expected = embedder.embed(crops64, flip=flip)
    gpu = create_embedder("torch", weights_dir=WEIGHTS_DIR, device="cuda")
    assert gpu.batch_size == GPU_BATCH and gpu.real_device == "cuda:0"
    for batch in (GPU_BATCH, 24):
        gpu.batch_size = batch
        out = gpu.embed(crops64, flip=flip)
        assert out.shape == (64, 512) and out.dtype == np.float32
        assert np.max(1.0 - np.sum(out * expected, axis=1)) < 1e-5
    assert gpu.embed(crops64[:0]).shape == (0, 512)
