"""Masked autoencoder (He et al. 2022): hide most patches, encode the rest, rebuild the hidden.

    keep, mask = random_masking(N, ratio)              (B, N - round(ratio N)), (B, N)
    z = Encoder([cls; x_p^k E + E_pos for k in keep])  the ViT over visible patches only
    y = Decoder([z; mask tokens at the hidden places] + E_pos^dec) -> (B, N, p*p*C)
    loss = mean over masked patches of mean_j (y_ij - t_ij)^2, t the patch's normalised pixels

The encoder is vitbench's own :class:`~vitbench.zoo.scratch.vit.VisionTransformer`, used as it
is (its patch embedding, prefix tokens, positions, blocks and final norm), so its weights are
a plain ViT's and fine-tune as one. The decoder is light: a few narrow blocks of the same kind.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitbench.zoo.scratch.blocks import EncoderBlock
from vitbench.zoo.scratch.init import init_weights
from vitbench.zoo.scratch.position import SinCos2dPositionEmbedding
from vitbench.zoo.scratch.vit import VisionTransformer

#: added to a patch's pixel variance before its square root (MAE's)
NORM_PIX_EPS = 1e-6


class Masking(NamedTuple):
    """Which patches each image shows: ``keep`` (B, K) visible ids, ``mask`` (B, N) 1 = hidden."""

    keep: Tensor
    mask: Tensor


def masked_count(num_patches: int, ratio: float) -> int:
    """How many of ``num_patches`` patches a ``ratio`` hides: round(ratio N)."""
    return round(ratio * num_patches)


def random_masking(
    batch: int,
    num_patches: int,
    ratio: float,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Masking:
    """Per image, a uniformly random subset of round(ratio N) patches to hide (MAE's
    argsort of uniform noise: the first N - round(ratio N) of a random permutation stay)."""
    where = generator.device if generator is not None else device
    noise = torch.rand(batch, num_patches, device=where, generator=generator).to(device)  # (B, N)
    keep = noise.argsort(dim=1)[:, : num_patches - masked_count(num_patches, ratio)]  # (B, K)
    mask = torch.ones(batch, num_patches, device=device).scatter_(1, keep, 0.0)
    return Masking(keep, mask)


def patchify(images: Tensor, patch: int) -> Tensor:
    """(B, C, H, W) -> (B, N, C*p*p): each patch's pixels, channel-major, patches row by row."""
    return F.unfold(images, patch, stride=patch).transpose(1, 2)


def unpatchify(patches: Tensor, patch: int, size: tuple[int, int]) -> Tensor:
    """Inverse of :func:`patchify`: (B, N, C*p*p) -> (B, C, H, W)."""
    return F.fold(patches.transpose(1, 2), size, patch, stride=patch)


def normalised_pixels(patches: Tensor) -> Tensor:
    """Each patch's pixels minus their mean over their standard deviation (MAE's target with
    ``norm_pix_loss``: the unbiased variance over the patch, plus ``NORM_PIX_EPS``)."""
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True)
    return (patches - mean) / (var + NORM_PIX_EPS) ** 0.5


def masked_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error per patch (B, N), averaged over the hidden patches only."""
    per_patch = (pred - target).pow(2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum()


class MAEOutput(NamedTuple):
    loss: Tensor  # scalar
    pred: Tensor  # (B, N, C*p*p) every patch predicted (the target's space)
    mask: Tensor  # (B, N) 1 where the patch was hidden


class MaskedAutoencoder(nn.Module):
    """A ViT encoder over the visible patches and a light decoder that predicts every patch."""

    def __init__(
        self,
        encoder: VisionTransformer,
        mask_ratio: float = 0.75,
        decoder_dim: int = 64,
        decoder_depth: int = 2,
        decoder_heads: int = 4,
        norm_pix: bool = True,
    ) -> None:
        super().__init__()
        self.encoder, self.mask_ratio, self.norm_pix = encoder, mask_ratio, norm_pix
        embed = encoder.patch_embed
        self.patch, self.img_size = embed.patch_size[0], embed.img_size
        self.num_patches, prefix = embed.num_patches, encoder.num_prefix_tokens
        self.decoder_embed = nn.Linear(encoder.embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_pos = SinCos2dPositionEmbedding(embed.grid_size, prefix)  # fixed (MAE's)
        self.decoder_blocks = nn.ModuleList(
            EncoderBlock(decoder_dim, decoder_heads) for _ in range(decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_dim, self.patch**2 * encoder.in_chans)
        for module in (self.decoder_embed, self.decoder_blocks, self.decoder_pred):
            module.apply(init_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    def encode(self, images: Tensor, keep: Tensor) -> Tensor:
        """(B, C, H, W), visible ids (B, K) -> (B, P + K, D): prefix tokens and visible patches,
        each with its position, through the encoder's blocks and final norm."""
        vit = self.encoder
        tokens = vit.pos_drop(vit.pos_embed(vit.tokens(vit.patch_embed(images))))  # (B, P+N, D)
        p = vit.num_prefix_tokens
        visible = tokens[:, p:].gather(1, keep[..., None].expand(-1, -1, tokens.shape[-1]))
        x = torch.cat([tokens[:, :p], visible], dim=1)
        for block in vit.blocks:
            x = block(x)
        return vit.norm(x)

    def decode(self, latent: Tensor, keep: Tensor) -> Tensor:
        """(B, P + K, D) encoded tokens -> (B, N, C*p*p) a prediction for every patch."""
        p = self.encoder.num_prefix_tokens
        y = self.decoder_embed(latent)  # (B, P + K, d)
        hidden = self.mask_token.expand(y.shape[0], self.num_patches, -1)  # (B, N, d)
        index = keep[..., None].expand(-1, -1, y.shape[-1])
        patches = hidden.scatter(1, index, y[:, p:])  # visible tokens back in their places
        x = self.decoder_pos(torch.cat([y[:, :p], patches], dim=1))
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, p:]

    def target(self, images: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, N, C*p*p) what the decoder learns to predict."""
        patches = patchify(images, self.patch)
        return normalised_pixels(patches) if self.norm_pix else patches

    def forward(self, images: Tensor, generator: torch.Generator | None = None) -> MAEOutput:
        masking = random_masking(
            images.shape[0], self.num_patches, self.mask_ratio, images.device, generator
        )
        pred = self.decode(self.encode(images, masking.keep), masking.keep)
        return MAEOutput(masked_loss(pred, self.target(images), masking.mask), pred, masking.mask)

    def masked_input(self, images: Tensor, mask: Tensor) -> Tensor:
        """(B, C, H, W) with the hidden patches set to 0 (the data's mean, once normalised)."""
        patches = patchify(images, self.patch) * (1 - mask[..., None])
        return unpatchify(patches, self.patch, self.img_size)

    def reconstruct(self, images: Tensor, out: MAEOutput) -> Tensor:
        """(B, C, H, W): the visible patches as they were, the hidden ones as predicted (put
        back on each patch's own mean and spread when the target is normalised)."""
        patches = patchify(images, self.patch)
        pred = out.pred
        if self.norm_pix:
            mean, var = patches.mean(-1, keepdim=True), patches.var(-1, keepdim=True)
            pred = pred * (var + NORM_PIX_EPS) ** 0.5 + mean
        mixed = torch.where(out.mask[..., None].bool(), pred, patches)
        return unpatchify(mixed, self.patch, self.img_size)
