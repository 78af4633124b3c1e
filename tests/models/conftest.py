"""Fixtures shared by the model tests."""

from __future__ import annotations

import pytest
import torch

from satmae.models import create_model


@pytest.fixture
def encoder():
    """The tiny spectro-temporal encoder, seeded, in eval mode."""
    torch.manual_seed(0)
    return create_model("satmae_tiny").encoder.eval()
