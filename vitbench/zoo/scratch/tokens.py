"""Learned tokens prepended to the patch sequence: the class token (ViT) whose final state is
classified, and DeiT's distillation token, trained against a teacher's predictions."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PrefixTokens(nn.Module):
    def __init__(self, dim: int, class_token: bool = True, dist_token: bool = False) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if class_token else None
        self.dist_token = nn.Parameter(torch.zeros(1, 1, dim)) if dist_token else None
        self.num_tokens = int(class_token) + int(dist_token)

    def forward(self, x: Tensor) -> Tensor:  # (B, N, D) -> (B, num_tokens + N, D)
        tokens = [t for t in (self.cls_token, self.dist_token) if t is not None]
        return torch.cat([t.expand(x.shape[0], -1, -1) for t in tokens] + [x], dim=1)
