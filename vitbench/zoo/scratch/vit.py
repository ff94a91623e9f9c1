"""Vision Transformer (Dosovitskiy et al. 2021) and DeiT's distilled variant (Touvron et al. 2021).

    x_0 = [cls; (dist;) x_p^1 E; ...; x_p^N E] + E_pos      (B, P + N, D)
    x_l = EncoderBlock(x_{l-1}),  l = 1..L
    y   = head(LN(x_L)[:, 0])                                (token pooling; "avg" pools patches)

Module and parameter names follow timm's ``VisionTransformer`` so that its weights load through
the short key mapping in ``timm_mapping.py``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vitbench.zoo.registry import register_model
from vitbench.zoo.scratch.blocks import EncoderBlock
from vitbench.zoo.scratch.init import init_weights
from vitbench.zoo.scratch.patch_embed import PATCH_EMBEDS
from vitbench.zoo.scratch.position import (
    LearnedPositionEmbedding,
    RelativePositionBias,
    SinCos2dPositionEmbedding,
    SinusoidalPositionEmbedding,
)
from vitbench.zoo.scratch.tokens import PrefixTokens

POS_EMBEDS = ("learn", "sinusoidal", "sincos2d", "rel", "none")


def _position_embedding(kind: str, grid: tuple[int, int], prefix: int, dim: int) -> nn.Module:
    """The module that adds positions to the tokens ("rel" biases the attention scores instead)."""
    if kind == "learn":
        return LearnedPositionEmbedding(prefix + grid[0] * grid[1], dim)
    if kind == "sinusoidal":
        return SinusoidalPositionEmbedding()
    if kind == "sincos2d":
        return SinCos2dPositionEmbedding(grid, prefix)
    return nn.Identity()


class VisionTransformer(nn.Module):
    input_kind = "image"

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        init_values: float | None = None,
        class_token: bool = True,
        distilled: bool = False,
        global_pool: str = "token",
        pos_embed: str = "learn",
        patch_embed: str = "conv",
        norm_first: bool = True,
        act: str = "gelu",
        drop_rate: float = 0.0,
        pos_drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-6,
    ) -> None:
        """Keyword names are timm's; ``pos_embed`` in POS_EMBEDS, ``patch_embed`` in PATCH_EMBEDS,
        ``distilled`` adds DeiT's distillation token and head, ``norm_first=False`` is post-norm."""
        super().__init__()
        if global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool is 'token' or 'avg', not {global_pool!r}")
        if global_pool == "token" and not class_token:
            raise ValueError("token pooling needs the class token")
        if distilled and (global_pool != "token" or not class_token):
            raise ValueError("a distilled ViT pools the class and distillation tokens")
        if pos_embed not in POS_EMBEDS:
            raise ValueError(f"pos_embed is one of {POS_EMBEDS}, not {pos_embed!r}")
        if patch_embed not in PATCH_EMBEDS:
            raise ValueError(f"patch_embed is one of {sorted(PATCH_EMBEDS)}, not {patch_embed!r}")
        self.in_chans, self.num_classes, self.embed_dim = in_chans, num_classes, embed_dim
        self.global_pool = global_pool
        self.distilled = distilled
        self.distilled_training = False  # True: training forward returns (class, dist) logits

        self.patch_embed = PATCH_EMBEDS[patch_embed](img_size, patch_size, in_chans, embed_dim)
        self.tokens = PrefixTokens(embed_dim, class_token, dist_token=distilled)
        self.num_prefix_tokens = self.tokens.num_tokens
        grid, prefix = self.patch_embed.grid_size, self.num_prefix_tokens
        self.pos_embed = _position_embedding(pos_embed, grid, prefix, embed_dim)
        self.rel_pos = RelativePositionBias(grid, num_heads, prefix) if pos_embed == "rel" else None
        self.pos_drop = nn.Dropout(pos_drop_rate)

        drop_path = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]  # linear decay
        self.blocks = nn.ModuleList(
            EncoderBlock(
                embed_dim,
                num_heads,
                mlp_ratio,
                qkv_bias,
                drop=proj_drop_rate,
                attn_drop=attn_drop_rate,
                drop_path=drop_path[i],
                init_values=init_values,
                act=act,
                norm_first=norm_first,
                norm_eps=norm_eps,
            )
            for i in range(depth)
        )
        # timm's placement: final norm on the tokens, or after pooling ("fc_norm") for avg pooling
        use_fc_norm = global_pool == "avg"
        self.norm = nn.Identity() if use_fc_norm else nn.LayerNorm(embed_dim, eps=norm_eps)
        self.fc_norm = nn.LayerNorm(embed_dim, eps=norm_eps) if use_fc_norm else nn.Identity()
        self.head_drop = nn.Dropout(drop_rate)
        self.head = self._head(embed_dim, num_classes)
        self.head_dist = self._head(embed_dim, num_classes) if distilled else None
        self.apply(init_weights)

    @staticmethod
    def _head(dim: int, num_classes: int) -> nn.Module:
        return nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, P + N, D) normalised token states."""
        x = self.pos_drop(self.pos_embed(self.tokens(self.patch_embed(x))))
        bias = self.rel_pos() if self.rel_pos is not None else None  # (1, heads, P+N, P+N)
        for block in self.blocks:
            x = block(x, mask=bias)
        return self.norm(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """(B, P + N, D) -> (B, num_classes), or the pooled (B, D) with ``pre_logits``."""
        if self.distilled:
            x_cls, x_dist = self.head_drop(x[:, 0]), self.head_drop(x[:, 1])
            if pre_logits:
                return (x_cls + x_dist) / 2
            x_cls, x_dist = self.head(x_cls), self.head_dist(x_dist)
            if self.training and self.distilled_training:
                return x_cls, x_dist
            return (x_cls + x_dist) / 2  # DeiT's inference: average the two heads
        x = x[:, 0] if self.global_pool == "token" else x[:, self.num_prefix_tokens :].mean(1)
        x = self.head_drop(self.fc_norm(x))
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def example_inputs(
        self, batch_size: int, device: torch.device | str | None = None
    ) -> tuple[Tensor]:
        """A random image batch (B, in_chans, H, W)."""
        device = next(self.parameters()).device if device is None else device
        return (torch.randn(batch_size, self.in_chans, *self.patch_embed.img_size, device=device),)


def _vit(defaults: dict, kwargs: dict) -> VisionTransformer:
    return VisionTransformer(**{**defaults, **kwargs})


@register_model
def scratch_vit_tiny_patch16_224(**kwargs) -> VisionTransformer:
    """ViT-Ti/16 (DeiT-Ti): width 192, 12 blocks, 3 heads."""
    return _vit(dict(patch_size=16, embed_dim=192, depth=12, num_heads=3), kwargs)


@register_model
def scratch_vit_small_patch16_224(**kwargs) -> VisionTransformer:
    """ViT-S/16: width 384, 12 blocks, 6 heads."""
    return _vit(dict(patch_size=16, embed_dim=384, depth=12, num_heads=6), kwargs)


@register_model
def scratch_vit_base_patch16_224(**kwargs) -> VisionTransformer:
    """ViT-B/16: width 768, 12 blocks, 12 heads (86,567,656 parameters)."""
    return _vit(dict(patch_size=16, embed_dim=768, depth=12, num_heads=12), kwargs)


@register_model
def scratch_vit_large_patch16_224(**kwargs) -> VisionTransformer:
    """ViT-L/16: width 1024, 24 blocks, 16 heads."""
    return _vit(dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16), kwargs)


@register_model
def scratch_deit_tiny_distilled_patch16_224(**kwargs) -> VisionTransformer:
    """DeiT-Ti with a distillation token and head: width 192, 12 blocks, 3 heads."""
    return _vit(dict(patch_size=16, embed_dim=192, depth=12, num_heads=3, distilled=True), kwargs)
