"""EdgeFace (Idiap): timm EdgeNeXt with a 512-d head, and its checkpoints.

Variants: ``xxs``, ``xs``, ``s``, ``base`` (timm ``edgenext_xx_small`` ... ``edgenext_base``).
The ``gamma`` releases (``edgeface_xs_gamma_06``, ``edgeface_s_gamma_05``) replace Linear layers
by low-rank pairs (``linear1``: in -> rank, ``linear2``: rank -> out); their ranks are read from
the checkpoint, so any rank ratio loads.

The released ``*_q.pt`` files hold dynamically-quantized (qint8) Linear layers. By default they
are loaded as a float model, the Linear weights dequantized: its embeddings do not depend on the
other images of a batch, it runs on a GPU and exports to ONNX. ``quantized=True`` keeps the qint8
model (CPU only): dynamic quantization scales activations over the whole input tensor, so an
image's embedding then changes with its batch-mates.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch
from torch import nn

from face_alignment.errors import WeightsError

ARCHITECTURES = {
    "xxs": "edgenext_xx_small",
    "xs": "edgenext_x_small",
    "s": "edgenext_small",
    "base": "edgenext_base",
}
#: stem width of each variant, used to recognise a checkpoint's variant
_STEM_WIDTH = {24: "xxs", 32: "xs", 48: "s", 80: "base"}
EMBEDDING_DIM = 512
_PACKED = "._packed_params._packed_params"
#: what torch says while unpickling the released qint8 checkpoints (their quantized tensors are
#: rebuilt through the deprecated TypedStorage and quantized-tensor constructors): nothing the
#: user can act on, since the files are Idiap's; any other warning of the load still shows
_LOAD_WARNINGS = (
    r"TypedStorage is deprecated",
    r"torch\.quantize_per_tensor, torch\.quantize_per_channel and other quantized tensor creation "
    r"functions .* are deprecated",
)


class LowRankLinear(nn.Module):
    """``out = linear2(linear1(x))``: a Linear layer factorised through ``rank`` features."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.linear1 = nn.Linear(in_features, rank, bias=False)
        self.linear2 = nn.Linear(rank, out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.linear1(x))


class EdgeFace(nn.Module):
    """The timm EdgeNeXt backbone (attribute ``model``, as in the released checkpoints)
    with a 512-d embedding head. Input: N x 3 x 112 x 112, RGB, ``(x/255 - 0.5) / 0.5``."""

    def __init__(self, variant: str = "xs") -> None:
        super().__init__()
        import timm

        if variant not in ARCHITECTURES:
            raise ValueError(f"unknown EdgeFace variant {variant!r}; choose one of {sorted(ARCHITECTURES)}")
        self.variant = variant
        self.model = timm.create_model(ARCHITECTURES[variant], pretrained=False, num_classes=EMBEDDING_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def make_low_rank(self, ranks: dict[str, int]) -> None:
        """Replace the Linear layers named in ``ranks`` (module paths) by :class:`LowRankLinear`."""
        for path, rank in ranks.items():
            parent_path, _, attr = path.rpartition(".")
            parent = self.get_submodule(parent_path) if parent_path else self
            old = getattr(parent, attr)
            setattr(parent, attr, LowRankLinear(old.in_features, old.out_features, rank, old.bias is not None))


def read_checkpoint(path: str | Path) -> dict:
    """A state dict read with ``weights_only=True`` (a checkpoint never runs code), keys
    normalised to start with ``model.``."""
    try:
        with warnings.catch_warnings():
            for message in _LOAD_WARNINGS:
                warnings.filterwarnings("ignore", message=message, category=UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError, RuntimeError for truncated files, ...
        raise WeightsError(f"{path} is not a loadable weights-only PyTorch checkpoint: {exc}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path} does not hold a state dict")
    metadata = getattr(state, "_metadata", None)
    keys = list(state)
    if keys and all(k.startswith("module.") for k in keys):
        state = type(state)((k[len("module."):], v) for k, v in state.items())
    if keys and not any(k.startswith("model.") for k in state):
        state = type(state)((f"model.{k}", v) for k, v in state.items())
    if metadata is not None and not hasattr(state, "_metadata"):
        state._metadata = metadata
    return state


def is_quantized(state: dict) -> bool:
    return any(k.endswith(_PACKED) for k in state)


def infer_variant(state: dict) -> str:
    width = state["model.stem.0.weight"].shape[0]
    if width not in _STEM_WIDTH:
        raise WeightsError(f"stem width {width} matches no EdgeFace variant {sorted(ARCHITECTURES)}")
    return _STEM_WIDTH[width]


def dequantize_state(state: dict) -> dict:
    """Turn each dynamically-quantized Linear entry into float ``weight`` / ``bias``."""
    out = {}
    for key, value in state.items():
        if key.endswith(_PACKED):
            prefix = key[: -len(_PACKED)]
            weight, bias = value
            out[f"{prefix}.weight"] = weight.dequantize()
            if bias is not None:
                out[f"{prefix}.bias"] = bias.detach().clone()
        elif re.search(r"\.(scale|zero_point|_packed_params\.dtype)$", key):
            continue
        else:
            out[key] = value
    return out


def load_edgeface(path: str | Path, variant: str | None = None, quantized: bool = False) -> EdgeFace:
    """Build EdgeFace and load ``path`` strictly (float by default; see module docstring)."""
    state = read_checkpoint(path)
    variant = variant or infer_variant(state)
    model = EdgeFace(variant)
    ranks = {k[len("model."): -len(".linear1.weight")]: v.shape[0]
             for k, v in state.items() if k.endswith(".linear1.weight")}
    model.make_low_rank({f"model.{p}": r for p, r in ranks.items()})
    if quantized:
        if not is_quantized(state):
            raise WeightsError(f"{path} is a float checkpoint; quantized=True needs a *_q.pt file")
        model = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
        model.load_state_dict(state, strict=True)
    else:
        if is_quantized(state):
            state = dequantize_state(state)
        model.load_state_dict(state, strict=True)
    return model.eval()
