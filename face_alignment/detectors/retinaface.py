"""RetinaFace (MobileNet-0.25 or ResNet-50) in PyTorch, loading the biubug6/Pytorch_Retinaface
checkpoints (``mobilenet0.25_Final.pth``, ``Resnet50_Final.pth``) strictly.

The network is written here so that the official state-dict keys load with ``strict=True``:
``body`` (the backbone's three returned stages), ``fpn``, ``ssh1..3`` and the per-level
``ClassHead`` / ``BboxHead`` / ``LandmarkHead`` lists. Input is BGR minus (104, 117, 123) at
the image's own size; outputs are decoded against SSD-style priors (``cfg_mnet``/``cfg_re50``:
min sizes [[16, 32], [64, 128], [256, 512]], steps [8, 16, 32], variances [0.1, 0.2]).
"""
from __future__ import annotations

import logging
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np

from ..errors import MissingDependencyError, WeightsError
from ..registry import register_detector
from ..runtime import module_device
from ..types import Face
from ..weights import WeightSpec, resolve_weights
from .base import FaceDetector
from .common import prior_boxes, select_faces

log = logging.getLogger(__name__)

WEIGHTS = WeightSpec(
    "retinaface_mnet", "retinaface", "mobilenet0.25_Final.pth",
    "2979b33ffafda5d74b6948cd7a5b9a7a62f62b949cef24e95fd15d2883a65220",
    None, "MIT", "biubug6/Pytorch_Retinaface (release files linked from its README)",
)

MIN_SIZES = ((16, 32), (64, 128), (256, 512))
STEPS = (8, 16, 32)
VARIANCES = (0.1, 0.2)
#: BGR channel means subtracted from the input
BGR_MEAN = (104.0, 117.0, 123.0)


@dataclass(frozen=True)
class Variant:
    """One RetinaFace configuration: the backbone, the channels of its three returned stages,
    and the FPN/SSH width (LeakyReLU slope 0.1 at width <= 64, else plain ReLU)."""

    backbone: str
    stage_channels: tuple[int, int, int]
    out_channels: int

    @property
    def leaky(self) -> float:
        return 0.1 if self.out_channels <= 64 else 0.0


VARIANTS = {
    "mobilenet0.25": Variant("mobilenet0.25", (64, 128, 256), 64),
    "resnet50": Variant("resnet50", (512, 1024, 2048), 256),
}


def build_network(variant: str | Variant):
    """The RetinaFace ``nn.Module`` of ``variant`` (a name of :data:`VARIANTS`), in eval mode.

    ``forward`` takes ``(B, 3, H, W)`` BGR-minus-mean floats and returns box regressions
    ``(B, N, 4)``, face probabilities ``(B, N)`` and landmark regressions ``(B, N, 10)`` over the
    priors of :func:`~.common.prior_boxes`.
    """
    variant = VARIANTS[variant] if isinstance(variant, str) else variant
    return _network_class()(variant).eval()


