"""The chip store: chips of many locations on disk, written in parallel and read as datasets.

:mod:`~satmae.data.store.chipstore` holds the format, the index and the reader,
:mod:`~satmae.data.store.chipspec` the strictly checked spec, codec allow-list and checksums,
:mod:`~satmae.data.store.chipwriter` writes parts, :mod:`~satmae.data.store.chipping` cuts
the series of one location into chips, and :mod:`~satmae.data.store.datasets` serves a store
to a DataLoader.
"""
