"""Multi-view stereo from posed RGB: plane-sweep depth maps and their fusion."""
