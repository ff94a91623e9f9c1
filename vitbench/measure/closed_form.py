"""Closed-form parameter and MAC counts of a plain ViT, term by term, forward and backward, and
of BERT's forward.

An independent truth for the operator-level counter: written from the architectures (Dosovitskiy
et al. 2021; Devlin et al. 2019) rather than from a forward pass. MACs follow the counter's
convention: one multiply-add = 1, layer norms 5 operations per element (fvcore's rule),
everything else free (softmax, GELU, tanh, gathers, sums); in backward a layer norm's input
gradient 5 per element and its weight gradient 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ViTShape:
    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    num_classes: int = 1000
    class_token: bool = True

    @property
    def num_patches(self) -> int:
        return (self.img_size // self.patch_size) ** 2

    @property
    def tokens(self) -> int:
        return self.num_patches + int(self.class_token)

    @property
    def hidden(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)


def vit_macs_terms(s: ViTShape) -> dict[str, int]:
    """MACs of one image, per term (each transformer term summed over all layers)."""
    n, d, h = s.tokens, s.embed_dim, s.hidden
    return {
        "patch_embed": s.num_patches * d * s.in_chans * s.patch_size**2,
        "qkv": s.depth * n * d * 3 * d,
        "attn_scores": s.depth * n * n * d,  # Q K^T over all heads: heads x N x N x (D / heads)
        "attn_values": s.depth * n * n * d,  # softmax(.) V
        "attn_proj": s.depth * n * d * d,
        "mlp": s.depth * 2 * n * d * h,
        "layer_norms": (2 * s.depth + 1) * n * d * 5,
        "head": d * s.num_classes,
    }


def vit_macs(s: ViTShape) -> int:
    return sum(vit_macs_terms(s).values())


def vit_macs_at_tokens(s: ViTShape, tokens: Sequence[int]) -> int:
    """MACs of one image when the blocks run at shrinking token counts (token merging, pruning).

    ``tokens``: depth + 1 counts, prefix included. Block l's first norm and attention run at
    tokens[l], its second norm and MLP at tokens[l + 1] (merging and pruning act between the
    two); tokens[depth] reach the final norm. ``[s.tokens] * (depth + 1)`` gives
    :func:`vit_macs`. The reduction's own work (the matching's similarities) is not included.
    """
    if len(tokens) != s.depth + 1:
        raise ValueError(f"{s.depth} blocks need {s.depth + 1} token counts, got {len(tokens)}")
    d, h = s.embed_dim, s.hidden
    total = s.num_patches * d * s.in_chans * s.patch_size**2 + d * s.num_classes  # embed, head
    for n, m in zip(tokens[:-1], tokens[1:], strict=True):
        total += n * d * 5 + n * d * 3 * d  # norm, qkv
        total += 2 * n * n * d + n * d * d  # scores and weighted values over all heads, proj
        total += m * d * 5 + 2 * m * d * h  # norm, MLP
    return total + tokens[-1] * d * 5  # the final norm


def vit_backward_terms(s: ViTShape) -> dict[str, tuple[int, int]]:
    """(input-gradient, weight-gradient) MACs of one image's backward pass, per term.

    A product Y = X W (X: n x k, W: k x m) has dX = dY W^T and dW = X^T dY, n x k x m MACs each.
    Attention's two products have no weights: the pair is the gradients of both factors.
    """
    n, d, h, depth, classes = s.tokens, s.embed_dim, s.hidden, s.depth, s.num_classes
    norms = (2 * depth + 1) * n * d
    return {
        # the image needs no gradient: the patch embedding computes only its weight gradient
        "patch_embed": (0, s.num_patches * s.in_chans * s.patch_size**2 * d),
        "qkv": (depth * n * 3 * d * d, depth * d * n * 3 * d),
        "attn_scores": (depth * n * n * d, depth * n * n * d),  # dQ = dS K, dK = dS^T Q
        "attn_values": (depth * n * n * d, depth * n * n * d),  # dP = dO V^T, dV = P^T dO
        "attn_proj": (depth * n * d * d, depth * d * n * d),
        "mlp": (depth * 2 * n * h * d, depth * 2 * d * n * h),  # fc2 then fc1
        # input gradient as the forward (5 per element), gamma's gradient 1, beta's a sum
        "layer_norms": (norms * 5, norms * 1),
        "head": (classes * d, d * classes),  # on the one class token
    }


def vit_train_macs(s: ViTShape) -> int:
    """MACs of one image's training step: forward plus backward (no optimizer step)."""
    backward = sum(i + w for i, w in vit_backward_terms(s).values())
    return vit_macs(s) + backward


def vit_params(s: ViTShape) -> int:
    """Parameters of timm's ``VisionTransformer`` with qkv bias and a linear head."""
    d, h = s.embed_dim, s.hidden
    patch = d * s.in_chans * s.patch_size**2 + d
    tokens = d * int(s.class_token) + s.tokens * d  # class token + learned positions
    block = (
        2 * 2 * d  # two layer norms
        + 3 * d * d
        + 3 * d  # qkv
        + d * d
        + d  # projection
        + d * h
        + h
        + h * d
        + d  # MLP
    )
    return patch + tokens + s.depth * block + 2 * d + d * s.num_classes + s.num_classes


@dataclass(frozen=True)
class BertShape:
    """A BERT encoder with a pooler (BERT-base by default) and a classifier on the pooled
    [CLS] state (none when ``num_classes`` is 0). Heads do not enter the counts: the attention
    products cost heads x N x N x (D / heads) whatever the split."""

    seq_len: int = 512
    vocab_size: int = 30522
    positions: int = 512
    type_vocab_size: int = 2
    embed_dim: int = 768
    depth: int = 12
    mlp_dim: int = 3072
    num_classes: int = 2


def bert_macs_terms(s: BertShape) -> dict[str, int]:
    """MACs of one sequence, per term (each encoder term summed over all layers); the
    embeddings are gathers and sums, free."""
    n, d, h = s.seq_len, s.embed_dim, s.mlp_dim
    return {
        "embed_norm": n * d * 5,
        "qkv": s.depth * n * d * 3 * d,
        "attn_scores": s.depth * n * n * d,  # Q K^T over all heads
        "attn_values": s.depth * n * n * d,  # softmax(.) V
        "attn_proj": s.depth * n * d * d,
        "mlp": s.depth * 2 * n * d * h,
        "layer_norms": 2 * s.depth * n * d * 5,  # post-norm: after attention and after the MLP
        "pooler": d * d,  # on the [CLS] state only
        "classifier": d * s.num_classes,
    }


def bert_macs(s: BertShape) -> int:
    return sum(bert_macs_terms(s).values())


def bert_params(s: BertShape) -> int:
    """Parameters of BERT with its pooler and a linear classifier (none for 0 classes)."""
    d, h = s.embed_dim, s.mlp_dim
    embed = (s.vocab_size + s.positions + s.type_vocab_size) * d + 2 * d  # tables, norm
    layer = 4 * (d * d + d) + (d * h + h) + (h * d + d) + 2 * 2 * d  # q, k, v, out; MLP; norms
    head = d * s.num_classes + s.num_classes if s.num_classes else 0
    return embed + s.depth * layer + d * d + d + head
