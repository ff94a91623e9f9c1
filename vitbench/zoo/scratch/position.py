"""Position information: added to the tokens (learned, 1D sinusoidal, 2D sin-cos) or added to the
attention scores (relative position bias)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LearnedPositionEmbedding(nn.Module):
    """A learned vector per position, added to the token at that position (ViT, BERT)."""

    def __init__(self, num_positions: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, num_positions, dim))

    def forward(self, x: Tensor) -> Tensor:  # (B, N, D), N <= num_positions
        if x.shape[1] > self.weight.shape[1]:
            raise ValueError(f"{x.shape[1]} tokens but only {self.weight.shape[1]} positions")
        return x + self.weight[:, : x.shape[1]]


def sinusoidal_table(num_positions: int, dim: int, device: torch.device | None = None) -> Tensor:
    """(N, D): PE[p, 2i] = sin(p / 10000^(2i/D)), PE[p, 2i+1] = cos(p / 10000^(2i/D))."""
    if dim % 2:
        raise ValueError(f"sinusoidal positions need an even width, not {dim}")
    pos = torch.arange(num_positions, dtype=torch.float32, device=device).unsqueeze(1)  # (N, 1)
    freq = 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float32, device=device) / dim)
    angle = pos * freq  # (N, D/2)
    return torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(1)  # interleave sin, cos


def sincos_2d_table(grid_size: tuple[int, int], dim: int) -> Tensor:
    """(H*W, D): half the channels encode the row with 1D sin-cos, half the column (MAE)."""
    if dim % 4:
        raise ValueError(f"2D sin-cos positions need a width divisible by 4, not {dim}")
    h, w = grid_size
    rows = sinusoidal_table(h, dim // 2)[:, None].expand(h, w, dim // 2)
    cols = sinusoidal_table(w, dim // 2)[None, :].expand(h, w, dim // 2)
    return torch.cat([rows, cols], dim=-1).flatten(0, 1)


class SinusoidalPositionEmbedding(nn.Module):
    """Fixed 1D sinusoids (Vaswani et al. 2017), no parameters, any sequence length."""

    def forward(self, x: Tensor) -> Tensor:  # (B, N, D)
        return x + sinusoidal_table(x.shape[1], x.shape[2], device=x.device).to(x.dtype)


class SinCos2dPositionEmbedding(nn.Module):
    """Fixed 2D sin-cos over the patch grid; prefix tokens (class, distillation) get zeros."""

    def __init__(self, grid_size: tuple[int, int], num_prefix_tokens: int = 0) -> None:
        super().__init__()
        self.grid_size = grid_size
        self.num_prefix_tokens = num_prefix_tokens

    def forward(self, x: Tensor) -> Tensor:  # (B, P + H*W, D)
        table = sincos_2d_table(self.grid_size, x.shape[2]).to(x.device, x.dtype)
        return x + F.pad(table, (0, 0, self.num_prefix_tokens, 0))


class RelativePositionBias(nn.Module):
    """A learned bias per head and relative offset (dy, dx), added to the attention scores
    (Swin, BEiT): scores_ij += B[h, y_i - y_j, x_i - x_j]. Prefix tokens get no bias."""

    def __init__(self, grid_size: tuple[int, int], num_heads: int, num_prefix_tokens: int = 0):
        super().__init__()
        h, w = grid_size
        self.num_prefix_tokens = num_prefix_tokens
        self.table = nn.Parameter(torch.zeros((2 * h - 1) * (2 * w - 1), num_heads))
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        dy = ys.flatten()[:, None] - ys.flatten()[None, :]  # (N, N) in [-(h-1), h-1]
        dx = xs.flatten()[:, None] - xs.flatten()[None, :]
        self.register_buffer("index", (dy + h - 1) * (2 * w - 1) + dx + w - 1, persistent=False)

    def forward(self) -> Tensor:
        """(1, heads, P + N, P + N) additive attention mask."""
        bias = self.table[self.index].permute(2, 0, 1)  # (heads, N, N)
        p = self.num_prefix_tokens
        return F.pad(bias, (p, 0, p, 0)).unsqueeze(0)
