"""SatMAE++'s multi-scale up-sampler: the 1× reconstruction -> images at 2×, 4×, … the size.

The layers, their order and their initialisation follow SatMAE++ (reference note §5.1): a 1×1
convolution widens the C bands to ``4·C`` channels (GELU, channels-first LayerNorm), then one
:class:`UpsampleBlock` per scale doubles the size (transposed convolution, LayerNorm, LeakyReLU,
a half-scaled residual block, LayerNorm) and projects back to C bands. Each block feeds the
next, so the scales are 2, 4, 8, … Convolutions get xavier-uniform weights and zero biases;
transposed convolutions keep PyTorch's default initialisation, as in SatMAE++.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

PROJ_RATIO = 4
"""Width of the up-sampler relative to the number of bands (SatMAE++ ``proj_ratio``)."""

CHANNEL_NORM_EPS = 1e-6


class ChannelNorm(nn.Module):
    """LayerNorm over the channel axis of ``(N, C, H, W)`` (mean and biased variance).

    Args:
        channels: C.
        eps: added to the variance.
    """

    def __init__(self, channels: int, eps: float = CHANNEL_NORM_EPS) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, H, W) -> (N, C, H, W) normalised over C."""
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class ResidualBlock(nn.Module):
    """``x + 0.5·conv2(relu(conv1(x)))`` with 3×3 convolutions of constant width."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, W, H, W') -> same shape."""
        out: Tensor = x + 0.5 * self.conv2(torch.relu(self.conv1(x)))
        return out


class UpsampleBlock(nn.Module):
    """One doubling: features ``(N, 4C, H, W)`` -> features and an image at twice the size.

    Args:
        width: feature channels (``4·C``).
        bands: C, the channels of the image it outputs.
    """

    def __init__(self, width: int, bands: int) -> None:
        super().__init__()
        self.up_conv = nn.ConvTranspose2d(width, width, kernel_size=4, stride=2, padding=1)
        self.up_norm = ChannelNorm(width)
        self.res_block = ResidualBlock(width)
        self.res_norm = ChannelNorm(width)
        self.proj_out = nn.Conv2d(width, bands, 3, padding=1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x: (N, 4C, H, W) -> features (N, 4C, 2H, 2W) for the next block, image (N, C, 2H, 2W)."""
        x = nn.functional.leaky_relu(self.up_norm(self.up_conv(x)), 0.01)
        x = self.res_norm(self.res_block(x))
        return x, self.proj_out(x)


class Upsampler(nn.Module):
    """Images at scales 2, 4, … from the 1× reconstruction.

    Args:
        bands: C, the bands of the reconstruction (in the up-sampler's channel order).
        num_scales: number of doublings (``len(upsample_scales)``).
    """

    def __init__(self, bands: int, num_scales: int) -> None:
        super().__init__()
        width = PROJ_RATIO * bands
        self.proj = nn.Conv2d(bands, width, 1)
        self.proj_norm = ChannelNorm(width)
        self.blocks = nn.ModuleList(UpsampleBlock(width, bands) for _ in range(num_scales))
        for module in self.modules():
            # nn.ConvTranspose2d is not an nn.Conv2d: it keeps PyTorch's default init.
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, image: Tensor) -> list[Tensor]:
        """image: (N, C, H, W) -> [(N, C, 2H, 2W), (N, C, 4H, 4W), …], one per block."""
        x = self.proj_norm(nn.functional.gelu(self.proj(image)))
        outputs = []
        for block in self.blocks:
            x, out = block(x)
            outputs.append(out)
        return outputs
