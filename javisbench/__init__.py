"""javisbench: the evaluation suite for text-to-sounding-video models."""

from javisbench._version import __version__

__all__ = ["__version__"]
