"""Images to analyse: files or folders, the embedded sample photographs, or the digits dataset.

Images come in batches, resized to the model's input and normalised with the model's mean and
standard deviation, together with their 8-bit pixels (for overlays) and labels when the source
has them. Nothing is downloaded: the photographs and digits ship with scikit-learn.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vitbench.errors import DataError, VitbenchError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ImageSource:
    """Where images come from: ``files`` (a file or folder), ``sample`` photos, ``digits``."""

    kind: str = "digits"
    path: str | os.PathLike | None = None

    def describe(self) -> str:
        return f"files:{self.path}" if self.kind == "files" else self.kind


@dataclass
class ImageBatch:
    x: torch.Tensor  # (B, C, H, W) normalised model input
    pixels: np.ndarray  # (B, H, W, 3) uint8, what the model saw, for overlays
    labels: torch.Tensor | None  # (B,) class indices when the source has labels


def normalisation(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The model's input mean and std (timm's config), ImageNet's when it declares none."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))


def image_files(path: str | os.PathLike) -> list[Path]:
    """A file, or the images in a folder and its subfolders, sorted."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise DataError(f"no image file or folder at {p}")
    files = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {p}")
    return files


def _resize_crop(img: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """(3, h, w) float in [0, 1]: scale the short side to fit, centre-crop to (H, W)."""
    h, w = img.shape[-2:]
    scale = max(hw[0] / h, hw[1] / w)
    size = (max(hw[0], round(h * scale)), max(hw[1], round(w * scale)))
    img = F.interpolate(img[None], size=size, mode="bilinear", antialias=True, align_corners=False)
    top, left = (size[0] - hw[0]) // 2, (size[1] - hw[1]) // 2
    return img[0, :, top : top + hw[0], left : left + hw[1]].clamp(0, 1)


def _read_file(path: Path) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from exc
    return torch.from_numpy(arr).permute(2, 0, 1)


def _sample_crops(n: int, seed: int) -> Iterator[torch.Tensor]:
    """The two sample photographs whole, then square crops of them at random places that
    ``seed`` fixes."""
    from sklearn.datasets import load_sample_images

    photos = [
        torch.from_numpy(np.array(im)).permute(2, 0, 1).float() / 255
        for im in load_sample_images().images
    ]
    rng = np.random.default_rng(seed)
    for i in range(n):
        photo = photos[i % len(photos)]
        if i < len(photos):
            yield photo
            continue
        h, w = photo.shape[-2:]
        side = int(rng.integers(min(h, w) // 3, min(h, w) + 1))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        yield photo[:, top : top + side, left : left + side]


def _digits(n: int) -> tuple[list[torch.Tensor], list[int]]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    if n > len(digits.images):
        raise DataError(f"the digits dataset has {len(digits.images)} images, asked for {n}")
    imgs = torch.from_numpy(digits.images[:n]).float() / 16.0  # (n, 8, 8) in [0, 1]
    return [im[None].expand(3, -1, -1) for im in imgs], [int(t) for t in digits.target[:n]]


def count_images(source: ImageSource, n_images: int) -> int:
    """How many images a source will give when ``n_images`` are asked for."""
    if source.kind == "files":
        return min(n_images, len(image_files(source.path)))
    return n_images


def image_batches(
    source: ImageSource,
    n_images: int,
    batch_size: int,
    input_size: tuple[int, int, int],
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
    seed: int = 0,
) -> Iterator[ImageBatch]:
    """Batches of up to ``batch_size`` images from ``source``, as the model takes them.

    input_size: (channels, H, W); one channel takes the mean of the RGB channels. ``seed``
    places the crops of the sample photographs.
    """
    if n_images < 1 or batch_size < 1:
        raise VitbenchError("the number of images and the batch size must be positive")
    chans, hw = input_size[0], (input_size[1], input_size[2])
    labels: list[int] | None = None
    if source.kind == "files":
        if source.path is None:
            raise DataError("an image source of files needs a path")
        images: Iterator[torch.Tensor] = map(_read_file, image_files(source.path)[:n_images])
    elif source.kind == "sample":
        images = _sample_crops(n_images, seed)
    elif source.kind == "digits":
        digit_images, labels = _digits(n_images)
        images = iter(digit_images)
    else:
        raise VitbenchError(f"unknown image source '{source.kind}' (files, sample or digits)")
    m = torch.tensor(mean).view(-1, 1, 1)
    s = torch.tensor(std).view(-1, 1, 1)
    buffer: list[torch.Tensor] = []
    start = 0
    for img in images:
        buffer.append(_resize_crop(img, hw))
        if len(buffer) == batch_size:
            yield _batch(buffer, labels, start, chans, m, s)
            start += len(buffer)
            buffer = []
    if buffer:
        yield _batch(buffer, labels, start, chans, m, s)


def _batch(
    imgs: list[torch.Tensor],
    labels: list[int] | None,
    start: int,
    chans: int,
    mean: torch.Tensor,
    std: torch.Tensor,
) -> ImageBatch:
    rgb = torch.stack(imgs)  # (B, 3, H, W) in [0, 1]
    pixels = (rgb.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    x = rgb if chans == 3 else rgb.mean(dim=1, keepdim=True).expand(-1, chans, -1, -1)
    if mean.numel() != chans:  # an RGB mean for a grey or many-channel model: its average
        mean, std = mean.mean().view(1, 1, 1), std.mean().view(1, 1, 1)
    x = (x - mean) / std
    y = None if labels is None else torch.tensor(labels[start : start + len(imgs)])
    return ImageBatch(x.contiguous(), pixels, y)
