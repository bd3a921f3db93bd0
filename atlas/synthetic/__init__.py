"""Synthetic ScanNet-format rooms (textured primitives, rendered colour and depth):
the built-in scene of the demo and the training data of the CPU recipe.
``python -m atlas.synthetic --out data/synthetic`` writes a dataset."""
