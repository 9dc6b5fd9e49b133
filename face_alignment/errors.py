"""Typed errors. All subclass ``ValueError`` so callers can catch them broadly."""


class FaceBenchError(ValueError):
    """Base class of the suite's expected errors (bad configuration, missing files)."""


class UnknownMethodError(FaceBenchError, KeyError):
    """A detector name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class NameTakenError(FaceBenchError):
    """A detector or weights name registered a second time."""


class MissingDependencyError(FaceBenchError, ImportError):
    """An optional package a method needs is not installed."""


class WeightsError(FaceBenchError):
    """A weights file is missing, or not the file it should be."""


class ChecksumError(WeightsError):
    """A file's sha256 differs from the manifest."""


class ImageError(FaceBenchError):
    """An image could not be read or decoded."""


class DatasetError(FaceBenchError):
    """A data set (its folder, pairs, protocol or label file) is missing or malformed."""
