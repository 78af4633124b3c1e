"""Readers: one module per source kind, behind one protocol and one ordered registry.

Each reader turns a raster source into samples of the DESIGN §3 contract
(:mod:`satmae.data.sample`). The public names are exported from :mod:`satmae.data`.
"""
