"""Scene preparation (``prepare.py``): ground-truth TSDFs, the stereo prior and an index
per scene, written once before training. Runs stereo, so it sits above it."""
