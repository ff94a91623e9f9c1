"""timm's ``VisionTransformer`` (ViT, DeiT, DeiT distilled, registers) with reducing blocks.

The transform swaps the classes of its ``Block`` and ``Attention`` modules for the subclasses
below, which add forwards and nothing else: parameters and state_dict are untouched.
"""

from __future__ import annotations

import torch.nn.functional as F
from timm.layers.attention import Attention, maybe_add_mask
from timm.models.vision_transformer import Block, VisionTransformer
from torch import Tensor, nn

from vitbench.token_reduction.plan import BlockPlan
from vitbench.token_reduction.prune import class_attention
from vitbench.token_reduction.state import TokenState, attention_bias, reduce_tokens


class ReducingAttention(Attention):
    """timm's attention, with an additive bias on the logits (proportional attention), that
    also returns its keys and, when asked, the class token's attention row.

    Fused (``fused_attn``): the bias goes to ``scaled_dot_product_attention`` as a float mask.
    Unfused: the explicit softmax, bias included, passes through ``attn_drop`` as timm's does.
    """

    def forward(
        self, x: Tensor, bias: Tensor | None = None, class_row: bool = False
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """x (B, N, C), bias (B, 1, 1, N) -> out (B, N, C), keys (B, heads, N, d),
        class attention (B, heads, N) or None."""
        b, n, _ = x.shape
        gate = getattr(self, "gate", None)
        gate = gate(x).sigmoid() if gate is not None else None
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, N, d)
        q, k = self.q_norm(q), self.k_norm(k)
        bias = None if bias is None else bias.to(q.dtype)
        if self.fused_attn:
            dropout = self.attn_drop.p if self.training else 0.0
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout)
            row = class_attention(q, k) if class_row else None
        else:
            q = q * self.scale
            attn = maybe_add_mask(q @ k.transpose(-2, -1), bias).softmax(dim=-1)
            row = attn[:, :, 0] if class_row else None
            out = self.attn_drop(attn) @ v
        out = out.transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim)
        norm = getattr(self, "norm", None)  # older timm has neither norm nor gate
        if norm is not None:
            out = norm(out)
        if gate is not None:
            out = out * gate
        return self.proj_drop(self.proj(out)), k, row


class ReducingBlock(Block):
    """timm's pre-norm block that merges or prunes tokens between attention and MLP."""

    token_plan: BlockPlan
    token_state: TokenState

    def forward(
        self, x: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False
    ) -> Tensor:  # (B, N, C) -> (B, N', C)
        if attn_mask is not None or is_causal:
            raise ValueError("token reduction takes no attention mask: the tokens change")
        plan, state = self.token_plan, self.token_state
        bias = attention_bias(x, plan, state)
        y, keys, row = self.attn(self.norm1(x), bias, plan.prune_keep is not None)
        x = x + self.drop_path1(self.ls1(y))
        x = reduce_tokens(x, keys, row, plan, state)
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


#: the family in messages
LABEL = "timm's VisionTransformer"
#: original class -> reducing subclass
SWAPS: dict[type, type] = {Block: ReducingBlock, Attention: ReducingAttention}


def blocks(model: nn.Module, method: str, who: str) -> list[nn.Module] | None:
    """The blocks of a timm ``VisionTransformer``; None for any other model."""
    if not isinstance(model, VisionTransformer):
        return None
    return list(model.blocks)


def tokens(model: nn.Module) -> tuple[int, int, bool]:
    """(tokens entering the first block at the built size, prefix tokens, has a class token)."""
    prefix = model.num_prefix_tokens
    return model.patch_embed.num_patches + prefix, prefix, model.cls_token is not None
