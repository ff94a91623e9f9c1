"""Augmentation of training images: timm's RandAugment and random erasing around vitbench's own
preprocessing.

RandAugment works on the PIL image at its own size, then the image goes through the split's
:class:`~vitbench.train.data.Preprocess` (resize, normalise, channels: exactly what validation
and test images get), then random erasing replaces a rectangle of the normalised tensor with
noise (timm's ``pixel`` mode, DeiT's). ``timm.data.create_transform`` would bring its own
crop, resize and normalisation, which would part the training images from the test images.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.utils.data import Dataset

from vitbench.errors import VitbenchError

if TYPE_CHECKING:
    from vitbench.train.data import Preprocess

#: RandAugment's magnitude is capped here, just below timm's 10: at 10 timm's posterize keeps
#: 0 bits, which Pillow (13) refuses
MAX_MAGNITUDE = 9.99


def check_randaugment(spec: str) -> None:
    """Refuse a RandAugment spec timm cannot read, in one line."""
    from timm.data.auto_augment import rand_augment_transform

    if not spec.startswith("rand"):
        raise VitbenchError(
            f"randaugment is timm's spec 'rand-m9-mstd0.5-inc1' or alike, not '{spec}'"
        )
    try:
        rand_augment_transform(spec, {})
    except Exception as exc:  # timm asserts and raises several kinds on a bad spec
        raise VitbenchError(f"randaugment '{spec}' is not a timm RandAugment spec ({exc})") from exc


class Augment:
    """PIL image -> augmented, preprocessed ``(C, H, W)`` tensor, for the training split."""

    def __init__(self, prep: Preprocess, randaugment: str | None, random_erasing: float) -> None:
        from timm.data.auto_augment import rand_augment_transform
        from timm.data.random_erasing import RandomErasing

        self.prep = prep
        fill = tuple(round(255 * m) for m in prep.mean.flatten().tolist())  # the data's mean grey
        hparams = {"img_mean": fill}
        if randaugment and "mmax" not in randaugment:
            hparams["magnitude_max"] = MAX_MAGNITUDE
        self.rand = rand_augment_transform(randaugment, hparams) if randaugment else None
        self.erase = (
            RandomErasing(random_erasing, mode="pixel", device="cpu")
            if random_erasing > 0
            else None
        )

    def __call__(self, img) -> Tensor:
        from torchvision.transforms.v2.functional import to_dtype, to_image

        if self.rand is not None:
            img = self.rand(img)
        x = self.prep(to_dtype(to_image(img), torch.float32, scale=True))
        return self.erase(x) if self.erase is not None else x


class AugmentedTensors(Dataset):
    """In-memory images in [0, 1] ``(N, C, H, W)`` with labels, each augmented when read."""

    def __init__(self, pixels: Tensor, labels: Tensor, augment: Augment) -> None:
        self.pixels, self.labels, self.augment = pixels, labels, augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        from torchvision.transforms.v2.functional import to_pil_image

        img = to_pil_image((self.pixels[i] * 255).round().to(torch.uint8))
        return self.augment(img), self.labels[i]
