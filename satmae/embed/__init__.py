"""Feature extraction from rasters: the scene pipeline, writers, preview and similarity search."""
