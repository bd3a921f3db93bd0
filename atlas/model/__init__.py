"""The learned model: 2D backbone, back-projection, 3D network, loss, training module."""
