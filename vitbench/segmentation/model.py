"""A ViT or BEiT encoder with a light decoder: one logit per class and pixel.

The encoder's ``forward_features`` gives ``(B, prefix + h * w, D)`` tokens; the prefix (class,
distillation tokens) is dropped and the patch tokens are laid back on their ``h x w`` grid. Two
decoders, after SETR (Zheng et al., CVPR 2021):

- ``linear``: a 1x1 convolution to class logits on the grid, upsampled bilinearly to the image
  (each patch token classifies the pixels around it);
- ``setr-pup``: progressive upsampling: stages of 3x3 convolution, batch norm, ReLU and 2x
  bilinear upsampling, one per factor of 2 in the patch size (SETR-PUP has four for 16-pixel
  patches), then a 1x1 convolution to logits and upsampling of what is left. mmseg's SETR-PUP
  stages are 512 wide on ViT-L's 1024-dim tokens; here they are a quarter of the token width.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from vitbench.errors import VitbenchError


def patch_grid(encoder: nn.Module, name: str) -> tuple[int, int]:
    """The ``(h, w)`` patch grid of a ViT-like encoder; an error for a model without one."""
    grid = getattr(getattr(encoder, "patch_embed", None), "grid_size", None)
    if grid is None or not hasattr(encoder, "num_prefix_tokens"):
        raise VitbenchError(
            f"segmentation needs a ViT or BEiT encoder (patch tokens on a grid); {name} has none"
        )
    return int(grid[0]), int(grid[1])


def pup_decoder(dim: int, num_classes: int, stages: int) -> nn.Sequential:
    """SETR's progressive upsampling: ``stages`` times conv 3x3, BN, ReLU, 2x up; then logits."""
    width = max(dim // 4, 16)
    layers: list[nn.Module] = []
    for i in range(stages):
        layers += [
            nn.Conv2d(dim if i == 0 else width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        ]
    layers.append(nn.Conv2d(width if stages else dim, num_classes, 1))
    return nn.Sequential(*layers)


class SegmentationModel(nn.Module):
    """``(B, C, H, W)`` images -> ``(B, classes, H, W)`` logits."""

    def __init__(self, encoder: nn.Module, name: str, num_classes: int, decoder: str) -> None:
        super().__init__()
        self.encoder = encoder
        self.grid = patch_grid(encoder, name)
        self.prefix = int(encoder.num_prefix_tokens)
        dim = int(encoder.embed_dim)
        self.decoder: nn.Module
        if decoder == "linear":
            self.decoder = nn.Conv2d(dim, num_classes, 1)
        else:
            patch = int(encoder.patch_embed.patch_size[0])
            self.decoder = pup_decoder(dim, num_classes, int(math.log2(patch)))

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.encoder.forward_features(x)[:, self.prefix :]  # (B, h * w, D)
        grid = tokens.transpose(1, 2).reshape(x.shape[0], -1, *self.grid)  # (B, D, h, w)
        logits = self.decoder(grid)  # (B, classes, h * 2^stages, w * 2^stages)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
