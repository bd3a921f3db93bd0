"""The learned model: 2D backbone, back-projection, 3D network, loss, model files and
inference (its training lives in ``atlas.training``)."""