@cache
def _network_class():
    """The network's module classes, defined on first use so that importing the detector
    registry does not import torch."""
    from torch import cat, nn
    from torch.nn.functional import interpolate, relu

    def conv_bn(inp: int, out: int, kernel: int = 3, stride: int = 1, leaky: float | None = 0.0,
                groups: int = 1) -> nn.Sequential:
        """Conv (no bias), BatchNorm, then LeakyReLU(``leaky``) unless ``leaky`` is None."""
        layers = [nn.Conv2d(inp, out, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(out)]
        if leaky is not None:
            layers.append(nn.LeakyReLU(negative_slope=leaky, inplace=True))
        return nn.Sequential(*layers)

    def conv_dw(inp: int, out: int, stride: int) -> nn.Sequential:
        """MobileNetV1 block: depthwise 3x3 then pointwise 1x1, each with BN and LeakyReLU(0.1)."""
        return nn.Sequential(*conv_bn(inp, inp, 3, stride, 0.1, groups=inp), *conv_bn(inp, out, 1, 1, 0.1))

    class MobileNetBody(nn.Module):
        """MobileNetV1 x0.25 up to its three returned stages (strides 8, 16, 32)."""

        def __init__(self) -> None:
            super().__init__()
            self.stage1 = nn.Sequential(conv_bn(3, 8, 3, 2, 0.1), conv_dw(8, 16, 1), conv_dw(16, 32, 2),
                                        conv_dw(32, 32, 1), conv_dw(32, 64, 2), conv_dw(64, 64, 1))
            self.stage2 = nn.Sequential(conv_dw(64, 128, 2), *(conv_dw(128, 128, 1) for _ in range(5)))
            self.stage3 = nn.Sequential(conv_dw(128, 256, 2), conv_dw(256, 256, 1))

        def forward(self, x):
            c1 = self.stage1(x)
            c2 = self.stage2(c1)
            return c1, c2, self.stage3(c2)

    class ResNetBody(nn.Module):
        """torchvision ResNet-50 up to layer4, returning layers 2, 3 and 4."""

        def __init__(self) -> None:
            super().__init__()
            try:
                from torchvision.models import resnet50
            except ImportError as exc:
                raise MissingDependencyError("RetinaFace ResNet-50 needs torchvision: pip install torchvision") from exc

            net = resnet50(weights=None)
            for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
                setattr(self, name, getattr(net, name))

        def forward(self, x):
            x = self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))
            c2 = self.layer2(x)
            c3 = self.layer3(c2)
            return c2, c3, self.layer4(c3)

    class FPN(nn.Module):
        """Top-down feature pyramid over the three stages, nearest-neighbour upsampling."""

        def __init__(self, in_channels: Sequence[int], out: int, leaky: float) -> None:
            super().__init__()
            self.output1, self.output2, self.output3 = (conv_bn(c, out, 1, 1, leaky) for c in in_channels)
            self.merge1 = conv_bn(out, out, 3, 1, leaky)
            self.merge2 = conv_bn(out, out, 3, 1, leaky)

        def forward(self, features):
            p1, p2, p3 = self.output1(features[0]), self.output2(features[1]), self.output3(features[2])
            p2 = self.merge2(p2 + interpolate(p3, size=p2.shape[2:], mode="nearest"))
            p1 = self.merge1(p1 + interpolate(p2, size=p1.shape[2:], mode="nearest"))
            return p1, p2, p3

    class SSH(nn.Module):
        """Single-stage headless context module: 3x3, 5x5 and 7x7 receptive fields concatenated."""

        def __init__(self, inp: int, out: int, leaky: float) -> None:
            super().__init__()
            self.conv3X3 = conv_bn(inp, out // 2, leaky=None)
            self.conv5X5_1 = conv_bn(inp, out // 4, leaky=leaky)
            self.conv5X5_2 = conv_bn(out // 4, out // 4, leaky=None)
            self.conv7X7_2 = conv_bn(out // 4, out // 4, leaky=leaky)
            self.conv7x7_3 = conv_bn(out // 4, out // 4, leaky=None)

        def forward(self, x):
            branch = self.conv5X5_1(x)
            five = self.conv5X5_2(branch)
            seven = self.conv7x7_3(self.conv7X7_2(branch))
            return relu(cat([self.conv3X3(x), five, seven], dim=1))

    class Head(nn.Module):
        """1x1 convolution predicting ``values`` numbers per anchor, flattened to ``(B, H*W*A, values)``."""

        def __init__(self, inp: int, values: int, anchors: int = 2) -> None:
            super().__init__()
            self.values = values
            self.conv1x1 = nn.Conv2d(inp, anchors * values, 1)

        def forward(self, x):
            return self.conv1x1(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1, self.values)

    class RetinaFaceNet(nn.Module):
        def __init__(self, variant: Variant) -> None:
            super().__init__()
            out, leaky = variant.out_channels, variant.leaky
            self.body = ResNetBody() if variant.backbone == "resnet50" else MobileNetBody()
            self.fpn = FPN(variant.stage_channels, out, leaky)
            self.ssh1, self.ssh2, self.ssh3 = (SSH(out, out, leaky) for _ in range(3))
            self.ClassHead = nn.ModuleList(Head(out, 2) for _ in STEPS)
            self.BboxHead = nn.ModuleList(Head(out, 4) for _ in STEPS)
            self.LandmarkHead = nn.ModuleList(Head(out, 10) for _ in STEPS)

        def forward(self, x):
            p1, p2, p3 = self.fpn(self.body(x))
            levels = (self.ssh1(p1), self.ssh2(p2), self.ssh3(p3))
            loc = cat([head(f) for head, f in zip(self.BboxHead, levels)], dim=1)
            logits = cat([head(f) for head, f in zip(self.ClassHead, levels)], dim=1)
            points = cat([head(f) for head, f in zip(self.LandmarkHead, levels)], dim=1)
            return loc, logits.softmax(dim=-1)[..., 1], points

    return RetinaFaceNet


def checkpoint_filter(state_dict: dict) -> dict:
    """Keys as the network names them: the ``module.`` prefix of DataParallel checkpoints removed."""
    prefix = "module."
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def variant_of(state_dict: dict) -> Variant:
    """Which variant a (filtered) checkpoint holds, told by its backbone keys."""
    if "body.layer4.0.conv1.weight" in state_dict:
        return VARIANTS["resnet50"]
    if "body.stage1.0.0.weight" in state_dict:
        return VARIANTS["mobilenet0.25"]
    raise WeightsError("not a RetinaFace checkpoint: no MobileNet-0.25 (body.stage1) or ResNet-50 (body.layer4) keys")


def load_network(path, device: str = "cpu"):
    """The network of the checkpoint at ``path`` (weights only, loaded strictly) on ``device``."""
    import torch

    try:
        state = checkpoint_filter(torch.load(path, map_location="cpu", weights_only=True))
        variant = variant_of(state)
        net = build_network(variant)
        net.load_state_dict(state, strict=True)
    except (RuntimeError, OSError, pickle.UnpicklingError) as exc:  # torch: key/shape mismatch = RuntimeError
        raise WeightsError(f"{path} is not a loadable RetinaFace checkpoint: {exc}") from exc
    log.info("RetinaFace %s from %s on %s", variant.backbone, path, device)
    return net.to(device)


@lru_cache(maxsize=16)
def _priors(height: int, width: int) -> np.ndarray:
    return prior_boxes(height, width, MIN_SIZES, STEPS)


def decode(loc: np.ndarray, landmarks: np.ndarray, priors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Box and landmark regressions to normalised coordinates.

    Parameters
    ----------
    loc : ndarray, shape (N, 4), ``dx, dy, dw, dh`` per prior
    landmarks : ndarray, shape (N, 10), five ``dx, dy`` per prior
    priors : ndarray, shape (N, 4), ``cx, cy, w, h`` normalised (:func:`prior_boxes`)

    Returns
    -------
    boxes : ndarray, shape (N, 4), x1y1x2y2 in [0, 1] units of the input width/height
    points : ndarray, shape (N, 10), interleaved ``x, y`` in the same units
    """
    centre, size = priors[:, :2], priors[:, 2:]
    box_centre = centre + loc[:, :2] * VARIANCES[0] * size
    box_size = size * np.exp(loc[:, 2:] * VARIANCES[1])
    boxes = np.concatenate([box_centre - box_size / 2, box_centre + box_size / 2], axis=1)
    points = np.tile(centre, 5) + landmarks * VARIANCES[0] * np.tile(size, 5)
    return boxes, points


@register_detector("retinaface", description="RetinaFace MobileNet-0.25 (PyTorch; ResNet-50 with weights=), "
                   "5 landmarks", requires={"torch": "torch"}, weights=(WEIGHTS,))
class RetinaFaceDetector(FaceDetector):
    """RetinaFace at the image's own resolution (images over ``max_side`` are downscaled first).

    Images of the same size go through the network as one tensor on the device; the others are
    batched by size. Landmarks come out image-left eye first, as the detector was trained.
    """

    def __init__(self, device="auto", weights_dir=None, weights=None, score_threshold: float = 0.5,
                 nms_threshold: float = 0.4, top_k: int = 5000, max_side: int = 1280) -> None:
        super().__init__(device, max_side)
        path = resolve_weights(WEIGHTS, weights, weights_dir)
        self.weight_paths = [path]
        self.score_threshold, self.nms_threshold, self.top_k = score_threshold, nms_threshold, top_k
        self._net = load_network(path, self.device)

    @property
    def real_device(self) -> str:
        """Where the network's weights are."""
        return module_device(self._net)

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        return self.detect_by_size(images, self._detect_same_size)

    def detect_one(self, image: np.ndarray) -> list[Face]:
        return self._detect_same_size([image])[0]

    def _detect_same_size(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        import torch

        height, width = images[0].shape[:2]
        batch = np.stack(images)[..., ::-1].astype(np.float32) - np.array(BGR_MEAN, np.float32)
        with torch.inference_mode():
            tensor = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous().to(self.device)
            locs, scores, points = (t.float().cpu().numpy() for t in self._net(tensor))
        scale = np.array([width, height], np.float32)
        faces = []
        for loc, score, landmark in zip(locs, scores, points):
            boxes, landmarks = decode(loc, landmark, _priors(height, width))
            faces.append(select_faces(boxes * np.tile(scale, 2), score, landmarks * np.tile(scale, 5),
                                      self.score_threshold, self.nms_threshold, self.top_k))
        return faces
