"""Detectors that fail the ways a real backend can, for facebench's isolation tests.

Each is YuNet until asked to detect. The crashes are real: a read through a null pointer
(SIGSEGV) and ``os.abort()`` (SIGABRT) end the whole process, as a fault in a native library does.
"""
import ctypes
import os

from face_alignment.detectors.yunet import YuNetDetector


class SegfaultingYuNet(YuNetDetector):
    """YuNet that segfaults the first time it is asked to detect."""

    def detect(self, images):
        ctypes.string_at(0)  # reads address 0


class AbortingYuNet(YuNetDetector):
    """YuNet that aborts the process (SIGABRT) the first time it is asked to detect."""

    def detect(self, images):
        os.abort()


class RaisingYuNet(YuNetDetector):
    """YuNet whose every detection raises, as a backend with a broken runtime does."""

    def detect(self, images):
        raise RuntimeError("backend exploded")
