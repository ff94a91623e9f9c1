"""Training defaults that need no torch: the dataset names and the default model.

The command line reads these to write its help; importing this module loads nothing heavy.
"""

from __future__ import annotations

from typing import Any

#: dataset name -> (native side, native channels); imagefolder's side is only a default
NATIVE = {
    "digits": (8, 1),
    "photos": (32, 3),
    "mnist": (28, 1),
    "fashion_mnist": (28, 1),
    "cifar10": (32, 3),
    "cifar100": (32, 3),
    "imagefolder": (224, 3),
}
DATASETS = tuple(NATIVE)
#: the datasets read from a local data_dir (the others are embedded)
LOCAL_DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar100", "imagefolder")

#: the default model: a from-scratch ViT-Ti shrunk to 8 x 8 one-channel digits (16 tokens of 2x2)
DEFAULT_MODEL = "scratch_vit_tiny_patch16_224"
DEFAULT_MODEL_KWARGS: dict[str, Any] = dict(
    patch_size=2, embed_dim=64, depth=4, num_heads=4, mlp_ratio=2.0
)
