"""ADE20K as the SceneParsing benchmark ships it (``ADEChallengeData2016``), read from a folder.

``data_dir/images/{training,validation}/<name>.jpg`` beside
``data_dir/annotations/{training,validation}/<name>.png``: each PNG holds one label per pixel,
0 for "other" (no class) and 1..150 for the classes. As mmseg's ``reduce_zero_label`` does,
class k becomes k - 1 and "other" becomes :data:`IGNORE_INDEX`, scored nowhere. The validation
split is the test split; validation images are cut from training by ``val_fraction``. Images are
resized to ``img_size`` squares (bilinear, masks by nearest neighbour) and normalised with
ImageNet's statistics. Nothing is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from vitbench.errors import DataError
from vitbench.segmentation import IGNORE_INDEX
from vitbench.segmentation.data import resize_masks
from vitbench.train.data import STATS, DataBundle, Preprocess, _take, split_indices

SPLITS = ("training", "validation")
#: the 150 classes in label order (1..150), as mmseg names them
CLASSES = (
    "wall",
    "building",
    "sky",
    "floor",
    "tree",
    "ceiling",
    "road",
    "bed",
    "windowpane",
    "grass",
    "cabinet",
    "sidewalk",
    "person",
    "earth",
    "door",
    "table",
    "mountain",
    "plant",
    "curtain",
    "chair",
    "car",
    "water",
    "painting",
    "sofa",
    "shelf",
    "house",
    "sea",
    "mirror",
    "rug",
    "field",
    "armchair",
    "seat",
    "fence",
    "desk",
    "rock",
    "wardrobe",
    "lamp",
    "bathtub",
    "railing",
    "cushion",
    "base",
    "box",
    "column",
    "signboard",
    "chest of drawers",
    "counter",
    "sand",
    "sink",
    "skyscraper",
    "fireplace",
    "refrigerator",
    "grandstand",
    "path",
    "stairs",
    "runway",
    "case",
    "pool table",
    "pillow",
    "screen door",
    "stairway",
    "river",
    "bridge",
    "bookcase",
    "blind",
    "coffee table",
    "toilet",
    "flower",
    "book",
    "hill",
    "bench",
    "countertop",
    "stove",
    "palm",
    "kitchen island",
    "computer",
    "swivel chair",
    "boat",
    "bar",
    "arcade machine",
    "hovel",
    "bus",
    "towel",
    "light",
    "truck",
    "tower",
    "chandelier",
    "awning",
    "streetlight",
    "booth",
    "television receiver",
    "airplane",
    "dirt track",
    "apparel",
    "pole",
    "land",
    "bannister",
    "escalator",
    "ottoman",
    "bottle",
    "buffet",
    "poster",
    "stage",
    "van",
    "ship",
    "fountain",
    "conveyer belt",
    "canopy",
    "washer",
    "plaything",
    "swimming pool",
    "stool",
    "barrel",
    "basket",
    "waterfall",
    "tent",
    "bag",
    "minibike",
    "cradle",
    "oven",
    "ball",
    "food",
    "step",
    "tank",
    "trade name",
    "microwave",
    "pot",
    "animal",
    "bicycle",
    "lake",
    "dishwasher",
    "screen",
    "blanket",
    "sculpture",
    "hood",
    "sconce",
    "vase",
    "traffic light",
    "tray",
    "ashcan",
    "fan",
    "pier",
    "crt screen",
    "plate",
    "monitor",
    "bulletin board",
    "shower",
    "radiator",
    "glass",
    "clock",
    "flag",
)


def image_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    """The ``(image, annotation)`` paths of one split, by name; a one-line error when the
    folders, the images or an image's annotation are missing."""
    images, annotations = root / "images" / split, root / "annotations" / split
    if not (images.is_dir() and annotations.is_dir()):
        raise DataError(
            f"ade20k needs a data_dir holding images/{split} and annotations/{split}; "
            f"not found under {root.resolve()}"
        )
    found = sorted(images.glob("*.jpg"))
    if not found:
        raise DataError(f"no .jpg images in {images.resolve()}")
    unlabelled = [p.name for p in found if not (annotations / f"{p.stem}.png").is_file()]
    if unlabelled:
        raise DataError(
            f"{len(unlabelled)} image(s) in {images.resolve()} have no annotation PNG in "
            f"{annotations.resolve()}, e.g. {unlabelled[0]}"
        )
    return [(p, annotations / f"{p.stem}.png") for p in found]


def reduce_zero_label(labels: np.ndarray) -> np.ndarray:
    """ADE20K's labels 1..150 as classes 0..149 and 0 ("other") as ``IGNORE_INDEX``."""
    labels = labels.astype(np.int64)
    return np.where(labels == 0, IGNORE_INDEX, labels - 1)


class ADE20KSplit(Dataset):
    """``(image (C, S, S), mask (S, S))`` pairs read from their files when asked for."""

    def __init__(self, pairs: list[tuple[Path, Path]], img_size: int, in_chans: int) -> None:
        self.pairs, self.img_size = pairs, img_size
        self.prep = Preprocess(img_size, in_chans, *STATS["imagefolder"])

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        from PIL import Image

        image_path, mask_path = self.pairs[i]
        try:
            with Image.open(image_path) as img:
                rgb = np.array(img.convert("RGB"))  # (H, W, 3) uint8
            with Image.open(mask_path) as ann:
                labels = reduce_zero_label(np.asarray(ann))  # (H, W)
        except OSError as exc:
            raise DataError(f"cannot read {image_path.name} or its annotation: {exc}") from exc
        x = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0
        return self.prep(x), resize_masks(torch.from_numpy(labels), self.img_size)


def load_ade20k(
    root: Path, *, img_size: int, in_chans: int, seed: int, val_fraction: float, subset: int | None
) -> DataBundle:
    """Training images (less the validation cut) and the validation split as the test split."""
    train = image_pairs(root, SPLITS[0])
    test = image_pairs(root, SPLITS[1])
    tr, va, _ = split_indices([0] * len(train), val_fraction, 0.0, seed)

    def part(pairs: list[tuple[Path, Path]], ids: np.ndarray) -> ADE20KSplit:
        return ADE20KSplit([pairs[i] for i in _take(ids, subset, seed)], img_size, in_chans)

    mean, std = STATS["imagefolder"]
    splits = (part(train, tr), part(train, va), part(test, np.arange(len(test))))
    return DataBundle("ade20k", *splits, list(CLASSES), img_size, in_chans, mean, std)
