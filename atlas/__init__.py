"""ATLAS-style 3D scene reconstruction from posed RGB images."""

__version__ = "0.1.0"
