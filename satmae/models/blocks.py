"""Pre-norm transformer blocks on ``F.scaled_dot_product_attention``.

Parameter names match timm's ``Block`` (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``,
``mlp.fc1``, ``mlp.fc2``) so official SatMAE checkpoints load without renaming inside blocks.
LayerNorm eps is 1e-6 as in the official factories.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

LayerNorm = partial(nn.LayerNorm, eps=1e-6)

SHORT_CPU_KEYS = 256
"""Up to this many keys, bf16 attention on the CPU uses the math kernel (see :func:`attend`)."""


def attend(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None) -> Tensor:
    """Scaled dot-product attention with the kernel that is fastest for the case.

    ``query (B, heads, Q, d)``, ``key``/``value (B, heads, N, d)`` -> ``(B, heads, Q, d)``.
    In bf16 on the CPU, PyTorch's flash kernel is slower than the plain math kernel for short
    sequences (the encoder's visible tokens, the cross decoder's context): measured 1.6x for
    110 keys and 2.7x for the cross decoder, forward and backward. Other cases keep PyTorch's
    own choice. Both kernels compute the same function.
    """
    short_bf16_on_cpu = (
        query.device.type == "cpu"
        and query.dtype == torch.bfloat16
        and key.shape[-2] <= SHORT_CPU_KEYS
    )
    if short_bf16_on_cpu:
        with sdpa_kernel(SDPBackend.MATH):
            return F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask)
    return F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask)


class Mlp(nn.Module):
    """Two linear layers with GELU: ``(…, D) -> (…, D)``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        """Apply fc1, GELU, fc2."""
        out: Tensor = self.fc2(F.gelu(self.fc1(x)))
        return out


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """Attend over the tokens of each sample.

        Args:
            x: ``(B, N, D)``.
            attn_mask: optional bool ``(B, 1, 1, N)``; False keys are ignored (padded frames).

        Returns:
            ``(B, N, D)``.
        """
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, N, d)
        out = attend(query, key, value, attn_mask)
        projected: Tensor = self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))
        return projected


class CrossAttention(nn.Module):
    """Multi-head attention of queries over a separate context."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, queries: Tensor, context: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """``queries (B, Q, D)`` attend to ``context (B, N, D)`` -> ``(B, Q, D)``."""
        batch, num_queries, dim = queries.shape
        head_dim = dim // self.num_heads
        query = (
            self.q(queries).reshape(batch, num_queries, self.num_heads, head_dim).transpose(1, 2)
        )
        kv = self.kv(context).reshape(batch, context.shape[1], 2, self.num_heads, head_dim)
        key, value = kv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, N, d)
        out = attend(query, key, value, attn_mask)
        projected: Tensor = self.proj(out.transpose(1, 2).reshape(batch, num_queries, dim))
        return projected


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """``(B, N, D) -> (B, N, D)``; see :class:`Attention` for ``attn_mask``."""
        x = x + self.attn(self.norm1(x), attn_mask)
        out: Tensor = x + self.mlp(self.norm2(x))
        return out


class CrossBlock(nn.Module):
    """Pre-norm block whose queries cross-attend to a context (no query self-attention)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.norm_context = LayerNorm(dim)
        self.attn = CrossAttention(dim, num_heads)
        self.norm2 = LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, queries: Tensor, context: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """``queries (B, Q, D)``, ``context (B, N, D)`` -> ``(B, Q, D)``."""
        queries = queries + self.attn(self.norm1(queries), self.norm_context(context), attn_mask)
        out: Tensor = queries + self.mlp(self.norm2(queries))
        return out
