"""dlib's ResNet face recognition network (``dlib_face_recognition_resnet_model_v1.dat``) rebuilt
in PyTorch from the model file itself.

Why: the pip build of dlib runs its network on one core without BLAS, about 0.15 s a chip on this
CPU (20 minutes for LFW's 7,701 images); the same network in PyTorch uses every core, or a GPU.
Its descriptors equal dlib's own to about 1e-6 (``tests/test_dlib_resnet.py``).

The topology is dlib's ``anet_type`` (dlib's ``dnn_face_recognition_ex.cpp``): a 7x7/2 convolution,
3x3/2 max pooling, then residual blocks of two 3x3 convolutions, each followed by a per-channel
affine (a frozen batch norm), at 32 (x3), 64 (down + x3), 128 (down + x2), 256 (down + x2) and
256 (down) channels; global average pooling and a 128-wide linear layer without bias. A "down"
block's first convolution has stride 2 and no padding, and its shortcut is a 2x2/2 average
pooling of the block's input; dlib adds tensors of different shapes by zero-padding the smaller
one at the end of each axis (channels, rows, columns), so that is what :func:`_add_padded` does.

The file is dlib's serialisation, read here in file order (the input layer first): integers
are a byte (number of bytes, 0x80 when negative) and that many little-endian bytes; floats are
two such integers (mantissa, exponent); a tensor is a version, four dimensions and raw
little-endian float32 values. Each layer starts with its name (``con_4``, ``affine_``, ...).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from face_alignment.errors import FaceBenchError

#: the blocks of ``anet_type`` in forward order: (channels, whether the block halves the size)
BLOCKS = ((32, False),) * 3 + ((64, True),) + ((64, False),) * 3 + ((128, True),) + ((128, False),) * 2 \
    + ((256, True),) + ((256, False),) * 2 + ((256, True),)
#: the layer names of the records read (others: relu, tags, skips, add_prev carry no numbers)
_LAYER = re.compile(rb"\x01[\x03-\x20](con_4|affine_|fc_2|max_pool_2|avg_pool_2)")


@dataclass(frozen=True)
class DlibConv:
    """A ``con_`` layer with the ``affine_`` that follows it folded in: ``weight`` (out, in, k, k)."""

    weight: np.ndarray
    bias: np.ndarray
    stride: int
    padding: int


class DlibReader:
    """dlib's serialisation, read forward from ``pos``."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data, self.pos = data, pos

    def integer(self) -> int:
        head = self.data[self.pos]
        size = head & 0x0F
        value = int.from_bytes(self.data[self.pos + 1:self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if head & 0x80 else value

    def real(self) -> float:
        mantissa = self.integer()
        return mantissa * 2.0 ** self.integer()

    def tensor(self) -> np.ndarray:
        version = self.integer()
        if version != 2:
            raise FaceBenchError(f"dlib tensor version {version} at byte {self.pos}: only version 2 is read")
        shape = [self.integer() for _ in range(4)]
        count = int(np.prod(shape))
        values = np.frombuffer(self.data, "<f4", count, self.pos).astype(np.float32)
        self.pos += 4 * count
        return values


def read_dlib_resnet(path: str | Path) -> tuple[list[DlibConv], np.ndarray]:
    """The convolutions (affines folded in), in forward order, and the final linear layer's
    (256, 128) matrix of dlib's ResNet model file; raises FaceBenchError where the file's layers
    are not ``anet_type``'s."""
    data = Path(path).read_bytes()
    layers, pos = [], 0
    while (match := _LAYER.search(data, pos)) is not None:
        reader = DlibReader(data, match.end())
        name = match.group(1).decode()
        if name == "con_4":
            params = reader.tensor()
            filters, rows, cols, stride, _, padding, _ = (reader.integer() for _ in range(7))
            layers.append((name, params, filters, rows, cols, stride, padding))
        elif name == "affine_":
            layers.append((name, reader.tensor()))
        elif name == "fc_2":
            outputs, inputs = reader.integer(), reader.integer()
            layers.append((name, reader.tensor().reshape(inputs, outputs)))
        else:  # rows, cols, strides, paddings
            layers.append((name, tuple(reader.integer() for _ in range(6))))
        pos = reader.pos
    expected = ["con_4", "affine_", "max_pool_2"] + [
        name for _, down in BLOCKS for name in ["con_4", "affine_", "con_4", "affine_"] + ["avg_pool_2"] * down
    ] + ["avg_pool_2", "fc_2"]  # avg_pool_everything, then fc_no_bias
    pools = {layer[1] for layer in layers if layer[0].endswith("pool_2")}  # (rows, cols, strides, paddings)
    if [layer[0] for layer in layers] != expected or pools != {(3, 3, 2, 2, 0, 0), (2, 2, 2, 2, 0, 0),
                                                               (0, 0, 1, 1, 0, 0)}:
        raise FaceBenchError(f"{path}: not dlib's face recognition ResNet (layers {[layer[0] for layer in layers]})")
    convs, in_channels = [], 3
    weighted = [layer for layer in layers if layer[0] in ("con_4", "affine_")]
    for (_, params, filters, rows, cols, stride, padding), (_, affine) in zip(weighted[::2], weighted[1::2]):
        weight = params[:filters * in_channels * rows * cols].reshape(filters, in_channels, rows, cols)
        gamma, beta = affine[:filters], affine[filters:]
        bias = params[weight.size:]
        convs.append(DlibConv(weight * gamma[:, None, None, None], bias * gamma + beta, stride, padding))
        in_channels = filters
    return convs, layers[-1][1]


def _add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev`` of two (N, C, H, W) tensors: the smaller zero-padded at the end of
    each axis to the larger's shape."""
    if a.shape == b.shape:
        return a + b
    channels, rows, cols = (max(x, y) for x, y in zip(a.shape[1:], b.shape[1:]))

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, cols - t.shape[3], 0, rows - t.shape[2], 0, channels - t.shape[1]))

    return pad(a) + pad(b)


class DlibResNet(torch.nn.Module):
    """dlib's face recognition ResNet: (N, 3, 150, 150) RGB, ``(x - average) / 256``, to the raw
    (N, 128) descriptors dlib returns (not normalised)."""

    def __init__(self, convs: list[DlibConv], projection: np.ndarray) -> None:
        super().__init__()
        self.convs = torch.nn.ModuleList()
        for conv in convs:
            layer = torch.nn.Conv2d(conv.weight.shape[1], conv.weight.shape[0], conv.weight.shape[2:],
                                    stride=conv.stride, padding=conv.padding)
            layer.weight.data = torch.from_numpy(conv.weight.copy())
            layer.bias.data = torch.from_numpy(conv.bias.copy())
            self.convs.append(layer)
        self.projection = torch.nn.Parameter(torch.from_numpy(projection.copy()), requires_grad=False)

    @classmethod
    def from_file(cls, path: str | Path) -> DlibResNet:
        return cls(*read_dlib_resnet(path))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.convs[0](x)), 3, 2)
        convs = iter(self.convs[1:])
        for _, down in BLOCKS:
            first, second = next(convs), next(convs)
            branch = second(F.relu(first(x)))
            x = F.relu(_add_padded(branch, F.avg_pool2d(x, 2, 2) if down else x))
        return x.mean(dim=(2, 3)) @ self.projection
