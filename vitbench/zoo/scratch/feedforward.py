"""Position-wise feed-forward network: FFN(x) = act(x W_1 + b_1) W_2 + b_2, applied per token."""

from __future__ import annotations

from torch import Tensor, nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU}


class FeedForward(nn.Module):
    """dim -> hidden_dim -> dim with GELU (ViT, BERT) or ReLU (the original Transformer)."""

    def __init__(self, dim: int, hidden_dim: int, act: str = "gelu", drop: float = 0.0) -> None:
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"activation is one of {sorted(ACTIVATIONS)}, not {act!r}")
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = ACTIVATIONS[act]()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:  # (B, N, dim) -> (B, N, dim)
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))
