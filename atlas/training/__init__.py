"""Training: items cut from prepared scenes (data), their resumable order, random crops,
and the Lightning module (``train.py``)."""
