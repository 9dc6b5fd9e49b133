"""Which detected face is *the* face of an image.

Rule: among the faces whose box contains the image centre, the largest; when no box contains
the centre, the largest face of all. On LFW the labelled person is the one centred in the
image (other people appear at the edges, sometimes larger), and in an ordinary one-person photo
the rule picks the only or the most prominent face.
"""
from __future__ import annotations

from collections.abc import Sequence

from .types import Face


def pick_target_face(faces: Sequence[Face], image_shape: tuple[int, ...]) -> Face | None:
    """The target face of an image of ``image_shape`` (H, W, ...), or None when there is none."""
    if not faces:
        return None
    cy, cx = image_shape[0] / 2.0, image_shape[1] / 2.0
    centred = [f for f in faces if f.bbox[0] <= cx <= f.bbox[2] and f.bbox[1] <= cy <= f.bbox[3]]
    return max(centred or faces, key=lambda f: f.area)
