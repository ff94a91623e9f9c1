"""Patch embeddings: an image (B, C, H, W) becomes a sequence of N = (H/p)(W/p) tokens (B, N, D)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def to_2tuple(x: int | tuple[int, int]) -> tuple[int, int]:
    return (x, x) if isinstance(x, int) else (int(x[0]), int(x[1]))


class PatchEmbed(nn.Module):
    """Cut the image into p x p patches and project each to D: a convolution with kernel = stride
    = p, the same as flattening each patch and applying one linear map (ViT)."""

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
    ) -> None:
        super().__init__()
        self.img_size = to_2tuple(img_size)
        self.patch_size = to_2tuple(patch_size)
        (h, w), (ph, pw) = self.img_size, self.patch_size
        if h % ph or w % pw:
            raise ValueError(f"image size {self.img_size} is not a multiple of patch size {ph}")
        self.grid_size = (h // ph, w // pw)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = self._projection(in_chans, embed_dim)

    def _projection(self, in_chans: int, embed_dim: int) -> nn.Module:
        return nn.Conv2d(in_chans, embed_dim, kernel_size=self.patch_size, stride=self.patch_size)

    def _check(self, x: Tensor) -> None:
        if tuple(x.shape[-2:]) != self.img_size:
            raise ValueError(f"input size {tuple(x.shape[-2:])} != model size {self.img_size}")

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, D, h, w) -> (B, N, D)


class LinearPatchEmbed(PatchEmbed):
    """Flatten each patch to C*p*p values (channel-major) and apply a linear map to D."""

    def _projection(self, in_chans: int, embed_dim: int) -> nn.Module:
        return nn.Linear(in_chans * self.patch_size[0] * self.patch_size[1], embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        patches = F.unfold(x, self.patch_size, stride=self.patch_size)  # (B, C*p*p, N)
        return self.proj(patches.transpose(1, 2))  # (B, N, D)


class OverlapPatchEmbed(PatchEmbed):
    """Overlapping patches: kernel 2p - 1, stride p, padding p - 1, so neighbours share pixels
    and the token grid stays (H/p, W/p) (PVT v2, CvT)."""

    def _projection(self, in_chans: int, embed_dim: int) -> nn.Module:
        kernel = tuple(2 * p - 1 for p in self.patch_size)
        padding = tuple(p - 1 for p in self.patch_size)
        return nn.Conv2d(in_chans, embed_dim, kernel, stride=self.patch_size, padding=padding)


PATCH_EMBEDS: dict[str, type[PatchEmbed]] = {
    "conv": PatchEmbed,
    "linear": LinearPatchEmbed,
    "overlap": OverlapPatchEmbed,
}
