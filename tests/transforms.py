"""Photos that are not LFW-shaped, made from LFW images: each returns the new image and the
2x3 affine map from original to new pixel coordinates (to carry landmarks across)."""
from __future__ import annotations

import cv2
import numpy as np


def rotated(image: np.ndarray, degrees: float = 30.0):
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REFLECT), matrix


def scaled(image: np.ndarray, factor: float):
    h, w = image.shape[:2]
    size = (round(w * factor), round(h * factor))
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, size, interpolation=interp), np.array([[factor, 0, 0], [0, factor, 0]], float)


def wide(image: np.ndarray, ratio: float = 4.0):
    """The image in the middle of a grey canvas ``ratio`` times as wide."""
    h, w = image.shape[:2]
    canvas = np.full((h, int(w * ratio), 3), 127, np.uint8)
    left = (canvas.shape[1] - w) // 2
    canvas[:, left:left + w] = image
    return canvas, np.array([[1, 0, left], [0, 1, 0]], float)


def tight(image: np.ndarray, box=(70, 70, 180, 190), factor: float = 3.0):
    """The face filling the frame, as in CFP's tight frontal crops: LFW's central face region
    (``box``: x1, y1, x2, y2), enlarged ``factor`` times."""
    x1, y1, x2, y2 = box
    crop = cv2.resize(image[y1:y2, x1:x2], None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    return crop, np.array([[factor, 0, -x1 * factor], [0, factor, -y1 * factor]], float)


def gray(image: np.ndarray):
    g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return np.repeat(g[:, :, None], 3, axis=2), np.array([[1, 0, 0], [0, 1, 0]], float)


TRANSFORMS = {
    "rotated20": lambda im: rotated(im, 20.0),
    "small": lambda im: scaled(im, 0.4),
    "large": lambda im: scaled(im, 6.0),
    "wide": wide,
    "tight": tight,
    "gray": gray,
}
