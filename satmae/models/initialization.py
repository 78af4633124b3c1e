"""SatMAE's weight initialisation, shared by the encoder and the decoders."""

from __future__ import annotations

from torch import nn


def init_weights(module: nn.Module) -> None:
    """SatMAE initialisation: xavier-uniform linears and patch convs, zero biases, unit norms."""
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            nn.init.xavier_uniform_(sub.weight)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.Conv2d):
            nn.init.xavier_uniform_(sub.weight.view(sub.weight.shape[0], -1))
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.LayerNorm):
            nn.init.ones_(sub.weight)
            nn.init.zeros_(sub.bias)
