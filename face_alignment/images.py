"""Image decoding and normalisation to the suite's one image type: HxWx3 uint8 RGB."""
from __future__ import annotations

import os

import cv2
import numpy as np

from .errors import ImageError


def to_rgb_uint8(image) -> np.ndarray:
    """Convert an array (or PIL image) to HxWx3 uint8 RGB.

    Accepts gray (HxW or HxWx1), RGB, RGBA (alpha dropped), uint16 (scaled to 8 bits) and float
    in [0, 1]. Channel order is taken as RGB: arrays from ``cv2.imread`` must be converted first.
    """
    array = np.asarray(image)
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    elif array.dtype.kind == "f":
        array = (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        raise ImageError(f"unsupported image dtype {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ImageError(f"unsupported image shape {array.shape}: expected HxW, HxWx3 or HxWx4")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    elif array.shape[2] == 4:
        array = array[:, :, :3]
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ImageError(f"empty image of shape {array.shape}")
    return np.ascontiguousarray(array)


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB; raises :class:`ImageError` with the reason.

    Decoded with OpenCV as 3-channel colour at its bit depth: grayscale is replicated, alpha
    dropped, CMYK converted, the EXIF orientation applied, 16 bits scaled to 8. A JPEG whose
    image data is damaged but whose header is intact decodes as far as libjpeg recovers it (it
    prints ``Corrupt JPEG data`` on stderr); a truncated or undecodable file is an error.
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise ImageError(f"missing file: {path}") from None
    except OSError as exc:  # a folder, no permission, an I/O error
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if data.size == 0:
        raise ImageError(f"empty file: {path}")
    try:
        decoded = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    except cv2.error as exc:  # e.g. dimensions over OpenCV's pixel limit
        raise ImageError(f"not a decodable image: {path} ({exc.err})") from None
    if decoded is None:
        raise ImageError(f"not a decodable image: {path}")
    return to_rgb_uint8(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB))
