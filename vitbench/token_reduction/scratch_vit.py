"""vitbench's own ViT (:mod:`vitbench.zoo.scratch.vit`) with reducing blocks.

The transform swaps the classes of its ``EncoderBlock`` and ``MultiHeadAttention`` modules for
the subclasses below, which add forwards and nothing else: parameters and state_dict are
untouched. Pre-norm and post-norm blocks both reduce between attention and feed-forward.
"""

from __future__ import annotations

from torch import Tensor, nn

from vitbench.errors import VitbenchError
from vitbench.token_reduction.plan import BlockPlan
from vitbench.token_reduction.prune import class_attention
from vitbench.token_reduction.state import TokenState, attention_bias, reduce_tokens
from vitbench.zoo.scratch.attention import scaled_dot_product_attention
from vitbench.zoo.scratch.blocks import EncoderBlock
from vitbench.zoo.scratch.multihead import MultiHeadAttention
from vitbench.zoo.scratch.vit import VisionTransformer


class ReducingMultiHeadAttention(MultiHeadAttention):
    """Self-attention with an additive bias on the logits (proportional attention), that also
    returns its keys and, when asked, the class token's attention row. The bias reaches the
    fused kernel as a float mask, or the explicit softmax (kept in ``last_attn`` when
    ``keep_attn`` is set)."""

    def forward(
        self, x: Tensor, bias: Tensor | None = None, class_row: bool = False
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """x (B, N, C), bias (B, 1, 1, N) -> out (B, N, C), keys (B, heads, N, d),
        class attention (B, heads, N) or None."""
        q, k, v = self._heads(self.q(x)), self._heads(self.k(x)), self._heads(self.v(x))
        out, weights = scaled_dot_product_attention(
            q,
            k,
            v,
            None if bias is None else bias.to(q.dtype),
            dropout_p=self.attn_drop if self.training else 0.0,
            fused=self.fused_attn and not self.keep_attn,
        )
        self.last_attn = weights.detach() if self.keep_attn else None
        row = None
        if class_row:
            row = class_attention(q, k) if weights is None else weights[:, :, 0]
        return self.proj_drop(self.proj(out.transpose(1, 2).flatten(2))), k, row


class ReducingEncoderBlock(EncoderBlock):
    """vitbench's encoder block that merges or prunes tokens between attention and MLP."""

    token_plan: BlockPlan
    token_state: TokenState

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:  # (B, N, C) -> (B, N', C)
        if mask is not None:
            raise ValueError("token reduction takes no attention mask: the tokens change")
        plan, state = self.token_plan, self.token_state
        bias = attention_bias(x, plan, state)
        y, keys, row = self.attn(
            self.norm1(x) if self.norm_first else x, bias, plan.prune_keep is not None
        )
        y = self.drop_path1(self.ls1(y))
        x = x + y if self.norm_first else self.norm1(x + y)
        x = reduce_tokens(x, keys, row, plan, state)
        y = self.drop_path2(self.ls2(self.mlp(self.norm2(x) if self.norm_first else x)))
        return x + y if self.norm_first else self.norm2(x + y)


#: the family in messages
LABEL = "vitbench's own ViT"
#: original class -> reducing subclass
SWAPS: dict[type, type] = {
    EncoderBlock: ReducingEncoderBlock,
    MultiHeadAttention: ReducingMultiHeadAttention,
}


def blocks(model: nn.Module, method: str, who: str) -> list[nn.Module] | None:
    """The blocks of vitbench's ViT (None for any other model); an error for a relative
    position bias, which is fixed to the full token grid."""
    if not isinstance(model, VisionTransformer):
        return None
    if model.rel_pos is not None:
        raise VitbenchError(
            f"{method} supports vitbench's own ViT without a relative position bias, and "
            f"{who} has one (pos_embed='rel'): the bias is fixed to the full token grid"
        )
    return list(model.blocks)


def tokens(model: nn.Module) -> tuple[int, int, bool]:
    """(tokens entering the first block at the built size, prefix tokens, has a class token)."""
    prefix = model.num_prefix_tokens
    return model.patch_embed.num_patches + prefix, prefix, model.tokens.cls_token is not None
