"""An example third-party detector: YuNet that keeps only confident faces.

Installed, it appears in ``list_methods()`` as ``yunet_strict``: its entry point in the
``face_alignment.detectors`` group names this module, which registers the detector, and the
weights file it loads, when loaded. Nothing in facebench names it.
"""
from face_alignment.detectors.yunet import WEIGHTS, YuNetDetector
from face_alignment.registry import register_detector


@register_detector("yunet_strict", description="YuNet with a 0.9 score threshold (plugin example)",
                   weights=(WEIGHTS,))
class StrictYuNetDetector(YuNetDetector):
    """YuNet's file and code, keeping only faces that score 0.9 or more."""

    def __init__(self, device="auto", weights_dir=None, score_threshold: float = 0.9, **options) -> None:
        super().__init__(device=device, weights_dir=weights_dir, score_threshold=score_threshold, **options)
