"""OSCD change detection: city splits, baselines, a Siamese encoder with a light decoder."""
