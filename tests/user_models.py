"""A user's own model code, written out as a file, a package, and a package that registers a
model with timm: what the tests of model sources build from."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path

import pytest

#: a ViT in a few lines, with timm's Attention (so `analyze attention` reads it)
TINY_VIT = '''
import torch
from timm.layers import Attention
from torch import nn


class TinyViT(nn.Module):
    """Patches, a class token, positions (for a given img_size), one attention block, a head."""

    def __init__(self, img_size=None, patch_size=8, num_classes=10, dim=32, heads=2):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, patch_size, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        tokens = 1 + (img_size // patch_size) ** 2 if img_size else 1
        self.pos = nn.Parameter(torch.zeros(1, tokens, dim))
        self.norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads=heads)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], 1) + self.pos
        x = x + self.attn(self.norm(x))
        return self.head(x[:, 0])


def tiny_vit(img_size=32, num_classes=10, in_chans=3):
    """Takes the size overrides; declares 32 px by its default."""
    assert in_chans == 3
    return TinyViT(img_size=img_size, num_classes=num_classes)


def sizeless(num_classes=10):
    """Takes any input size (no positions) and declares none."""
    return TinyViT(img_size=None, num_classes=num_classes)


def not_a_model():
    return "a string"


NOT_CALLABLE = 3
'''


def write_model_file(folder: Path, name: str = "user_vit.py") -> Path:
    """The model code as a file in ``folder``."""
    path = folder / name
    path.write_text(TINY_VIT)
    return path


def write_package(folder: Path) -> str:
    """A package in ``folder`` with the model code as its module ``models``; its name."""
    name = f"vb_user_{uuid.uuid4().hex[:8]}"
    (folder / name).mkdir()
    (folder / name / "__init__.py").write_text("")
    (folder / name / "models.py").write_text(TINY_VIT)
    return name


def write_registering_package(folder: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A package in ``folder`` that registers a model with timm when imported: the package's
    name and the model's (unique in the process). timm's registry is restored after the test,
    so the name is listed by none of the others."""
    from timm.models import _registry

    for name, value in vars(_registry).items():
        if name.startswith("_") and not name.startswith("__") and isinstance(value, (dict, set)):
            monkeypatch.setattr(_registry, name, copy.deepcopy(value))
    package = write_package(folder)
    model = f"{package}_tiny_vit"
    (folder / package / "__init__.py").write_text(
        "from timm.models import register_model\n"
        f"from {package}.models import TinyViT\n\n\n"
        "@register_model\n"
        f"def {model}(pretrained=False, img_size=32, num_classes=10, **kwargs):\n"
        "    return TinyViT(img_size=img_size, num_classes=num_classes)\n"
    )
    return package, model
