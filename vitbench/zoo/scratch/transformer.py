"""The encoder-decoder Transformer (Vaswani et al. 2017) for sequence-to-sequence tasks.

    memory = Encoder(E[src] sqrt(D) + PE)                  (B, S, D)
    y      = Decoder(E[tgt] sqrt(D) + PE, memory)          (B, T, D), causal self-attention
    logits = y E^T                                         (B, T, V), embeddings shared (3.4)

``Encoder`` and ``Decoder`` end in a LayerNorm, like ``torch.nn.Transformer``'s stacks.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from vitbench.zoo.registry import register_model
from vitbench.zoo.scratch.blocks import DecoderBlock, EncoderBlock
from vitbench.zoo.scratch.init import init_weights
from vitbench.zoo.scratch.position import LearnedPositionEmbedding, SinusoidalPositionEmbedding


class Encoder(nn.Module):
    def __init__(
        self, depth: int, dim: int, num_heads: int, norm_eps: float = 1e-5, **block_kwargs
    ):
        super().__init__()
        self.blocks = nn.ModuleList(
            EncoderBlock(dim, num_heads, norm_eps=norm_eps, **block_kwargs) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=norm_eps)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:  # (B, S, D)
        for block in self.blocks:
            x = block(x, mask=mask)
        return self.norm(x)


class Decoder(nn.Module):
    def __init__(
        self, depth: int, dim: int, num_heads: int, norm_eps: float = 1e-5, **block_kwargs
    ):
        super().__init__()
        self.blocks = nn.ModuleList(
            DecoderBlock(dim, num_heads, norm_eps=norm_eps, **block_kwargs) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=norm_eps)

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
    ) -> Tensor:
        """x (B, T, D), memory (B, S, D); masks broadcast to (B, h, T, T) and (B, h, T, S)."""
        for block in self.blocks:
            x = block(x, memory, mask=mask, memory_mask=memory_mask, causal=True)
        return self.norm(x)


class Transformer(nn.Module):
    input_kind = "tokens"

    def __init__(
        self,
        vocab_size: int = 37000,
        seq_len: int = 512,
        embed_dim: int = 512,
        depth: int = 6,
        decoder_depth: int = 6,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        pos_embed: str = "sinusoidal",
        norm_first: bool = False,
        act: str = "relu",
        drop_rate: float = 0.1,
        attn_drop_rate: float = 0.0,
        norm_eps: float = 1e-5,
    ) -> None:
        """One vocabulary shared by source and target (byte-pair, 37000 in the paper);
        ``seq_len`` is the example length and the learned table's size (``pos_embed="learn"``)."""
        super().__init__()
        if pos_embed not in ("learn", "sinusoidal"):
            raise ValueError(f"pos_embed is 'learn' or 'sinusoidal', not {pos_embed!r}")
        self.vocab_size, self.seq_len, self.embed_dim = vocab_size, seq_len, embed_dim
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.pos_embed = (
            LearnedPositionEmbedding(seq_len, embed_dim)
            if pos_embed == "learn"
            else SinusoidalPositionEmbedding()
        )
        self.drop = nn.Dropout(drop_rate)
        block = dict(
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            drop=drop_rate,
            attn_drop=attn_drop_rate,
            act=act,
            norm_first=norm_first,
            norm_eps=norm_eps,
        )
        self.encoder = Encoder(depth, embed_dim, num_heads, **block)
        self.decoder = Decoder(decoder_depth, embed_dim, num_heads, **block)
        self.head = nn.Linear(embed_dim, vocab_size, bias=False)
        self.apply(init_weights)
        self.head.weight = self.embed.weight  # tied pre-softmax projection

    def _embed(self, ids: Tensor) -> Tensor:  # (B, N) -> (B, N, D)
        return self.drop(self.pos_embed(self.embed(ids) * math.sqrt(self.embed_dim)))

    def encode(self, src: Tensor, src_mask: Tensor | None = None) -> Tensor:
        """src (B, S) ids, src_mask (B, S) True = token -> memory (B, S, D)."""
        mask = None if src_mask is None else src_mask[:, None, None, :]
        return self.encoder(self._embed(src), mask=mask)

    def decode(
        self,
        tgt: Tensor,
        memory: Tensor,
        src_mask: Tensor | None = None,
        tgt_mask: Tensor | None = None,
    ) -> Tensor:
        """tgt (B, T) ids, memory (B, S, D) -> logits (B, T, V) of each next token."""
        memory_mask = None if src_mask is None else src_mask[:, None, None, :]
        mask = None if tgt_mask is None else tgt_mask[:, None, None, :]
        y = self.decoder(self._embed(tgt), memory, mask=mask, memory_mask=memory_mask)
        return self.head(y)

    def forward(
        self,
        src: Tensor,
        tgt: Tensor,
        src_mask: Tensor | None = None,
        tgt_mask: Tensor | None = None,
    ) -> Tensor:
        return self.decode(tgt, self.encode(src, src_mask), src_mask, tgt_mask)

    def example_inputs(
        self, batch_size: int, device: torch.device | str | None = None
    ) -> tuple[Tensor, Tensor]:
        """Random source and target ids, each (B, seq_len)."""
        device = next(self.parameters()).device if device is None else device
        shape = (batch_size, self.seq_len)
        return (
            torch.randint(0, self.vocab_size, shape, device=device),
            torch.randint(0, self.vocab_size, shape, device=device),
        )


@register_model
def scratch_transformer_base(**kwargs) -> Transformer:
    """Transformer base: width 512, 6 + 6 blocks, 8 heads, feed-forward 2048, ReLU, post-norm."""
    return Transformer(**{**dict(embed_dim=512, depth=6, decoder_depth=6, num_heads=8), **kwargs})
