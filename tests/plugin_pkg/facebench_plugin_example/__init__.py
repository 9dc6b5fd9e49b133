"""An example third-party detector: YuNet that keeps only confident faces.

Installed, it appears in ``list_methods()`` as ``yunet_strict`` through its entry point in the
``face_alignment.detectors`` group; nothing in facebench names it.
"""
from face_alignment.detectors.yunet import YuNetDetector


class StrictYuNetDetector(YuNetDetector):
    """YuNet with a 0.9 score threshold (plugin example)."""

    def __init__(self, device="auto", weights_dir=None, score_threshold: float = 0.9, **options) -> None:
        super().__init__(device=device, weights_dir=weights_dir, score_threshold=score_threshold, **options)
