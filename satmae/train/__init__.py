"""Pretraining: optimiser, learning-rate and mask-ratio schedules, precision.

The pieces here are plain PyTorch so that they can be tested and reused without Lightning:
:mod:`satmae.train.optim` builds AdamW with the SatMAE recipe, :mod:`satmae.train.schedules`
holds the per-step learning-rate and mask-ratio schedules, and :mod:`satmae.train.precision`
chooses a numeric precision the hardware runs fast.
"""
