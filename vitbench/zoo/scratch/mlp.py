"""The MLP image baseline: flatten the pixels, one hidden layer of 512 ReLU units, classes.
No notion of patches or positions: the yardstick a ViT should beat."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vitbench.zoo.registry import register_model
from vitbench.zoo.scratch.init import init_weights
from vitbench.zoo.scratch.patch_embed import to_2tuple


class MLP(nn.Module):
    input_kind = "image"

    def __init__(
        self,
        img_size: int | tuple[int, int] = 28,
        in_chans: int = 1,
        num_classes: int = 10,
        hidden_dim: int = 512,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.img_size = to_2tuple(img_size)
        self.in_chans, self.num_classes = in_chans, num_classes
        self.default_cfg = {"input_size": (in_chans, *self.img_size)}  # read by default_input_size
        self.fc1 = nn.Linear(in_chans * self.img_size[0] * self.img_size[1], hidden_dim)
        self.act = nn.ReLU()
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(hidden_dim, num_classes)
        self.apply(init_weights)

    def forward_features(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, hidden)
        return self.act(self.fc1(x.flatten(1)))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:  # -> (B, classes)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def example_inputs(
        self, batch_size: int, device: torch.device | str | None = None
    ) -> tuple[Tensor]:
        """A random image batch (B, in_chans, H, W)."""
        device = next(self.parameters()).device if device is None else device
        return (torch.randn(batch_size, self.in_chans, *self.img_size, device=device),)


@register_model
def scratch_mlp(**kwargs) -> MLP:
    """Flatten -> 512 ReLU -> classes; 28 x 28 grey images, 10 classes unless overridden."""
    return MLP(**kwargs)
