"""Readers: every capture format (ScanNet folders and .sens files, 7-Scenes, COLMAP,
nerfstudio, posed-image folders, the ATLAS sample, prepared scenes) as one
``SceneReader`` yielding ``Frame`` objects; gravity alignment and scale checks of a
reader. Layer: above geometry, below stereo (docs/architecture.md)."""
