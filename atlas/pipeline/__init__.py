"""The per-scene pipeline that ``infer.py``, the Python API, the demo, the model card and
the benchmarks share: frame checks, gravity alignment, scale check, a reconstruction
method, colours and outputs."""
