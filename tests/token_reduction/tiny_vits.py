"""Tiny ViTs of each supported family for the token reduction tests, and forward probes."""

from __future__ import annotations

import torch
from torch import nn

from vitbench.measure.closed_form import ViTShape
from vitbench.token_reduction import TokenReduction, apply_token_reduction
from vitbench.zoo import ModelSpec, create_model, set_fused_attn

#: 64 x 64 images in 8 x 8 patches: 64 patch tokens; width 64, 2 heads of 32, 4 blocks
SHAPE = ViTShape(img_size=64, patch_size=8, embed_dim=64, depth=4, num_heads=2, num_classes=10)


def spec(name: str = "vit_base_patch16_224", shape: ViTShape = SHAPE, **kwargs) -> ModelSpec:
    """A spec of ``name`` at ``shape`` (timm's or vitbench's ViT keywords)."""
    kw = dict(
        patch_size=shape.patch_size,
        embed_dim=shape.embed_dim,
        depth=shape.depth,
        num_heads=shape.num_heads,
    )
    return ModelSpec(
        name, img_size=shape.img_size, num_classes=shape.num_classes, kwargs={**kw, **kwargs}
    )


TIMM = spec()
SCRATCH = spec("scratch_vit_tiny_patch16_224")
DISTILLED = spec("deit_tiny_distilled_patch16_224")
REGISTERS = spec(reg_tokens=4)
SCRATCH_DISTILLED = spec("scratch_deit_tiny_distilled_patch16_224")
QK_NORM_LAYER_SCALE = spec(qk_norm=True, init_values=0.1)
POST_NORM = spec("scratch_vit_tiny_patch16_224", norm_first=False)
#: the two supported families, and their test ids
FAMILIES = [TIMM, SCRATCH]
IDS = ["timm", "scratch"]
N0 = SHAPE.num_patches + 1  # 65 tokens: 64 patches and the class token


def build(s: ModelSpec, seed: int = 0, device: str = "cpu") -> nn.Module:
    torch.manual_seed(seed)
    return create_model(s, device=device).eval()


def reduced(s: ModelSpec, reduction: TokenReduction, fused: bool = True, seed: int = 0):
    """The model ``s`` built with ``seed``, transformed by ``reduction``, attention fused or not."""
    model = build(s, seed)
    apply_token_reduction(model, reduction)
    set_fused_attn(model, fused)
    return model


def images(batch: int = 3, seed: int = 1, device: str = "cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, SHAPE.img_size, SHAPE.img_size, generator=g)
    return x.to(device)


def tokens_seen(model: nn.Module, x: torch.Tensor) -> list[int]:
    """The token count each block receives in a forward of ``x``, read by pre-hooks."""
    seen: list[int] = []
    handles = [
        b.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[1]))
        for b in model.blocks
    ]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return seen


def block_outputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Each block's output in a forward of ``x``."""
    outs: list[torch.Tensor] = []
    handles = [b.register_forward_hook(lambda _m, _a, out: outs.append(out)) for b in model.blocks]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return outs


def queries_keys(block: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, heads, N, d) queries and keys of a block's attention on its input x, computed from
    its weights."""
    attn, h = block.attn, SHAPE.num_heads
    d = SHAPE.embed_dim // h
    with torch.no_grad():
        y = block.norm1(x) if getattr(block, "norm_first", True) else x
        if hasattr(attn, "qkv"):  # timm: one projection
            q, k, _ = attn.qkv(y).unflatten(-1, (3, h, d)).permute(2, 0, 3, 1, 4)
            q, k = attn.q_norm(q), attn.k_norm(k)
        else:  # vitbench: three
            q, k = (lin(y).unflatten(-1, (h, d)).transpose(1, 2) for lin in (attn.q, attn.k))
    return q, k
