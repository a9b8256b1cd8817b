"""javisbench: the evaluation suite for text-to-sounding-video models."""

__version__ = "0.1.0"
