"""Feature extraction: embeddings written as COG, Zarr or GeoParquet, searched, previewed."""
