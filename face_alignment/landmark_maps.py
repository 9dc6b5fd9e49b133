"""Dense landmark layouts reduced to the suite's five points (image-left eye first).

Each layout names, per five-point slot, the dense indices whose mean is that point. The indices
below were checked on LFW images: the image-left eye and mouth corner have the smaller x.

MediaPipe Face Mesh, 478 points (``refine_landmarks=True`` adds the irises, 468-477):
    468 / 473 are the centres of the iris of the image-left / image-right eye: the pupils,
    which is what the ArcFace template's eye points are (MTCNN / RetinaFace eye centres).
    1 is the nose tip (4, just above it, aligned no better on LFW: crop cosine 0.9795 vs 0.9798).
    61 / 291 are the image-left / image-right mouth corners.

iBUG 300-W, 68 points (dlib's 68-point predictor, PFLD, the face of COCO-WholeBody):
    36-41 / 42-47 outline the image-left / image-right eye; their mean is the eye centre.
    30 is the nose tip (33, under the nose, is the sub-nasal point).
    48 / 54 are the image-left / image-right mouth corners.

LaPa / JD 106 points (RTMPose face6 models; mmpose ``lapa.py``):
    104 / 105 are the pupils (a swap pair, point 0 on the image-left jaw, as in iBUG),
    54 is the nose tip (the last of the bridge points 51-54), 84 / 90 the mouth corners.

COCO-WholeBody, 133 points (RTMW / DWPose): 23-90 are the 68 iBUG face points.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import FaceBenchError

#: five-point slots as tuples of dense indices to average, in LANDMARK_NAMES order
Layout = tuple[Sequence[int], Sequence[int], Sequence[int], Sequence[int], Sequence[int]]

MESH_478: Layout = ((468,), (473,), (1,), (61,), (291,))
IBUG_68: Layout = (range(36, 42), range(42, 48), (30,), (48,), (54,))
LAPA_106: Layout = ((104,), (105,), (54,), (84,), (90,))
WHOLEBODY_133: Layout = tuple(tuple(i + 23 for i in slot) for slot in IBUG_68)  # type: ignore[assignment]

#: layouts by number of points, for models that say no more than their output size
LAYOUTS: dict[int, Layout] = {478: MESH_478, 68: IBUG_68, 106: LAPA_106, 133: WHOLEBODY_133}


def to_five(points: np.ndarray, layout: Layout | None = None) -> np.ndarray:
    """The five points of ``points`` (N, 2) under ``layout`` (by default the one for N points).

    Returns
    -------
    ndarray, shape (5, 2), float32, in LANDMARK_NAMES order
    """
    points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    if layout is None:
        try:
            layout = LAYOUTS[len(points)]
        except KeyError:
            raise FaceBenchError(
                f"no five-point mapping for {len(points)} landmarks; known: {sorted(LAYOUTS)}"
            ) from None
    return np.stack([points[list(slot)].mean(axis=0) for slot in layout]).astype(np.float32)
