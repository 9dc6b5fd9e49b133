"""my_yunet: YuNet's ONNX model run by OpenCV's FaceDetectorYN, as a facebench detector plug-in."""
import cv2
import numpy as np

from face_alignment import Face
from face_alignment.detectors.base import FaceDetector, opencv_errors_only
from face_alignment.registry import register_detector
from face_alignment.weights import WeightSpec, resolve_weights

#: the file the detector loads: looked for as <weights dir>/yunet/<filename> (or
#: <weights dir>/<filename>), else downloaded from the URL; used only if its sha256 matches
WEIGHTS = WeightSpec(
    name="my_yunet",
    subdir="yunet",
    filename="face_detection_yunet_2023mar.onnx",
    sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
    url="https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
        "face_detection_yunet_2023mar.onnx",
    license="MIT",
    source="opencv/opencv_zoo",
)


@register_detector("my_yunet", description="YuNet 2023mar through cv2.FaceDetectorYN (plug-in example)",
                   weights=(WEIGHTS,))
class MyYuNet(FaceDetector):
    """YuNet on the CPU: ``device`` is accepted, as every detector's is, and not used."""

    real_device = "cpu"  # where it runs whatever device says (the report's detector_device)

    def __init__(self, device="auto", weights_dir=None, weights=None, score_threshold=0.5, max_side=1280):
        super().__init__(device, max_side)
        path = resolve_weights(WEIGHTS, weights, weights_dir)  # weights=: a file to use instead
        self.weight_paths = [path]  # their sha256 goes into the report
        with opencv_errors_only():  # OpenCV 5 warns that its new engine ignores the (CPU) target
            self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold)

    def detect_one(self, image):
        """The faces of one HxWx3 uint8 RGB image, in its pixels."""
        height, width = image.shape[:2]
        self._net.setInputSize((width, height))
        _, rows = self._net.detect(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        faces = []
        for row in [] if rows is None else rows:
            # a row: box x, y, w, h; (x, y) of the image-left eye, image-right eye, nose tip,
            # image-left and image-right mouth corners (LANDMARK_NAMES order); score
            x, y, w, h = row[:4]
            faces.append(Face(bbox=np.array([x, y, x + w, y + h]), score=row[14],
                              landmarks=row[4:14].reshape(5, 2)))
        return faces
