"""State-dict key mapping from timm's ``VisionTransformer`` (and DeiT's distilled variant) to the
scratch ViT. Both use the same module names except for three things:

| timm key                              | scratch key                                         |
|---------------------------------------|-----------------------------------------------------|
| ``cls_token``                         | ``tokens.cls_token``                                |
| ``dist_token``                        | ``tokens.dist_token``                               |
| ``pos_embed``                         | ``pos_embed.weight``                                |
| ``blocks.{i}.attn.qkv.{weight,bias}`` | ``blocks.{i}.attn.{q,k,v}.{weight,bias}``: the fused |
|                                       | (3D, D) projection split in three along dim 0       |
| any other key (``patch_embed.proj``,  | the same key                                        |
| ``norm1``, ``mlp.fc1``, ``ls1.gamma``,|                                                     |
| ``norm``, ``fc_norm``, ``head``, ...) |                                                     |

It holds for the default ``patch_embed="conv"`` and ``pos_embed="learn"``.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

RENAMES = {
    "cls_token": "tokens.cls_token",
    "dist_token": "tokens.dist_token",
    "pos_embed": "pos_embed.weight",
}


def timm_vit_to_scratch(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A timm ViT state dict with its keys (and fused qkv tensors) in the scratch ViT's layout."""
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        prefix, sep, kind = key.rpartition(".qkv.")
        if sep:
            for name, part in zip("qkv", value.chunk(3, dim=0), strict=True):
                out[f"{prefix}.{name}.{kind}"] = part
        else:
            out[RENAMES.get(key, key)] = value
    return out


def load_timm_vit(model: nn.Module, state_dict: Mapping[str, Tensor]) -> None:
    """Load a timm ViT's weights into a scratch ViT of the same shape (strict: every key)."""
    model.load_state_dict(timm_vit_to_scratch(state_dict))
