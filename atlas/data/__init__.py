"""Data: synthetic ScanNet-format scenes, raw-format writers and readers."""
