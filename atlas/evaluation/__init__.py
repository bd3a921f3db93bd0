"""Evaluation: mesh metrics (and, later, depth metrics, reports, rendering)."""
