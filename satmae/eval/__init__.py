"""Benchmark evaluation of encoders: ``satmae evaluate`` (DESIGN §9).

Module map:

- :mod:`satmae.eval.benchmarks`: EuroSAT, EuroSAT-spatial and BigEarthNet through torchgeo's
  dataset classes, bands mapped by name, as samples in the data contract.
- :mod:`satmae.eval.features`: frozen features, cached on disk by model hash and data checksum.
- :mod:`satmae.eval.probes`: kNN (k = 5) and L-BFGS logistic regression on frozen features.
- :mod:`satmae.eval.finetune`: end-to-end fine-tuning (layer-wise lr decay, drop path, AdamW).
- :mod:`satmae.eval.metrics`: classification and multi-label scores.
- :mod:`satmae.eval.classification`: one classification run (protocol + baseline) -> result.
- :mod:`satmae.eval.change`: OSCD change detection (data, baselines, Siamese model, scoring).
- :mod:`satmae.eval.report`: ``report.json``, ``report.md``, figures and ``--compare``.
"""
