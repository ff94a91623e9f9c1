"""BERT encoder (Devlin et al. 2019): token + position + segment embeddings, post-norm encoder
blocks, and a pooler over the [CLS] state.

    x_0 = Dropout(LN(E_tok[w] + E_pos + E_seg[s]))        (B, N, D)
    x_l = EncoderBlock_postnorm(x_{l-1}),  l = 1..L
    pooled = tanh(W_p x_L[:, 0] + b_p)                    (B, D); head(pooled) when num_classes > 0

BERT-base (30522 word pieces, 512 positions, 2 segments, D = 768, L = 12, 12 heads) has
109,482,240 parameters; sinusoidal positions remove the 512 x 768 table.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vitbench.zoo.registry import register_model
from vitbench.zoo.scratch.blocks import EncoderBlock
from vitbench.zoo.scratch.init import init_weights
from vitbench.zoo.scratch.position import LearnedPositionEmbedding, SinusoidalPositionEmbedding


class Bert(nn.Module):
    input_kind = "tokens"

    def __init__(
        self,
        vocab_size: int = 30522,
        type_vocab_size: int = 2,
        seq_len: int = 512,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        pos_embed: str = "learn",
        num_classes: int = 0,
        drop_rate: float = 0.1,
        attn_drop_rate: float = 0.1,
        norm_eps: float = 1e-12,
        cls_id: int = 101,
        sep_id: int = 102,
    ) -> None:
        """``seq_len`` sizes the learned position table and the example inputs; ``pos_embed`` is
        "learn" or "sinusoidal"; ``drop_rate`` is BERT's hidden dropout (embeddings, residual
        branches, classifier); ``cls_id``/``sep_id`` are [CLS]/[SEP] in the uncased vocabulary."""
        super().__init__()
        if pos_embed not in ("learn", "sinusoidal"):
            raise ValueError(f"BERT's pos_embed is 'learn' or 'sinusoidal', not {pos_embed!r}")
        if max(cls_id, sep_id) >= vocab_size:
            raise ValueError(
                f"[CLS]/[SEP] ids {cls_id}/{sep_id} lie outside a vocabulary of {vocab_size}"
            )
        self.vocab_size, self.seq_len, self.num_classes = vocab_size, seq_len, num_classes
        self.cls_id, self.sep_id = cls_id, sep_id
        #: the most tokens it takes: the learned position table's size (no limit when sinusoidal)
        self.max_positions: int | None = seq_len if pos_embed == "learn" else None
        self.token_embed = nn.Embedding(vocab_size, embed_dim)
        self.pos_embed = (
            LearnedPositionEmbedding(seq_len, embed_dim)
            if pos_embed == "learn"
            else SinusoidalPositionEmbedding()
        )
        self.type_embed = nn.Embedding(type_vocab_size, embed_dim)
        self.embed_norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.embed_drop = nn.Dropout(drop_rate)
        self.blocks = nn.ModuleList(
            EncoderBlock(
                embed_dim,
                num_heads,
                mlp_ratio,
                qkv_bias,
                drop=drop_rate,
                attn_drop=attn_drop_rate,
                norm_first=False,
                norm_eps=norm_eps,
            )
            for _ in range(depth)
        )
        self.pooler = nn.Linear(embed_dim, embed_dim)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(init_weights)

    def build_inputs(
        self, first: list[int], second: list[int] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Token ids of one or two segments -> ("[CLS] A [SEP] (B [SEP])", segment ids), (1, N)."""
        ids = [self.cls_id, *first, self.sep_id]
        types = [0] * len(ids)
        if second is not None:
            ids += [*second, self.sep_id]
            types += [1] * (len(second) + 1)
        return torch.tensor([ids]), torch.tensor([types])

    def forward_features(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
    ) -> Tensor:
        """input_ids (B, N), token_type_ids (B, N), attention_mask (B, N) 1 = token, 0 = padding
        -> (B, N, D)."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.pos_embed(self.token_embed(input_ids)) + self.type_embed(token_type_ids)
        x = self.embed_drop(self.embed_norm(x))
        mask = None if attention_mask is None else attention_mask.bool()[:, None, None, :]
        for block in self.blocks:
            x = block(x, mask=mask)
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """(B, N, D) -> pooled [CLS] (B, D) -> (B, num_classes), or pooled when 0 classes."""
        x = self.head_drop(torch.tanh(self.pooler(x[:, 0])))
        return x if pre_logits else self.head(x)

    def forward(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
    ) -> Tensor:
        return self.forward_head(self.forward_features(input_ids, token_type_ids, attention_mask))

    def example_inputs(
        self, batch_size: int, device: torch.device | str | None = None
    ) -> tuple[Tensor]:
        """Random token ids (B, seq_len) framed by [CLS] ... [SEP]."""
        device = next(self.parameters()).device if device is None else device
        ids = torch.randint(0, self.vocab_size, (batch_size, self.seq_len), device=device)
        ids[:, 0], ids[:, -1] = self.cls_id, self.sep_id
        return (ids,)


@register_model
def scratch_bert_base(**kwargs) -> Bert:
    """BERT-base, uncased vocabulary: width 768, 12 blocks, 12 heads, 512 positions."""
    return Bert(**{**dict(embed_dim=768, depth=12, num_heads=12, seq_len=512), **kwargs})
